/**
 * The Job payload handed to executors by dequeue (Sourcegraph `internal/executor/types/job.go`).
 *
 * Two wire shapes exist. v1 (no `version` key): file `content` is a plain string and there is no
 * `dockerAuthConfig`. v2 (`"version":2`): `content` is base64 and `dockerAuthConfig` is always
 * present (`{}` when empty). Nil slices and maps are `null` on the wire, as Go encodes them.
 *
 * In memory a Job always has decoded file contents (Buffer) and non-null collections.
 */
import { z } from 'zod';

export const ZERO_TIME = '0001-01-01T00:00:00Z';

export interface VirtualMachineFile {
  /** Inline content (decoded). Empty when the file is fetched from the files endpoint. */
  content?: Buffer;
  /** Files-endpoint location: GET /.executors/files/<bucket>/<key>. */
  bucket?: string;
  key?: string;
  /** RFC 3339; ZERO_TIME means not set. */
  modifiedAt: string;
}

export interface DockerStep {
  key?: string;
  image: string;
  commands: string[];
  dir: string;
  env: string[];
}

export interface CliStep {
  key?: string;
  command: string[];
  dir: string;
  env: string[];
}

export interface DockerAuthConfig {
  auths?: Record<string, { auth: string }>;
}

export interface Job {
  /** 2 when the server sent the v2 shape; 1 otherwise. */
  version: 1 | 2;
  id: number;
  queue?: string;
  token: string;
  repositoryName: string;
  repositoryDirectory: string;
  commit: string;
  fetchTags: boolean;
  shallowClone: boolean;
  sparseCheckout: string[];
  files: Record<string, VirtualMachineFile>;
  dockerSteps: DockerStep[];
  cliSteps: CliStep[];
  redactedValues: Record<string, string>;
  dockerAuthConfig: DockerAuthConfig;
  /**
   * Extension: the attempt number this token was issued for. Our server sends it (Sourcegraph's
   * clients ignore unknown keys); absent from a Sourcegraph server. Used for labels only.
   */
  attempt?: number;
}

const nullableArray = <T extends z.ZodTypeAny>(item: T) =>
  z
    .array(item)
    .nullish()
    .transform((v) => v ?? []);

const base64 = z.string().refine((s) => /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0, {
  message: 'must be standard base64',
});

const wireFileV1 = z.object({
  content: z.string().optional(),
  bucket: z.string().optional(),
  key: z.string().optional(),
  modifiedAt: z.string().optional(),
});
const wireFileV2 = wireFileV1.extend({ content: base64.optional() });

const wireDockerStep = z.object({
  key: z.string().optional(),
  image: z.string().default(''),
  commands: nullableArray(z.string()),
  dir: z.string().default(''),
  env: nullableArray(z.string()),
});

const wireCliStep = z.object({
  key: z.string().optional(),
  command: nullableArray(z.string()),
  dir: z.string().default(''),
  env: nullableArray(z.string()),
});

const wireAuth = z.object({
  auths: z.record(z.object({ auth: base64 })).nullish(),
});

const wireJobCommon = {
  id: z.number().int(),
  queue: z.string().optional(),
  token: z.string().default(''),
  repositoryName: z.string().default(''),
  repositoryDirectory: z.string().default(''),
  commit: z.string().default(''),
  fetchTags: z.boolean().default(false),
  shallowClone: z.boolean().default(false),
  sparseCheckout: nullableArray(z.string()),
  dockerSteps: nullableArray(wireDockerStep),
  cliSteps: nullableArray(wireCliStep),
  redactedValues: z
    .record(z.string())
    .nullish()
    .transform((v) => v ?? {}),
  attempt: z.number().int().positive().optional(),
};

export const wireJobV1Schema = z
  .object({
    ...wireJobCommon,
    version: z.undefined().or(z.literal(1)).optional(),
    files: z
      .record(wireFileV1)
      .nullish()
      .transform((v) => v ?? {}),
  })
  .passthrough();

export const wireJobV2Schema = z
  .object({
    ...wireJobCommon,
    version: z.literal(2),
    files: z
      .record(wireFileV2)
      .nullish()
      .transform((v) => v ?? {}),
    dockerAuthConfig: wireAuth.nullish(),
  })
  .passthrough();

/**
 * Decodes a dequeue response body. Like the Go client it reads `version` first: 2 selects the v2
 * shape, anything else v1. Throws a ZodError when the payload does not fit.
 *
 * A well-formed payload is decoded by hand (the general validator cost about as much as the rest
 * of the client's work on a dequeue); anything the quick decoder is not sure of goes through the
 * schemas, so what is accepted, what is refused and every error text are the schemas'.
 */
export function decodeJob(body: unknown): Job {
  return decodeJobQuickly(body) ?? decodeJobWithSchemas(body);
}

