/**
 * What one running job hands to everything that works on it (runtimes, workspace preparation, host
 * commands): its cancel switch and its log. The handler creates one JobContext per job; the job
 * logger (logs/) implements JobLogger.
 */

/** Writes a log entry (redacted on the way out). Returned by JobLogger.entry(). */
export interface LogEntryHandle {
  /**
   * Appends output; `stream` prefixes each line as Sourcegraph does (`stdout: `, `stderr: `). The
   * chunk is read only during the call, so a caller may pass a view of a buffer it reuses.
   */
  write(stream: 'stdout' | 'stderr', chunk: Buffer | string): void;
  /** Appends raw text (no prefix), for entries such as `setup.fs.extras` and `teardown.fs`. */
  writeRaw(text: string): void;
  /** Ends the entry with an exit code; durationMs is measured by the logger. */
  close(exitCode: number): void;
}

export interface JobLogger {
  /** Opens a log entry with its key and command (argv; redacted before upload). */
  entry(key: string, command: string[] | null): LogEntryHandle;
}

export interface JobContext {
  /** Aborted on cancel, timeout or forced shutdown; the reason is an Error naming which. */
  signal: AbortSignal;
  logger: JobLogger;
  executorName: string;
}
