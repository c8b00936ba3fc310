/**
 * Log entries and their output. Every write checks the attempt's fence in the same IMMEDIATE
 * transaction as the write, and the per-attempt output cap (planOutput) in the same transaction as
 * the chunk it admits, so concurrent writers of one job cannot exceed it. Reads are single statements.
 */

import {
  cutOutput,
  entryMetaBytes,
  logFullError,
  newSuffix,
  planOutput,
  tooManyEntriesError,
} from '../log-output.js';
import type {
  AppendResult,
  AttemptFence,
  LogEntriesQuery,
  LogEntryInput,
  LogEntryRecord,
  Store,
} from '../types.js';
import type { SqliteContext } from './connection.js';
import { type LogEntryRow, toLogEntry } from './rows.js';

/**
 * Appends `incoming` to an entry after the per-attempt cap. Runs inside the caller's transaction.
 * Returns the entry's stored length afterwards and whether the attempt is (now) truncated.
 */
/** What an attempt's log holds: its bytes (keys, commands, output), entries, and the cap's flag. */
function usageOf(
  q: SqliteContext['q'],
  f: AttemptFence,
): { bytes: number; entries: number; truncated: number } {
  return q(
    `SELECT COALESCE(SUM(out_length + meta_bytes), 0) AS bytes, COUNT(*) AS entries,
       COALESCE(MAX(truncated), 0) AS truncated
     FROM log_entries WHERE job_id = ? AND attempt = ?`,
  ).get(f.jobId, f.attempt) as { bytes: number; entries: number; truncated: number };
}

function writeOutput(
  q: SqliteContext['q'],
  f: AttemptFence,
  entryId: number,
  storedBytes: number,
  incoming: Buffer,
  maxOutputBytes: number,
): { length: number; truncated: boolean } {
  const usage = usageOf(q, f);
  const plan = planOutput(incoming, usage.bytes, usage.truncated === 1, maxOutputBytes);
  if (plan.data.length > 0) {
    q(
      `INSERT INTO log_chunks (job_id, attempt, entry_id, seq, byte_offset, data)
       SELECT ?, ?, ?, COALESCE(MAX(seq), 0) + 1, ?, ? FROM log_chunks
       WHERE job_id = ? AND attempt = ? AND entry_id = ?`,
    ).run(f.jobId, f.attempt, entryId, storedBytes, plan.data, f.jobId, f.attempt, entryId);
    q(
      `UPDATE log_entries SET out_length = out_length + ?, truncated = max(truncated, ?)
       WHERE job_id = ? AND attempt = ? AND entry_id = ?`,
    ).run(plan.data.length, plan.truncate ? 1 : 0, f.jobId, f.attempt, entryId);
  }
  return { length: storedBytes + plan.data.length, truncated: usage.truncated === 1 || plan.truncate };
}

/**
 * The stored output of an entry from byte `from`, at most `maxBytes` of it: chunks overlapping the
 * range, each cut by substr() in the database, so a read of a 64 KiB window of a 60 MiB entry loads
 * 64 KiB (one synchronous better-sqlite3 call; its cost is what it returns).
 */
function readOutput(
  q: SqliteContext['q'],
  jobId: number,
  attempt: number,
  entryId: number,
  from: number,
  maxBytes = Number.MAX_SAFE_INTEGER,
): string {
  const start = Math.max(0, Math.floor(from));
  const span = Math.max(1, Math.floor(maxBytes));
  // At least one whole UTF-8 character (4 bytes), so that a reader always moves on.
  const readBytes = Math.max(4, span);
  const chunks = q(
    `SELECT substr(data, max(? - byte_offset, 0) + 1, ?) AS data FROM log_chunks
     WHERE job_id = ? AND attempt = ? AND entry_id = ? AND byte_offset + length(data) > ? AND byte_offset < ?
     ORDER BY seq`,
  ).all(start, readBytes, jobId, attempt, entryId, start, start + readBytes) as { data: Buffer }[];
  if (chunks.length === 0) return '';
  return cutOutput(Buffer.concat(chunks.map((c) => c.data)), span);
}