/** The quick decoder alone: undefined for a payload it leaves to the schemas. */
export function decodeJobQuickly(body: unknown): Job | undefined {
  try {
    return decodeWellFormedJob(body);
  } catch (e) {
    if (e === NOT_WELL_FORMED) return undefined;
    throw e;
  }
}

/** Thrown by the quick decoder's readers: leave this payload to the schemas. */
const NOT_WELL_FORMED = Symbol('not well-formed');

function objectOf(v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw NOT_WELL_FORMED;
  return v as Record<string, unknown>;
}
function stringOr(v: unknown, absent: string): string {
  if (v === undefined) return absent;
  if (typeof v !== 'string') throw NOT_WELL_FORMED;
  return v;
}
function optionalString(v: unknown): string | undefined {
  return v === undefined ? undefined : stringOr(v, '');
}
function booleanOr(v: unknown, absent: boolean): boolean {
  if (v === undefined) return absent;
  if (typeof v !== 'boolean') throw NOT_WELL_FORMED;
  return v;
}
function stringList(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw NOT_WELL_FORMED;
  for (const x of v) if (typeof x !== 'string') throw NOT_WELL_FORMED;
  return v as string[];
}
/** Entries of a JSON object used as a map (null or absent: none). */
function mapEntries(v: unknown): [string, unknown][] {
  if (v === undefined || v === null) return [];
  const entries = Object.entries(objectOf(v));
  for (const [k] of entries) if (k === '__proto__') throw NOT_WELL_FORMED;
  return entries;
}
const isBase64 = (s: string) => /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0;

/** The schemas' decoding of a payload they accept, for the plain shapes; NOT_WELL_FORMED otherwise. */
function decodeWellFormedJob(body: unknown): Job {
  const w = objectOf(body);
  const v2 = w.version === 2;
  if (!v2 && w.version !== undefined && w.version !== 1) throw NOT_WELL_FORMED;
  const id = w.id;
  if (typeof id !== 'number' || !Number.isInteger(id)) throw NOT_WELL_FORMED;
  const attempt = w.attempt;
  if (attempt !== undefined && (typeof attempt !== 'number' || !Number.isInteger(attempt) || attempt <= 0))
    throw NOT_WELL_FORMED;
  const files: Record<string, VirtualMachineFile> = {};
  for (const [path, value] of mapEntries(w.files)) {
    const f = objectOf(value);
    const content = optionalString(f.content);
    if (content !== undefined && v2 && !isBase64(content)) throw NOT_WELL_FORMED;
    files[path] = {
      content: content !== undefined ? Buffer.from(content, v2 ? 'base64' : 'utf8') : undefined,
      bucket: optionalString(f.bucket) || undefined,
      key: optionalString(f.key) || undefined,
      modifiedAt: optionalString(f.modifiedAt) ?? ZERO_TIME,
    };
  }
  const dockerSteps: DockerStep[] = (w.dockerSteps == null ? [] : listOf(w.dockerSteps)).map((value) => {
    const step = objectOf(value);
    const key = optionalString(step.key);
    return {
      ...(key !== undefined ? { key } : {}),
      image: stringOr(step.image, ''),
      commands: stringList(step.commands),
      dir: stringOr(step.dir, ''),
      env: stringList(step.env),
    };
  });
  const cliSteps: CliStep[] = (w.cliSteps == null ? [] : listOf(w.cliSteps)).map((value) => {
    const step = objectOf(value);
    const key = optionalString(step.key);
    return {
      ...(key !== undefined ? { key } : {}),
      command: stringList(step.command),
      dir: stringOr(step.dir, ''),
      env: stringList(step.env),
    };
  });
  const redactedValues: Record<string, string> = {};
  for (const [k, v] of mapEntries(w.redactedValues)) {
    if (typeof v !== 'string') throw NOT_WELL_FORMED;
    redactedValues[k] = v;
  }
  let dockerAuthConfig: DockerAuthConfig = {};
  if (v2 && w.dockerAuthConfig !== undefined && w.dockerAuthConfig !== null) {
    const auth = objectOf(w.dockerAuthConfig);
    if (auth.auths !== undefined && auth.auths !== null) {
      const auths: Record<string, { auth: string }> = {};
      for (const [registry, value] of mapEntries(auth.auths)) {
        const a = objectOf(value).auth;
        if (typeof a !== 'string' || !isBase64(a)) throw NOT_WELL_FORMED;
        auths[registry] = { auth: a };
      }
      dockerAuthConfig = { auths };
    }
  }
  return {
    version: v2 ? 2 : 1,
    id,
    queue: optionalString(w.queue) || undefined,
    token: stringOr(w.token, ''),
    repositoryName: stringOr(w.repositoryName, ''),
    repositoryDirectory: stringOr(w.repositoryDirectory, ''),
    commit: stringOr(w.commit, ''),
    fetchTags: booleanOr(w.fetchTags, false),
    shallowClone: booleanOr(w.shallowClone, false),
    sparseCheckout: stringList(w.sparseCheckout),
    files,
    dockerSteps,
    cliSteps,
    redactedValues,
    dockerAuthConfig,
    attempt,
  };
}

