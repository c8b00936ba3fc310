/**
 * Row shapes of the PostgreSQL schema (see ../rows.ts). BIGINT columns arrive as numbers (the pool's
 * type parser; every value is a millisecond time or a count far below 2^53), JSON as parsed values,
 * arrays as arrays, booleans as booleans, BYTEA as Buffers: the codec passes values through.
 */
import { createRowMappers, type ExecutorRow, type JobRow, type LogEntryRow } from '../rows.js';

export type PgJobRow = JobRow<unknown, boolean>;
export type PgLogEntryRow = LogEntryRow<unknown, boolean>;
export type PgExecutorRow = ExecutorRow<unknown>;

export const { toJob, toLogEntry, toExecutor, toExecutorSummary, executorValues } = createRowMappers<
  unknown,
  boolean
>({
  json: (v) => v,
  bool: (v) => v,
  list: (v) => v,
});
