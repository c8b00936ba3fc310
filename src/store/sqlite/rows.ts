/** Row shapes of the SQLite schema: JSON and list columns are JSON text, booleans 0/1 (see ../rows.ts). */
import {
  createRowMappers,
  type ExecutorRow as SharedExecutorRow,
  type JobRow as SharedJobRow,
  type LogEntryRow as SharedLogEntryRow,
} from '../rows.js';

export type JobRow = SharedJobRow<string, number>;
export type LogEntryRow = SharedLogEntryRow<string, number>;
export type ExecutorRow = SharedExecutorRow<string>;

export const { toJob, toLogEntry, toExecutor, toExecutorSummary, executorValues } = createRowMappers<
  string,
  number
>({
  json: (v) => JSON.parse(v),
  bool: (v) => v === 1,
  list: (v) => JSON.stringify(v),
});
