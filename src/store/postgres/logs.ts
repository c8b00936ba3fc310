/**
 * Log entries and their output. A write is a short transaction that locks the job row if the fence
 * holds (FOR NO KEY UPDATE, with the fence in its WHERE) while it reads the attempt's byte count and
 * appends, so concurrent writes to one job cannot both append the same suffix or overshoot the cap.
 * Reads are single statements.
 */
import type pg from 'pg';
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
import type { PgContext } from './connection.js';
import { type PgLogEntryRow, toLogEntry } from './rows.js';

/**
 * Locks the job row if the fence holds (inside a log-write transaction) and returns the attempt's
 * usage (bytes of keys, commands and output; entries); null when fenced out.
 */
async function lockFence(
  c: pg.PoolClient,
  f: AttemptFence,
): Promise<{ bytes: number; entries: number; truncated: boolean } | null> {
  const held = await c.query(
    `SELECT id FROM jobs WHERE id = $1 AND state = 'processing' AND worker_hostname = $2 AND attempts = $3
     FOR NO KEY UPDATE`,
    [f.jobId, f.executorName, f.attempt],
  );
  if (held.rowCount === 0) return null;
  const u = await c.query<{ bytes: number; entries: number; truncated: boolean }>(
    `SELECT COALESCE(SUM(out_length + meta_bytes), 0)::bigint AS bytes, COUNT(*)::int AS entries,
       COALESCE(bool_or(truncated), false) AS truncated
     FROM log_entries WHERE job_id = $1 AND attempt = $2`,
    [f.jobId, f.attempt],
  );
  return u.rows[0]!;
}

/** Appends planned output to an entry; inside the caller's transaction, after lockFence. */
async function writeOutput(
  c: pg.PoolClient,
  f: AttemptFence,
  entryId: number,
  storedBytes: number,
  incoming: Buffer,
  usage: { bytes: number; truncated: boolean },
  maxOutputBytes: number,
): Promise<{ length: number; truncated: boolean }> {
  const plan = planOutput(incoming, usage.bytes, usage.truncated, maxOutputBytes);
  if (plan.data.length > 0) {
    await c.query(
      `WITH chunk AS (
         INSERT INTO log_chunks (job_id, attempt, entry_id, seq, byte_offset, data)
         SELECT $1, $2, $3, COALESCE(MAX(seq), 0) + 1, $4, $5 FROM log_chunks
         WHERE job_id = $1 AND attempt = $2 AND entry_id = $3)
       UPDATE log_entries SET out_length = out_length + $6, truncated = truncated OR $7
       WHERE job_id = $1 AND attempt = $2 AND entry_id = $3`,
      [f.jobId, f.attempt, entryId, storedBytes, plan.data, plan.data.length, plan.truncate],
    );
  }
  return { length: storedBytes + plan.data.length, truncated: usage.truncated || plan.truncate };
}

async function getEntry(
  c: pg.PoolClient,
  f: AttemptFence,
  entryId: number,
): Promise<PgLogEntryRow | undefined> {
  const r = await c.query<PgLogEntryRow>(
    'SELECT * FROM log_entries WHERE job_id = $1 AND attempt = $2 AND entry_id = $3',
    [f.jobId, f.attempt, entryId],
  );
  return r.rows[0];
}

/** At most `maxBytes` of an entry's output from byte `from`; the database cuts the chunks. */
async function readOutput(
  rows: PgContext['rows'],
  jobId: number,
  attempt: number,
  entryId: number,
  from: number,
  maxBytes = Number.MAX_SAFE_INTEGER,
): Promise<string> {
  const start = Math.max(0, Math.floor(from));
  const span = Math.max(1, Math.min(Math.floor(maxBytes), 2 ** 31 - 1));
  // At least one whole UTF-8 character (4 bytes), so that a reader always moves on.
  const readBytes = Math.max(4, span);
  const chunks = await rows<{ data: Buffer }>(
    `SELECT substring(data FROM (GREATEST($4::bigint - byte_offset, 0) + 1)::int FOR $5::int) AS data
     FROM log_chunks
     WHERE job_id = $1 AND attempt = $2 AND entry_id = $3 AND byte_offset + length(data) > $4
       AND byte_offset < $4::bigint + $5::bigint
     ORDER BY seq`,
    [jobId, attempt, entryId, start, readBytes],
  );
  if (chunks.length === 0) return '';
  return cutOutput(Buffer.concat(chunks.map((c) => c.data)), span);
}

