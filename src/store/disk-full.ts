/**
 * A write refused because the database's disk is full: SQLite's SQLITE_FULL (better-sqlite3 sets
 * `code`), PostgreSQL's disk_full (SQLSTATE 53100), or ENOSPC from the file system. The server
 * answers these as 503 UNAVAILABLE with DISK_FULL_MESSAGE (never a 500 with the driver's text):
 * the write was not stored, nothing stored is harmed (the transaction rolled back), and the same
 * request succeeds once space is freed, so clients retry.
 */
import { AppError } from '../lib/errors.js';

const CODES: ReadonlySet<string> = new Set(['SQLITE_FULL', '53100', 'ENOSPC']);

export const DISK_FULL_MESSAGE =
  "The server's disk is full: this write was not stored. Reads still work; retry once space is freed.";

export function isDiskFull(e: unknown): boolean {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && CODES.has(code)) return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

/** `e` as AppError UNAVAILABLE when it is a full disk, else `e` itself. */
export function diskFullAsUnavailable(e: unknown): unknown {
  return isDiskFull(e) ? new AppError('UNAVAILABLE', DISK_FULL_MESSAGE, { cause: e }) : e;
}