/** The job's current attempt, or the last one with entries before any claim; undefined: no such job. */
function latestAttempt(q: SqliteContext['q'], jobId: number): number | undefined {
  const job = q('SELECT attempts FROM jobs WHERE id = ?').get(jobId) as { attempts: number } | undefined;
  if (!job) return undefined;
  if (job.attempts > 0) return job.attempts;
  return (
    (q('SELECT MAX(attempt) AS a FROM log_entries WHERE job_id = ?').get(jobId) as { a: number | null }).a ??
    0
  );
}

export function logQueries(
  c: SqliteContext,
): Pick<Store, 'addLogEntry' | 'updateLogEntry' | 'appendLogOutput' | 'getLogEntries' | 'readLogOutput'> {
  const { q, tx, fenceHolds } = c;

  const addLogEntryTx = tx(
    (f: AttemptFence, entry: LogEntryInput, maxOutputBytes: number, maxEntries: number): number | null => {
      if (!fenceHolds(f)) return null;
      const usage = usageOf(q, f);
      if (usage.entries >= maxEntries) throw tooManyEntriesError(maxEntries);
      const meta = entryMetaBytes(entry);
      if (usage.bytes + meta > maxOutputBytes) throw logFullError(maxOutputBytes);
      const { next } = q(
        'SELECT COALESCE(MAX(entry_id), 0) + 1 AS next FROM log_entries WHERE job_id = ? AND attempt = ?',
      ).get(f.jobId, f.attempt) as { next: number };
      q(
        `INSERT INTO log_entries (job_id, attempt, entry_id, key, command, start_time, exit_code, duration_ms,
         meta_bytes)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        f.jobId,
        f.attempt,
        next,
        entry.key,
        entry.command === null ? null : JSON.stringify(entry.command),
        entry.startTime,
        entry.exitCode ?? null,
        entry.durationMs ?? null,
        meta,
      );
      writeOutput(q, f, next, 0, newSuffix(entry.out, 0), maxOutputBytes);
      return next;
    },
  );

  const getEntryRow = (f: AttemptFence, entryId: number) =>
    q('SELECT * FROM log_entries WHERE job_id = ? AND attempt = ? AND entry_id = ?').get(
      f.jobId,
      f.attempt,
      entryId,
    ) as LogEntryRow | undefined;

  const updateLogEntryTx = tx(
    (f: AttemptFence, entryId: number, entry: LogEntryInput, maxOutputBytes: number): boolean => {
      if (!fenceHolds(f)) return false;
      const cur = getEntryRow(f, entryId);
      if (!cur) return false;
      const meta = entryMetaBytes(entry);
      if (meta > cur.meta_bytes && usageOf(q, f).bytes + meta - cur.meta_bytes > maxOutputBytes)
        throw logFullError(maxOutputBytes);
      q(
        `UPDATE log_entries SET key = ?, command = ?, start_time = ?, exit_code = ?, duration_ms = ?,
           meta_bytes = ?
         WHERE job_id = ? AND attempt = ? AND entry_id = ?`,
      ).run(
        entry.key,
        entry.command === null ? null : JSON.stringify(entry.command),
        entry.startTime,
        entry.exitCode ?? null,
        entry.durationMs ?? null,
        meta,
        f.jobId,
        f.attempt,
        entryId,
      );
      writeOutput(q, f, entryId, cur.out_length, newSuffix(entry.out, cur.out_length), maxOutputBytes);
      return true;
    },
  );

  const appendLogOutputTx = tx(
    (
      f: AttemptFence,
      entryId: number,
      offset: number,
      out: string | Buffer,
      fields: { exitCode?: number; durationMs?: number },
      maxOutputBytes: number,
    ): AppendResult => {
      if (!fenceHolds(f)) return { ok: false, reason: 'not-owner' };
      const cur = getEntryRow(f, entryId);
      if (!cur) return { ok: false, reason: 'not-owner' };
      const attemptTruncated =
        q('SELECT 1 FROM log_entries WHERE job_id = ? AND attempt = ? AND truncated = 1').get(
          f.jobId,
          f.attempt,
        ) !== undefined;
      const bytes = typeof out === 'string' ? Buffer.from(out, 'utf8') : out;
      if (!attemptTruncated && offset > cur.out_length)
        return { ok: false, reason: 'gap', length: cur.out_length };
      if (fields.exitCode !== undefined || fields.durationMs !== undefined) {
        q(
          `UPDATE log_entries SET exit_code = COALESCE(?, exit_code), duration_ms = COALESCE(?, duration_ms)
           WHERE job_id = ? AND attempt = ? AND entry_id = ?`,
        ).run(fields.exitCode ?? null, fields.durationMs ?? null, f.jobId, f.attempt, entryId);
      }
      // After the cap every write is acknowledged as if stored, so the executor's offsets keep going.
      if (attemptTruncated) return { ok: true, length: offset + bytes.length };
      if (offset + bytes.length <= cur.out_length) return { ok: true, length: cur.out_length };
      const r = writeOutput(
        q,
        f,
        entryId,
        cur.out_length,
        bytes.subarray(cur.out_length - offset),
        maxOutputBytes,
      );
      return { ok: true, length: r.truncated ? offset + bytes.length : r.length };
    },
  );

  return {
    async addLogEntry(f: AttemptFence, entry: LogEntryInput, maxOutputBytes: number, maxEntries = Infinity) {
      return addLogEntryTx(f, entry, maxOutputBytes, maxEntries);
    },

    async updateLogEntry(f: AttemptFence, entryId: number, entry: LogEntryInput, maxOutputBytes: number) {
      return updateLogEntryTx(f, entryId, entry, maxOutputBytes);
    },

    async appendLogOutput(f, entryId, offset, out, fields, maxOutputBytes) {
      return appendLogOutputTx(f, entryId, offset, out, fields, maxOutputBytes);
    },

    async getLogEntries(jobId: number, o: LogEntriesQuery = {}) {
      const attempt = o.attempt ?? latestAttempt(q, jobId);
      if (attempt === undefined) return [];
      const ids = o.entryIds ? [...o.entryIds] : undefined;
      if (ids && ids.length === 0) return [];
      const cut = o.commandChars === undefined ? [] : Array(3).fill(Math.max(0, Math.floor(o.commandChars)));
      // One statement; the primary key (job_id, attempt, entry_id) serves the range and the order.
      const rows = q(
        `SELECT job_id, attempt, entry_id, key, start_time, exit_code, duration_ms, out_length, truncated,
           ${
             cut.length === 0
               ? 'command, NULL AS command_prefix'
               : `CASE WHEN length(command) > ? THEN NULL ELSE command END AS command,
                  CASE WHEN length(command) > ? THEN substr(command, 1, ?) END AS command_prefix`
           }
         FROM log_entries WHERE job_id = ? AND attempt = ? AND entry_id > ?
         ${ids ? `AND entry_id IN (${ids.map(() => '?').join(', ')})` : ''}
         ORDER BY entry_id LIMIT ?`,
      ).all(...cut, jobId, attempt, o.afterEntryId ?? 0, ...(ids ?? []), o.limit ?? -1) as LogEntryRow[];
      const entries: LogEntryRecord[] = rows.map(toLogEntry);
      if (o.withOutput) for (const e of entries) e.out = readOutput(q, jobId, e.attempt, e.entryId, 0);
      return entries;
    },

    async readLogOutput(jobId: number, attempt: number, entryId: number, from: number, maxBytes?: number) {
      return readOutput(q, jobId, attempt, entryId, from, maxBytes);
    },
  };
}