export function logQueries(
  c: PgContext,
): Pick<Store, 'addLogEntry' | 'updateLogEntry' | 'appendLogOutput' | 'getLogEntries' | 'readLogOutput'> {
  const { rows, inTransaction } = c;
  return {
    async addLogEntry(f: AttemptFence, entry: LogEntryInput, maxOutputBytes: number, maxEntries = Infinity) {
      return inTransaction(async (c) => {
        const usage = await lockFence(c, f);
        if (!usage) return null;
        if (usage.entries >= maxEntries) throw tooManyEntriesError(maxEntries);
        const meta = entryMetaBytes(entry);
        if (Number(usage.bytes) + meta > maxOutputBytes) throw logFullError(maxOutputBytes);
        const ins = await c.query<{ entry_id: number }>(
          `INSERT INTO log_entries (job_id, attempt, entry_id, key, command, start_time, exit_code, duration_ms,
             meta_bytes)
           SELECT $1, $2, COALESCE(MAX(entry_id), 0) + 1, $3, $4, $5, $6, $7, $8 FROM log_entries
           WHERE job_id = $1 AND attempt = $2
           RETURNING entry_id`,
          [
            f.jobId,
            f.attempt,
            entry.key,
            entry.command,
            entry.startTime,
            entry.exitCode ?? null,
            entry.durationMs ?? null,
            meta,
          ],
        );
        const id = ins.rows[0]!.entry_id;
        const withMeta = { ...usage, bytes: Number(usage.bytes) + meta };
        await writeOutput(c, f, id, 0, newSuffix(entry.out, 0), withMeta, maxOutputBytes);
        return id;
      });
    },

    async updateLogEntry(f: AttemptFence, entryId: number, entry: LogEntryInput, maxOutputBytes: number) {
      return inTransaction(async (c) => {
        const usage = await lockFence(c, f);
        if (!usage) return false;
        const cur = await getEntry(c, f, entryId);
        if (!cur) return false;
        const meta = entryMetaBytes(entry);
        const grown = meta - Number(cur.meta_bytes);
        if (grown > 0 && Number(usage.bytes) + grown > maxOutputBytes) throw logFullError(maxOutputBytes);
        await c.query(
          `UPDATE log_entries SET key = $4, command = $5, start_time = $6, exit_code = $7, duration_ms = $8,
             meta_bytes = $9
           WHERE job_id = $1 AND attempt = $2 AND entry_id = $3`,
          [
            f.jobId,
            f.attempt,
            entryId,
            entry.key,
            entry.command,
            entry.startTime,
            entry.exitCode ?? null,
            entry.durationMs ?? null,
            meta,
          ],
        );
        await writeOutput(
          c,
          f,
          entryId,
          cur.out_length,
          newSuffix(entry.out, cur.out_length),
          { ...usage, bytes: Number(usage.bytes) + grown },
          maxOutputBytes,
        );
        return true;
      });
    },

    async appendLogOutput(f, entryId, offset, out, fields, maxOutputBytes): Promise<AppendResult> {
      return inTransaction(async (c): Promise<AppendResult> => {
        const usage = await lockFence(c, f);
        if (!usage) return { ok: false, reason: 'not-owner' };
        const cur = await getEntry(c, f, entryId);
        if (!cur) return { ok: false, reason: 'not-owner' };
        const bytes = typeof out === 'string' ? Buffer.from(out, 'utf8') : out;
        if (!usage.truncated && offset > cur.out_length)
          return { ok: false, reason: 'gap', length: cur.out_length };
        if (fields.exitCode !== undefined || fields.durationMs !== undefined) {
          await c.query(
            `UPDATE log_entries SET exit_code = COALESCE($4, exit_code), duration_ms = COALESCE($5, duration_ms)
             WHERE job_id = $1 AND attempt = $2 AND entry_id = $3`,
            [f.jobId, f.attempt, entryId, fields.exitCode ?? null, fields.durationMs ?? null],
          );
        }
        // After the cap every write is acknowledged as if stored, so the executor's offsets keep going.
        if (usage.truncated) return { ok: true, length: offset + bytes.length };
        if (offset + bytes.length <= cur.out_length) return { ok: true, length: cur.out_length };
        const r = await writeOutput(
          c,
          f,
          entryId,
          cur.out_length,
          bytes.subarray(cur.out_length - offset),
          usage,
          maxOutputBytes,
        );
        return { ok: true, length: r.truncated ? offset + bytes.length : r.length };
      });
    },

    async getLogEntries(jobId: number, o: LogEntriesQuery = {}) {
      let attempt = o.attempt;
      if (attempt === undefined) {
        const [r] = await rows<{ a: number | null }>(
          `SELECT CASE WHEN j.attempts > 0 THEN j.attempts
                       ELSE (SELECT MAX(attempt) FROM log_entries WHERE job_id = j.id) END AS a
           FROM jobs j WHERE j.id = $1`,
          [jobId],
        );
        if (!r) return [];
        attempt = r.a ?? 0;
      }
      if (o.entryIds && o.entryIds.length === 0) return [];
      // One statement; the primary key (job_id, attempt, entry_id) serves the range and the order.
      // A long command is cut here, as JSON text, so the server never receives it whole.
      const cut = o.commandChars === undefined ? null : Math.max(0, Math.floor(o.commandChars));
      const entries: LogEntryRecord[] = (
        await rows<PgLogEntryRow>(
          `SELECT job_id, attempt, entry_id, key, start_time, exit_code, duration_ms, out_length, truncated,
             CASE WHEN $4::int IS NOT NULL AND length(array_to_json(command)::text) > $4::int THEN NULL
                  ELSE command END AS command,
             CASE WHEN $4::int IS NOT NULL AND length(array_to_json(command)::text) > $4::int
                  THEN left(array_to_json(command)::text, $4::int) END AS command_prefix
           FROM log_entries
           WHERE job_id = $1 AND attempt = $2 AND entry_id > $3
             AND ($5::int[] IS NULL OR entry_id = ANY($5::int[]))
           ORDER BY entry_id LIMIT $6`,
          [jobId, attempt, o.afterEntryId ?? 0, cut, o.entryIds ? [...o.entryIds] : null, o.limit ?? null],
        )
      ).map(toLogEntry);
      if (o.withOutput)
        for (const e of entries) e.out = await readOutput(rows, jobId, e.attempt, e.entryId, 0);
      return entries;
    },

    async readLogOutput(jobId: number, attempt: number, entryId: number, from: number, maxBytes?: number) {
      return readOutput(rows, jobId, attempt, entryId, from, maxBytes);
    },
  };
}
