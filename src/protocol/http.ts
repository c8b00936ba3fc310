/**
 * Request and response bodies of the `/.executors/queue` API (Sourcegraph
 * `internal/executor/types/http.go` and `internal/executor/store.go`), with zod schemas for the
 * server to validate what it receives and for the executor to read what it gets back.
 */
import { z } from 'zod';

/** Job ids arrive as JSON numbers or strings; they are handled as decimal strings. */
export const jobIdSchema = z.union([
  z.string().max(200),
  z
    .number()
    .finite()
    .transform((n) => String(n)),
]);

const idList = z
  .array(jobIdSchema)
  .max(10_000)
  .nullish()
  .transform((v) => v ?? []);

export const dequeueRequestSchema = z.object({
  executorName: z.string().max(512).default(''),
  version: z.string().max(200).default(''),
  numCPUs: z.number().int().nonnegative().max(1_000_000).optional(),
  memory: z.string().max(64).optional(),
  diskSpace: z.string().max(64).optional(),
  queues: z.array(z.string().max(200)).max(1000).nullish(),
});
export type DequeueRequest = z.input<typeof dequeueRequestSchema>;

export const jobIdsByQueueSchema = z.object({
  queueName: z.string().max(200),
  jobIds: idList,
});
export type QueueJobIds = { queueName: string; jobIds: string[] };

const telemetry = {
  os: z.string().max(200).default(''),
  architecture: z.string().max(200).default(''),
  dockerVersion: z.string().max(200).default(''),
  executorVersion: z.string().max(200).default(''),
  gitVersion: z.string().max(200).default(''),
  igniteVersion: z.string().max(200).default(''),
  srcCliVersion: z.string().max(200).default(''),
  prometheusMetrics: z
    .string()
    .max(4 * 1024 * 1024)
    .default(''),
};

/** Single-queue heartbeat ("V1" request shape, `version:"V2"`, integer `jobIds`) and multi-queue one. */
export const heartbeatRequestSchema = z.object({
  version: z.string().max(20).default(''),
  executorName: z.string().max(512).default(''),
  jobIds: idList,
  queueNames: z.array(z.string().max(200)).max(1000).nullish(),
  jobIdsByQueue: z.array(jobIdsByQueueSchema).max(1000).nullish(),
  ...telemetry,
});
export type HeartbeatRequest = z.output<typeof heartbeatRequestSchema>;

export type Telemetry = {
  os: string;
  architecture: string;
  dockerVersion: string;
  executorVersion: string;
  gitVersion: string;
  igniteVersion: string;
  srcCliVersion: string;
};

/** Accepts `knownIds`/`knownIDs` and `cancelIds`/`cancelIDs`, ids as strings or numbers, `null` as empty. */
export function decodeHeartbeatResponse(body: unknown): { knownIds: string[]; cancelIds: string[] } {
  const obj = (body ?? {}) as Record<string, unknown>;
  const pick = (name: string): string[] => {
    const key = Object.keys(obj).find((k) => k.toLowerCase() === name.toLowerCase());
    const v = key ? obj[key] : null;
    if (v == null) return [];
    if (!Array.isArray(v)) throw new Error(`heartbeat response: ${name} is not an array`);
    return v.map((x) => {
      if (typeof x === 'string') return x;
      if (typeof x === 'number') return String(x);
      throw new Error(`heartbeat response: ${name} holds a ${typeof x}`);
    });
  };
  return { knownIds: pick('knownIds'), cancelIds: pick('cancelIds') };
}

export interface HeartbeatResponse {
  knownIds: string[] | null;
  cancelIds: string[] | null;
}

export const executionLogEntrySchema = z.object({
  key: z.string().max(1000),
  command: z
    .array(z.string())
    .max(10_000)
    .nullish()
    .transform((v) => v ?? null),
  startTime: z.string().max(100),
  exitCode: z.number().int().optional(),
  out: z.string().optional(),
  durationMs: z.number().int().nonnegative().optional(),
});
export type ExecutionLogEntry = z.input<typeof executionLogEntrySchema>;

const jobOperation = {
  executorName: z.string().max(512).default(''),
  jobId: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
};

export const addExecutionLogEntryRequestSchema = executionLogEntrySchema.extend(jobOperation);
export const updateExecutionLogEntryRequestSchema = executionLogEntrySchema.extend({
  ...jobOperation,
  entryId: z.number().int().positive().max(1_000_000),
});
export const markCompleteRequestSchema = z.object(jobOperation);
export const markErroredRequestSchema = z.object({ ...jobOperation, errorMessage: z.string().default('') });

/**
 * Extension (our servers only, advertised as the `log-append` capability): send only new output with
 * the byte offset (in UTF-8 bytes of `out` so far) where it starts. Idempotent on retry: a chunk that
 * is already stored is acknowledged, a gap is refused with 409 and the current length.
 */
export const appendExecutionLogEntryRequestSchema = z.object({
  ...jobOperation,
  entryId: z.number().int().positive().max(1_000_000),
  offset: z.number().int().nonnegative(),
  out: z.string().default(''),
  exitCode: z.number().int().optional(),
  durationMs: z.number().int().nonnegative().optional(),
});
export type AppendExecutionLogEntryRequest = z.input<typeof appendExecutionLogEntryRequestSchema>;
/** 200 body of appendExecutionLogEntry, and of its 409: the stored length in bytes. */
export interface AppendExecutionLogEntryResponse {
  length: number;
}
