/**
 * Where the job logger sends entries: the executor client's addExecutionLogEntry /
 * updateExecutionLogEntry, or our log-append extension when the server advertises it.
 */

/** One log entry as sent on the wire (Sourcegraph's `ExecutionLogEntry`). */
export interface WireLogEntry {
  key: string;
  command: string[] | null;
  /** RFC 3339. */
  startTime: string;
  exitCode?: number;
  out?: string;
  durationMs?: number;
}

export interface LogSink {
  /** addExecutionLogEntry; resolves to the entry id. */
  add(entry: WireLogEntry): Promise<number>;
  /** updateExecutionLogEntry with the full snapshot (Sourcegraph semantics). */
  update(entryId: number, entry: WireLogEntry): Promise<void>;
  /**
   * Log-append extension, present only when the server advertises `log-append`: `out` is the UTF-8
   * output (whole characters) that starts at byte `offset` of the entry's output. Retrying the same
   * call is idempotent. `out` may be a view of a buffer the logger reuses once the call returns, so
   * a sink that needs the bytes later (to send or retry) copies them before it returns its promise.
   */
  append?(
    entryId: number,
    offset: number,
    out: Buffer,
    fields: { exitCode?: number; durationMs?: number },
  ): Promise<void>;
}

/**
 * The server refused a log write over one of its bounds (413: entries per job, the job's log cap,
 * a command's size). `commandLimitBytes` is the command bound when that is the one it named.
 */
export class LogRefusedError extends Error {
  constructor(
    readonly serverText: string,
    readonly commandLimitBytes?: number,
  ) {
    super(`the server refused the log entry: ${serverText}`);
    this.name = 'LogRefusedError';
  }
}
