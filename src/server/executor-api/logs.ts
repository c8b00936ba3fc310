/**
 * Log writes of a job: `addExecutionLogEntry`, `updateExecutionLogEntry` (Sourcegraph's, full
 * output each time, stored as the new suffix) and our `appendExecutionLogEntry` extension (new
 * output at a byte offset; 409 with the stored length on a gap). Every write is fenced to the
 * caller's attempt, secrets that still arrive are masked, and the per-job output cap applies. An
 * accepted write wakes the job's followers at once (log-notifier.ts).
 */

import type { z } from 'zod';
import { isAppError } from '../../lib/errors.js';
import {
  addExecutionLogEntryRequestSchema,
  appendExecutionLogEntryRequestSchema,
  updateExecutionLogEntryRequestSchema,
} from '../../protocol/http.js';
import { entryMetaBytes } from '../../store/log-output.js';
import type { JobRecord, LogEntryInput } from '../../store/types.js';
import type { RouteDeps } from '../deps.js';
import type { RouteContext, Router } from '../http.js';
import { sendEmpty, sendJson, sendText } from '../http.js';
import { logWritten } from '../log-notifier.js';
import { decode, decodeBytes, Responded, wrapExecutorHandler as wrap } from './envelope.js';
import { fenceFor, requireJob } from './guards.js';
import { maskSecretBytes, maskSecrets } from './mask-secrets.js';

function logEntry(body: LogEntryInput, secrets: string[]): LogEntryInput {
  return {
    key: body.key,
    command: body.command ? body.command.map((c) => maskSecrets(c, secrets)) : null,
    startTime: body.startTime,
    exitCode: body.exitCode,
    durationMs: body.durationMs,
    out: body.out === undefined ? undefined : maskSecrets(body.out, secrets),
  };
}

export const secretsOf = (job: JobRecord | null): string[] => Object.values(job?.spec.secrets ?? {});

/** Longest log key, in UTF-8 bytes (`step.docker.<key>` and the like are far shorter). */
export const MAX_LOG_KEY_BYTES = 256;

/**
 * The bounds of one entry that need no store: its key's length and its command's size. Beyond
 * either, 413 with a text naming the bound (the executor shortens commands before sending).
 */
function checkEntryBounds(ctx: RouteContext, deps: RouteDeps, body: LogEntryInput): void {
  const keyBytes = Buffer.byteLength(body.key, 'utf8');
  if (keyBytes > MAX_LOG_KEY_BYTES) {
    refuseTooLarge(ctx, `log entry key is ${keyBytes} bytes, longer than ${MAX_LOG_KEY_BYTES} bytes`);
  }
  const commandBytes = entryMetaBytes(body) - keyBytes;
  const max = deps.config.maxLogCommandBytes;
  if (commandBytes > max) {
    refuseTooLarge(
      ctx,
      `log entry command is ${commandBytes} bytes, more than ${max} bytes (EXECUTOR_SERVER_MAX_LOG_COMMAND_BYTES)`,
    );
  }
}

function refuseTooLarge(ctx: RouteContext, text: string): never {
  sendText(ctx.res, 413, `${text}\n`);
  throw new Responded();
}

/** A store refusal of the entry count or the per-attempt cap: 413 with its message. */
async function boundedWrite<T>(ctx: RouteContext, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (e) {
    if (isAppError(e) && e.code === 'PAYLOAD_TOO_LARGE') refuseTooLarge(ctx, e.message);
    throw e;
  }
}

/** The numeric fields of an append, when they come in the query string (log-append-bytes). */
const APPEND_NUMBERS: ReadonlySet<string> = new Set(['jobId', 'entryId', 'offset', 'exitCode', 'durationMs']);

/**
 * An append's fields and output: a JSON body (log-append), or the output as the raw body with the
 * fields in the query string (log-append-bytes, `Content-Type: application/octet-stream`).
 */
async function decodeAppend(
  ctx: RouteContext,
  deps: RouteDeps,
): Promise<{ fields: z.output<typeof appendExecutionLogEntryRequestSchema>; out: string | Buffer }> {
  const type = ctx.req.headers['content-type'] ?? '';
  if (/^application\/octet-stream\s*(;|$)/i.test(type)) {
    const { fields, bytes } = await decodeBytes(
      ctx,
      deps,
      appendExecutionLogEntryRequestSchema,
      APPEND_NUMBERS,
    );
    return { fields, out: bytes };
  }
  const fields = await decode(ctx, deps, appendExecutionLogEntryRequestSchema);
  return { fields, out: fields.out };
}

/** Upstream's answer to a write for a job (or attempt) the store does not know. */
const unknownJob = (ctx: RouteContext) => sendJson(ctx.res, 500, { error: 'unknown job' });

export function registerLogRoutes(router: Router, deps: RouteDeps): void {
  const { store, config } = deps;

  router.add(
    'POST',
    '/.executors/queue/:queue/addExecutionLogEntry',
    wrap(deps, async (ctx) => {
      const caller = await requireJob(ctx, deps, { kind: 'queue', queue: ctx.params.queue! });
      const body = await decode(ctx, deps, addExecutionLogEntryRequestSchema);
      checkEntryBounds(ctx, deps, body);
      const { fence, job } = await fenceFor(ctx, deps, caller, body);
      const id = await boundedWrite(ctx, () =>
        store.addLogEntry(
          fence,
          logEntry(body, secretsOf(job)),
          config.maxLogBytesPerJob,
          config.maxLogEntriesPerJob,
        ),
      );
      if (id === null) return unknownJob(ctx);
      sendJson(ctx.res, 200, id);
      logWritten(deps, fence.jobId);
    }),
  );

  router.add(
    'POST',
    '/.executors/queue/:queue/updateExecutionLogEntry',
    wrap(deps, async (ctx) => {
      const caller = await requireJob(ctx, deps, { kind: 'queue', queue: ctx.params.queue! });
      const body = await decode(ctx, deps, updateExecutionLogEntryRequestSchema);
      checkEntryBounds(ctx, deps, body);
      const { fence, job } = await fenceFor(ctx, deps, caller, body);
      const ok = await boundedWrite(ctx, () =>
        store.updateLogEntry(fence, body.entryId, logEntry(body, secretsOf(job)), config.maxLogBytesPerJob),
      );
      if (!ok) return unknownJob(ctx);
      sendEmpty(ctx.res, 204);
      logWritten(deps, fence.jobId);
    }),
  );

  router.add(
    'POST',
    '/.executors/queue/:queue/appendExecutionLogEntry',
    wrap(deps, async (ctx) => {
      const caller = await requireJob(ctx, deps, { kind: 'queue', queue: ctx.params.queue! });
      const { fields: body, out } = await decodeAppend(ctx, deps);
      const { fence, job } = await fenceFor(ctx, deps, caller, body);
      // Masking keeps the byte length, so offsets stay those the executor counts.
      const secrets = secretsOf(job);
      const r = await store.appendLogOutput(
        fence,
        body.entryId,
        body.offset,
        typeof out === 'string' ? maskSecrets(out, secrets) : maskSecretBytes(out, secrets),
        { exitCode: body.exitCode, durationMs: body.durationMs },
        config.maxLogBytesPerJob,
      );
      if (r.ok) {
        sendJson(ctx.res, 200, { length: r.length });
        logWritten(deps, fence.jobId);
      } else if (r.reason === 'gap') sendJson(ctx.res, 409, { length: r.length });
      else unknownJob(ctx);
    }),
  );
}
