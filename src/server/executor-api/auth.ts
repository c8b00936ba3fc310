/**
 * The two authentication schemes of /.executors (Sourcegraph `queuehandler.go`), with the exact
 * status codes and texts of the reference, plus the hardening it recommends:
 * - queue routes (dequeue, heartbeat, test/auth): `token-executor <shared token>` only;
 * - job routes (log writes, marks, git, files): `Bearer <job token>` with `X-Sourcegraph-Job-ID` and
 *   `X-Sourcegraph-Executor-Name`, or `token-executor <shared>` for backward compatibility.
 * Unknown executor names are refused (upstream lets them through), and a Bearer token must have been
 * issued to the executor named in the header.
 */
import { createHash, randomFillSync, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Store, TokenRecord } from '../../store/types.js';

/**
 * Digests of the configured secrets `constantTimeEqual` compares against (`expected`: the shared
 * executor token, the API and metrics tokens), kept so that a request hashes only what it sent.
 * Hashing both sides was 2.3 % of the server's CPU under 2,000 idle executors.
 */
const expectedDigests = new Map<string, Buffer>();

/** `presented === expected` in time independent of where they differ; `expected` is a configured secret. */
export function constantTimeEqual(presented: string, expected: string): boolean {
  let y = expectedDigests.get(expected);
  if (y === undefined) {
    y = createHash('sha256').update(expected).digest();
    // Configured secrets are a handful; the bound only keeps a misuse from growing the map.
    if (expectedDigests.size >= 16) expectedDigests.clear();
    expectedDigests.set(expected, y);
  }
  const x = createHash('sha256').update(presented).digest();
  return timingSafeEqual(x, y) && presented.length === expected.length;
}

const TOKEN_BYTES = 20;
const tokenPool = Buffer.alloc(TOKEN_BYTES * 256);
let tokenPoolAt = tokenPool.length;

/**
 * A new job token: 20 bytes from the system's CSPRNG, hex. The bytes are drawn 256 tokens at a
 * time into a pool (as Node does for randomUUID), since a call into the generator per dequeue is
 * a measurable part of it. Each byte of the pool is handed out once, then overwritten.
 */
export function newJobToken(): { token: string; hash: string } {
  if (tokenPoolAt + TOKEN_BYTES > tokenPool.length) {
    randomFillSync(tokenPool);
    tokenPoolAt = 0;
  }
  const raw = tokenPool.subarray(tokenPoolAt, tokenPoolAt + TOKEN_BYTES);
  tokenPoolAt += TOKEN_BYTES;
  const token = raw.toString('hex');
  const hash = createHash('sha256').update(raw).digest('hex');
  raw.fill(0);
  return { token, hash };
}

/** SHA-256 (hex) of the raw bytes a hex job token encodes; undefined when it is not hex. */
export function hashJobToken(token: string): string | undefined {
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(token)) return undefined;
  return createHash('sha256').update(Buffer.from(token, 'hex')).digest('hex');
}

export type AuthFailure = { status: number; text: string };

/** Shared-token check of queue routes. Null when authorised. */
export function checkExecutorToken(req: IncomingMessage, expected: string): AuthFailure | null {
  if (expected === '') return { status: 500, text: 'Executors are not configured on this instance' };
  const parts = (req.headers.authorization ?? '').split(' ');
  if (parts.length !== 2) {
    return {
      status: 401,
      text: `HTTP Authorization request header value must be of the following form: 'token-executor "TOKEN"'`,
    };
  }
  if (parts[0] !== 'token-executor') {
    return {
      status: 401,
      text: 'unrecognized HTTP Authorization request header scheme (supported values: "token-executor")',
    };
  }
  if (parts[1] === '') {
    return {
      status: 401,
      text: 'no token value in the HTTP Authorization request header (recommended) or basic auth (deprecated)',
    };
  }
  if (!constantTimeEqual(parts[1]!, expected)) return { status: 401, text: '' };
  return null;
}

/** What a job route is scoped to. */
export type JobScope = { kind: 'queue'; queue: string } | { kind: 'git'; repo: string } | { kind: 'files' };

/** Who made an authorised job request. `token` is absent on the shared-token path. */
export interface JobCaller {
  jobId: number;
  executorName: string;
  token?: TokenRecord;
}

export type JobAuthResult = { ok: true; caller: JobCaller } | { ok: false; failure: AuthFailure };

const fail = (status: number, text: string): JobAuthResult => ({ ok: false, failure: { status, text } });

function header(req: IncomingMessage, name: string): string {
  const v = req.headers[name];
  return (Array.isArray(v) ? v[0] : v) ?? '';
}

/** Go's strconv.Atoi error text, as upstream returns it. */
function parseJobIdHeader(text: string): number | string {
  if (/^[+-]?\d+$/.test(text)) {
    const n = Number(text);
    if (Number.isSafeInteger(n)) return n;
    return `failed to parse Job ID: strconv.Atoi: parsing ${JSON.stringify(text)}: value out of range`;
  }
  return `failed to parse Job ID: strconv.Atoi: parsing ${JSON.stringify(text)}: invalid syntax`;
}

export async function checkJobRequest(
  req: IncomingMessage,
  scope: JobScope,
  deps: { store: Store; executorsAccessToken: string },
): Promise<JobAuthResult> {
  const parts = header(req, 'authorization').split(' ');
  if (parts.length !== 2) {
    return fail(
      401,
      `HTTP Authorization request header value must be of the following form: 'Bearer "TOKEN"' or 'token-executor TOKEN'`,
    );
  }
  const [scheme, token] = parts as [string, string];
  if (scheme !== 'Bearer' && scheme !== 'token-executor') {
    return fail(
      401,
      'unrecognized HTTP Authorization request header scheme (supported values: "Bearer", "token-executor")',
    );
  }
  if (token === '') return fail(401, 'no token value in the HTTP Authorization request header');

  const jobIdText = header(req, 'x-sourcegraph-job-id');
  const executorName = header(req, 'x-sourcegraph-executor-name');

  if (scheme === 'token-executor') {
    if (deps.executorsAccessToken === '' || !constantTimeEqual(token, deps.executorsAccessToken))
      return fail(403, '');
    // Backward-compatible path: no token to check, so the headers name the job and executor the
    // handlers fence on (the Store still requires processing + owner + current attempt).
    const jobId = jobIdText === '' ? 0 : parseJobIdHeader(jobIdText);
    return { ok: true, caller: { jobId: typeof jobId === 'number' ? jobId : 0, executorName } };
  }

  if (jobIdText === '') return fail(400, `job ID not provided in header 'X-Sourcegraph-Job-ID'`);
  const jobId = parseJobIdHeader(jobIdText);
  if (typeof jobId === 'string') return fail(400, jobId);
  if (executorName === '') return fail(400, 'worker hostname cannot be empty');

  const hash = hashJobToken(token);
  // The token and the executor's existence in one read (one round trip on every job request).
  const { token: record, executorKnown: executor } = hash
    ? await deps.store.lookupTokenFor(hash, executorName)
    : { token: null, executorKnown: false };
  if (!record) return fail(401, 'invalid token');
  if (record.jobId !== jobId) return fail(403, 'invalid token');
  if (scope.kind === 'git' && record.repositoryName !== scope.repo) return fail(403, 'invalid token');
  if (scope.kind === 'queue' && record.queue !== scope.queue) return fail(403, 'invalid token');
  if (record.executorName !== executorName) return fail(403, 'invalid token');
  if (!executor) return fail(401, 'invalid token');
  return { ok: true, caller: { jobId, executorName, token: record } };
}