function listOf(v: unknown): unknown[] {
  if (!Array.isArray(v)) throw NOT_WELL_FORMED;
  return v;
}

/** The schemas' decoding (see decodeJob); exported for the tests that compare the two. */
export function decodeJobWithSchemas(body: unknown): Job {
  const v2 = (body as { version?: unknown } | null)?.version === 2;
  const w = v2 ? wireJobV2Schema.parse(body) : wireJobV1Schema.parse(body);
  // v2 carries file contents as base64 (Go []byte), v1 as plain text.
  const encoding: BufferEncoding = v2 ? 'base64' : 'utf8';
  const auths = v2 ? (w as z.output<typeof wireJobV2Schema>).dockerAuthConfig?.auths : undefined;
  return {
    version: v2 ? 2 : 1,
    id: w.id,
    queue: w.queue || undefined,
    token: w.token,
    repositoryName: w.repositoryName,
    repositoryDirectory: w.repositoryDirectory,
    commit: w.commit,
    fetchTags: w.fetchTags,
    shallowClone: w.shallowClone,
    sparseCheckout: w.sparseCheckout,
    files: Object.fromEntries(
      Object.entries(w.files).map(([p, f]) => [
        p,
        {
          content: f.content !== undefined ? Buffer.from(f.content, encoding) : undefined,
          bucket: f.bucket || undefined,
          key: f.key || undefined,
          modifiedAt: f.modifiedAt ?? ZERO_TIME,
        },
      ]),
    ),
    dockerSteps: w.dockerSteps,
    cliSteps: w.cliSteps,
    redactedValues: w.redactedValues,
    dockerAuthConfig: auths ? { auths } : {},
    attempt: w.attempt,
  };
}

const nullIfEmpty = <T>(a: T[]): T[] | null => (a.length === 0 ? null : a);
const nullIfEmptyMap = <T>(m: Record<string, T>): Record<string, T> | null =>
  Object.keys(m).length === 0 ? null : m;

/**
 * Encodes a Job for the wire in the shape `version` asks for, key order and nulls as the Go server
 * writes them, so byte-level fixtures from Sourcegraph's tests hold.
 */
export function encodeJob(job: Job, version: 1 | 2): Record<string, unknown> {
  const files: Record<string, unknown> = {};
  for (const [p, f] of Object.entries(job.files)) {
    const out: Record<string, unknown> = {};
    if (f.content !== undefined && f.content.length > 0) {
      out.content = version === 2 ? f.content.toString('base64') : f.content.toString('utf8');
    }
    if (f.bucket) out.bucket = f.bucket;
    if (f.key) out.key = f.key;
    out.modifiedAt = f.modifiedAt || ZERO_TIME;
    files[p] = out;
  }
  const body: Record<string, unknown> = {};
  if (version === 2) body.version = 2;
  body.id = job.id;
  body.token = job.token;
  if (job.queue) body.queue = job.queue;
  body.repositoryName = job.repositoryName;
  body.repositoryDirectory = job.repositoryDirectory;
  body.commit = job.commit;
  body.fetchTags = job.fetchTags;
  body.shallowClone = job.shallowClone;
  body.sparseCheckout = nullIfEmpty(job.sparseCheckout);
  body.files = files;
  body.dockerSteps = nullIfEmpty(
    job.dockerSteps.map((s) => ({
      ...(s.key ? { key: s.key } : {}),
      image: s.image,
      commands: nullIfEmpty(s.commands),
      dir: s.dir,
      env: nullIfEmpty(s.env),
    })),
  );
  body.cliSteps = nullIfEmpty(
    job.cliSteps.map((s) => ({
      ...(s.key ? { key: s.key } : {}),
      command: nullIfEmpty(s.command),
      dir: s.dir,
      env: nullIfEmpty(s.env),
    })),
  );
  body.redactedValues = nullIfEmptyMap(job.redactedValues);
  if (version === 2) {
    body.dockerAuthConfig = job.dockerAuthConfig.auths ? { auths: job.dockerAuthConfig.auths } : {};
  }
  if (job.attempt !== undefined) body.attempt = job.attempt;
  return body;
}

/** `"<id>"`, or `"<id>-<queue>"` when the job came from a multi-queue dequeue (RecordUID). */
export function recordUid(job: Pick<Job, 'id' | 'queue'>): string {
  return job.queue ? `${job.id}-${job.queue}` : String(job.id);
}
