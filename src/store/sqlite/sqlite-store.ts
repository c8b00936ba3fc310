/**
 * The SQLite twin of the Store (better-sqlite3, WAL).
 *
 * Locking strategy, once for the whole file: one server process owns the database file and
 * better-sqlite3 is synchronous, so every statement runs to completion before the next one starts
 * and writers are serialised by construction. An operation of several statements runs inside
 * `db.transaction(...).immediate()`, which takes SQLite's write lock at BEGIN: a second process on
 * the same file (a CLI tool, a second test connection) then waits up to busy_timeout instead of
 * failing on a lock upgrade half-way through. Single statements need no explicit transaction.
 *
 * Choices the interface leaves open (the PostgreSQL twin makes the same ones):
 * - markErrored / expireDeadlines keep `workerHostname` when requeueing: it names the executor that
 *   ran the last attempt, which helps diagnosis; the fence also checks state, so it grants nothing.
 * - retryJob resets `attempts` to 0, so attempt numbers restart at 1; a new attempt deletes any log
 *   entries left under its number by the run before the retry. Until then they stay readable.
 * - appendLogOutput on an entry that does not exist answers `not-owner`.
 */
import { EventEmitter } from 'node:events';
import Database from 'better-sqlite3';
import { formatDuration } from '../../lib/duration.js';
import { newSuffix, planOutput } from '../log-output.js';
import { type TokenRow, toTokenRecord } from '../token-row.js';
import type {
  AppendResult,
  AttemptFence,
  DequeueOptions,
  ExecutorHeartbeat,
  ExecutorRecord,
  JobRecord,
  ListJobsQuery,
  LogEntryInput,
  LogEntryRecord,
  NewJob,
  QueueStats,
  RetryPolicy,
  Store,
} from '../types.js';
import { SQLITE_MIGRATIONS } from './migrations.js';
import { type ExecutorRow, type JobRow, type LogEntryRow, toExecutor, toJob, toLogEntry } from './rows.js';

export interface SqliteStoreOptions {
  /** File path, or ':memory:'. */
  path: string;
  /** How long a writer waits for another connection's lock before failing. Default 5000. */
  busyTimeoutMs?: number;
}

const RESET_FAILURE_MESSAGE = 'job processor died while handling this message too many times';

/** rank_key of a row being (re)queued at `?` (the only parameter). */
const RANK_AT = '(? - priority * (SELECT rank_step_ms FROM store_settings WHERE id = 1))';

/** The fence: current attempt, processing, owned by the executor. Parameters: id, executor, attempt. */
const FENCE = "id = ? AND state = 'processing' AND worker_hostname = ? AND attempts = ?";

/**
 * SET clause shared by markErrored and expireDeadlines. Parameters, in order: message, now (finished),
 * now (process_after base), maxMs, baseMs, now (queued_at), now (rank). `1 << min(num_failures, 40)`
 * is 2^(n-1) for the n = num_failures + 1 failure being recorded (retryDelayMs in types.ts).
 */
const ERRORED_SET = `
  state = CASE WHEN cancel = 1 THEN 'canceled' WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END,
  num_failures = num_failures + CASE WHEN cancel = 1 THEN 0 ELSE 1 END,
  failure_message = ?,
  finished_at = CASE WHEN cancel = 0 AND attempts < max_attempts THEN NULL ELSE ? END,
  process_after = CASE WHEN cancel = 0 AND attempts < max_attempts
    THEN ? + min(?, ? * (1 << min(num_failures, 40))) ELSE process_after END,
  queued_at = CASE WHEN cancel = 0 AND attempts < max_attempts THEN ? ELSE queued_at END,
  rank_key = CASE WHEN cancel = 0 AND attempts < max_attempts THEN ${RANK_AT} ELSE rank_key END,
  started_at = CASE WHEN cancel = 0 AND attempts < max_attempts THEN NULL ELSE started_at END`;

function erroredParams(message: string, now: number, retry: RetryPolicy): unknown[] {
  return [message, now, now, retry.maxMs, retry.baseMs, now, now];
}

export function createSqliteStore(opts: SqliteStoreOptions): Store {
  const db = new Database(opts.path);
  db.pragma('journal_mode = WAL');
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
  db.pragma('foreign_keys = ON');
  db.pragma('synchronous = NORMAL');

  const events = new EventEmitter();
  events.setMaxListeners(0);
  const statements = new Map<string, Database.Statement>();
  /** Prepared once per SQL text; tables must exist, so only after migrate(). */
  const q = (sql: string): Database.Statement => {
    let s = statements.get(sql);
    if (!s) {
      s = db.prepare(sql);
      statements.set(sql, s);
    }
    return s;
  };
  const tx = <A extends unknown[], R>(fn: (...args: A) => R) => {
    const t = db.transaction(fn);
    return (...args: A): R => t.immediate(...args);
  };
  let rankStepMs: number | undefined;

  const getJobRow = (id: number) => q('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
  const fenceHolds = (f: AttemptFence): boolean =>
    q(`SELECT 1 FROM jobs WHERE ${FENCE}`).get(f.jobId, f.executorName, f.attempt) !== undefined;

  /**
   * Appends `incoming` to an entry after the per-attempt cap. Runs inside the caller's transaction.
   * Returns the entry's stored length afterwards and whether the attempt is (now) truncated.
   */
  const writeOutput = (
    f: AttemptFence,
    entryId: number,
    storedBytes: number,
    incoming: Buffer,
    maxOutputBytes: number,
  ): { length: number; truncated: boolean } => {
    const usage = q(
      `SELECT COALESCE(SUM(out_length), 0) AS bytes, COALESCE(MAX(truncated), 0) AS truncated
       FROM log_entries WHERE job_id = ? AND attempt = ?`,
    ).get(f.jobId, f.attempt) as { bytes: number; truncated: number };
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
  };

  const deleteToken = (jobId: number) => q('DELETE FROM job_tokens WHERE job_id = ?').run(jobId);

  const migrateTx = tx(() => {
    db.exec(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
    );
    const applied = new Set(
      (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map(
        (r) => r.version,
      ),
    );
    for (const m of SQLITE_MIGRATIONS) {
      if (applied.has(m.version)) continue;
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        m.version,
        m.name,
        Date.now(),
      );
    }
  });

  /**
   * Brings rank_key in line with the priority step the caller dequeues with. The step is server
   * configuration, so this re-ranks once after a configuration change and is a no-op afterwards.
   */
  const syncRankStep = (stepMs: number) => {
    if (rankStepMs === stepMs) return;
    const row = q('SELECT rank_step_ms FROM store_settings WHERE id = 1').get() as { rank_step_ms: number };
    if (row.rank_step_ms !== stepMs) {
      q('UPDATE store_settings SET rank_step_ms = ? WHERE id = 1').run(stepMs);
      q("UPDATE jobs SET rank_key = queued_at - priority * ? WHERE state = 'queued'").run(stepMs);
    }
    rankStepMs = stepMs;
  };

  const dequeueTx = tx((o: DequeueOptions): { job: JobRecord; attempt: number } | null => {
    syncRankStep(o.priorityStepMs);
    const cand = q(
      `SELECT id FROM jobs WHERE queue = ? AND state = 'queued' AND (process_after IS NULL OR process_after <= ?)
       ORDER BY rank_key, id LIMIT 1`,
    ).get(o.queue, o.now) as { id: number } | undefined;
    if (!cand) return null;
    const row = q(
      `UPDATE jobs SET state = 'processing', started_at = ?, last_heartbeat_at = ?, finished_at = NULL,
         failure_message = NULL, worker_hostname = ?, attempts = attempts + 1
       WHERE id = ? RETURNING *`,
    ).get(o.now, o.now, o.executorName, cand.id) as JobRow;
    // A number reused after retryJob: the new attempt starts with an empty log.
    q('DELETE FROM log_entries WHERE job_id = ? AND attempt = ?').run(row.id, row.attempts);
    q(
      `INSERT INTO job_tokens (token_hash, job_id, attempt, queue, repository_name, executor_name, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (job_id) DO UPDATE SET token_hash = excluded.token_hash, attempt = excluded.attempt,
         queue = excluded.queue, repository_name = excluded.repository_name,
         executor_name = excluded.executor_name, created_at = excluded.created_at`,
    ).run(o.tokenHash, row.id, row.attempts, row.queue, row.repository_name, o.executorName, o.now);
    return { job: toJob(row), attempt: row.attempts };
  });

  const addLogEntryTx = tx((f: AttemptFence, entry: LogEntryInput, maxOutputBytes: number): number | null => {
    if (!fenceHolds(f)) return null;
    const { next } = q(
      'SELECT COALESCE(MAX(entry_id), 0) + 1 AS next FROM log_entries WHERE job_id = ? AND attempt = ?',
    ).get(f.jobId, f.attempt) as { next: number };
    q(
      `INSERT INTO log_entries (job_id, attempt, entry_id, key, command, start_time, exit_code, duration_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      f.jobId,
      f.attempt,
      next,
      entry.key,
      entry.command === null ? null : JSON.stringify(entry.command),
      entry.startTime,
      entry.exitCode ?? null,
      entry.durationMs ?? null,
    );
    writeOutput(f, next, 0, newSuffix(entry.out, 0), maxOutputBytes);
    return next;
  });

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
      q(
        `UPDATE log_entries SET key = ?, command = ?, start_time = ?, exit_code = ?, duration_ms = ?
         WHERE job_id = ? AND attempt = ? AND entry_id = ?`,
      ).run(
        entry.key,
        entry.command === null ? null : JSON.stringify(entry.command),
        entry.startTime,
        entry.exitCode ?? null,
        entry.durationMs ?? null,
        f.jobId,
        f.attempt,
        entryId,
      );
      writeOutput(f, entryId, cur.out_length, newSuffix(entry.out, cur.out_length), maxOutputBytes);
      return true;
    },
  );

  const appendLogOutputTx = tx(
    (
      f: AttemptFence,
      entryId: number,
      offset: number,
      out: string,
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
      const bytes = Buffer.from(out, 'utf8');
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
        f,
        entryId,
        cur.out_length,
        bytes.subarray(cur.out_length - offset),
        maxOutputBytes,
      );
      return { ok: true, length: r.truncated ? offset + bytes.length : r.length };
    },
  );

  const markTx = tx((f: AttemptFence, sql: string, params: unknown[]): boolean => {
    const row = q(`UPDATE jobs SET ${sql} WHERE ${FENCE} RETURNING id`).get(
      ...params,
      f.jobId,
      f.executorName,
      f.attempt,
    );
    if (!row) return false;
    deleteToken(f.jobId);
    return true;
  });

  const markCompleteByTokenTx = tx(
    (t: { tokenHash: string; jobId: number; executorName: string; queue: string }, now: number) => {
      const row = q(
        `UPDATE jobs SET state = 'completed', finished_at = ?
         WHERE id = ? AND state = 'processing' AND worker_hostname = ? AND attempts = (
             SELECT attempt FROM job_tokens
             WHERE token_hash = ? AND job_id = ? AND executor_name = ? AND queue = ?)
           AND EXISTS (SELECT 1 FROM executors WHERE name = ?)
         RETURNING attempts`,
      ).get(now, t.jobId, t.executorName, t.tokenHash, t.jobId, t.executorName, t.queue, t.executorName) as
        | { attempts: number }
        | undefined;
      if (!row) return null;
      deleteToken(t.jobId);
      return { jobId: t.jobId, executorName: t.executorName, attempt: row.attempts };
    },
  );

  const resetStalledTx = tx((now: number, stalledAfterMs: number, maxResets: number) => {
    const cutoff = now - stalledAfterMs;
    const failed = (
      q(
        `UPDATE jobs SET state = 'failed', finished_at = ?, failure_message = ?
         WHERE state = 'processing' AND last_heartbeat_at < ? AND num_resets >= ? RETURNING id`,
      ).all(now, RESET_FAILURE_MESSAGE, cutoff, maxResets) as { id: number }[]
    ).map((r) => r.id);
    const reset = q(
      `UPDATE jobs SET state = 'queued', num_resets = num_resets + 1, started_at = NULL,
         last_heartbeat_at = NULL, process_after = NULL, queued_at = ?, rank_key = ${RANK_AT}
       WHERE state = 'processing' AND last_heartbeat_at < ? AND num_resets < ? RETURNING id, queue`,
    ).all(now, now, cutoff, maxResets) as { id: number; queue: string }[];
    for (const id of [...failed, ...reset.map((r) => r.id)]) deleteToken(id);
    return { reset, failed };
  });

  const expireTx = tx((now: number, retry: RetryPolicy): number[] => {
    const due = q(
      `SELECT id, attempts, timeout_ms FROM jobs WHERE state = 'processing' AND started_at + timeout_ms < ?`,
    ).all(now) as { id: number; attempts: number; timeout_ms: number }[];
    const touched: number[] = [];
    for (const j of due) {
      const message = `job exceeded its timeout of ${formatDuration(j.timeout_ms)}`;
      const row = q(
        `UPDATE jobs SET ${ERRORED_SET} WHERE id = ? AND state = 'processing' AND attempts = ? RETURNING id`,
      ).get(...erroredParams(message, now, retry), j.id, j.attempts);
      if (row) {
        deleteToken(j.id);
        touched.push(j.id);
      }
    }
    return touched;
  });

  const cancelTx = tx((id: number, now: number): JobRow | undefined => {
    const row = q(
      `UPDATE jobs SET cancel = 1,
         state = CASE WHEN state IN ('queued', 'errored') THEN 'canceled' ELSE state END,
         finished_at = CASE WHEN state IN ('queued', 'errored') THEN ? ELSE finished_at END
       WHERE id = ? AND state IN ('queued', 'errored', 'processing') RETURNING *`,
    ).get(now, id) as JobRow | undefined;
    return row ?? getJobRow(id);
  });

  const retryTx = tx((id: number, now: number): { row: JobRow | undefined; requeued: boolean } => {
    const row = q(
      `UPDATE jobs SET state = 'queued', attempts = 0, num_failures = 0, num_resets = 0, cancel = 0,
         failure_message = NULL, worker_hostname = NULL, started_at = NULL, last_heartbeat_at = NULL,
         finished_at = NULL, process_after = NULL, queued_at = ?, rank_key = ${RANK_AT}
       WHERE id = ? AND state IN ('failed', 'errored', 'canceled') RETURNING *`,
    ).get(now, now, id) as JobRow | undefined;
    if (row) deleteToken(id);
    return { row: row ?? getJobRow(id), requeued: row !== undefined };
  });

  return {
    async migrate() {
      migrateTx();
    },

    async close() {
      events.removeAllListeners();
      if (db.open) db.close();
    },

    async ping() {
      q('SELECT 1').get();
    },

    async enqueue(job: NewJob, now: number) {
      const row = q(
        `INSERT INTO jobs (queue, state, spec, repository_name, commit_sha, priority, max_attempts, timeout_ms,
           created_at, queued_at, rank_key)
         VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, (? - ? * (SELECT rank_step_ms FROM store_settings WHERE id = 1)))
         RETURNING *`,
      ).get(
        job.queue,
        JSON.stringify(job.spec),
        job.repositoryName,
        job.commit,
        job.priority,
        job.maxAttempts,
        job.timeoutMs,
        now,
        now,
        now,
        job.priority,
      ) as JobRow;
      events.emit('enqueue', row.queue);
      return toJob(row);
    },

    async getJob(id: number) {
      const row = getJobRow(id);
      return row ? toJob(row) : null;
    },

    async listJobs(query: ListJobsQuery) {
      const where: string[] = [];
      const params: unknown[] = [];
      if (query.state) {
        where.push('state = ?');
        params.push(query.state);
      }
      if (query.queue) {
        where.push('queue = ?');
        params.push(query.queue);
      }
      const filter = where.length ? `WHERE ${where.join(' AND ')}` : '';
      const { total } = q(`SELECT COUNT(*) AS total FROM jobs ${filter}`).get(...params) as { total: number };
      const pageWhere = [...where];
      const pageParams = [...params];
      if (query.before !== undefined) {
        pageWhere.push('id < ?');
        pageParams.push(query.before);
      }
      const limit = Math.min(500, Math.max(1, Math.floor(query.limit)));
      const rows = q(
        `SELECT * FROM jobs ${pageWhere.length ? `WHERE ${pageWhere.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`,
      ).all(...pageParams, limit) as JobRow[];
      return { jobs: rows.map(toJob), total };
    },

    async dequeue(o: DequeueOptions) {
      return dequeueTx(o);
    },

    async readyCounts(queues: string[], now: number) {
      const counts = new Map<string, number>(queues.map((name) => [name, 0]));
      const stmt = q(
        `SELECT COUNT(*) AS n FROM jobs
         WHERE queue = ? AND state = 'queued' AND (process_after IS NULL OR process_after <= ?)`,
      );
      for (const name of counts.keys()) counts.set(name, (stmt.get(name, now) as { n: number }).n);
      return counts;
    },

    async lookupTokenFor(tokenHash: string, executorName: string) {
      const r = q('SELECT * FROM job_tokens WHERE token_hash = ?').get(tokenHash) as TokenRow | undefined;
      return {
        token: r ? toTokenRecord(r) : null,
        executorKnown: q('SELECT 1 FROM executors WHERE name = ?').get(executorName) !== undefined,
      };
    },

    async heartbeat(executorName: string, queue: string, jobIds: number[], now: number) {
      if (jobIds.length === 0) return { knownIds: [], cancelIds: [] };
      // One statement: the guard (processing, same owner, same queue) and the renewal together.
      const rows = q(
        `UPDATE jobs SET last_heartbeat_at = ?
         WHERE id IN (SELECT value FROM json_each(?)) AND state = 'processing' AND worker_hostname = ? AND queue = ?
         RETURNING id, cancel`,
      ).all(now, JSON.stringify(jobIds), executorName, queue) as { id: number; cancel: number }[];
      rows.sort((a, b) => a.id - b.id);
      return {
        knownIds: rows.map((r) => r.id),
        cancelIds: rows.filter((r) => r.cancel === 1).map((r) => r.id),
      };
    },

    async addLogEntry(f: AttemptFence, entry: LogEntryInput, maxOutputBytes: number) {
      return addLogEntryTx(f, entry, maxOutputBytes);
    },

    async updateLogEntry(f: AttemptFence, entryId: number, entry: LogEntryInput, maxOutputBytes: number) {
      return updateLogEntryTx(f, entryId, entry, maxOutputBytes);
    },

    async appendLogOutput(f, entryId, offset, out, fields, maxOutputBytes) {
      return appendLogOutputTx(f, entryId, offset, out, fields, maxOutputBytes);
    },

    async getLogEntries(jobId: number, o: { attempt?: number; withOutput?: boolean } = {}) {
      let attempt = o.attempt;
      if (attempt === undefined) {
        const job = q('SELECT attempts FROM jobs WHERE id = ?').get(jobId) as
          | { attempts: number }
          | undefined;
        if (!job) return [];
        attempt =
          job.attempts > 0
            ? job.attempts
            : ((
                q('SELECT MAX(attempt) AS a FROM log_entries WHERE job_id = ?').get(jobId) as {
                  a: number | null;
                }
              ).a ?? 0);
      }
      const rows = q('SELECT * FROM log_entries WHERE job_id = ? AND attempt = ? ORDER BY entry_id').all(
        jobId,
        attempt,
      ) as LogEntryRow[];
      const entries: LogEntryRecord[] = rows.map(toLogEntry);
      if (o.withOutput) for (const e of entries) e.out = readOutput(jobId, e.attempt, e.entryId, 0);
      return entries;
    },

    async readLogOutput(jobId: number, attempt: number, entryId: number, from: number) {
      return readOutput(jobId, attempt, entryId, from);
    },

    async markComplete(f: AttemptFence, now: number) {
      return markTx(f, "state = 'completed', finished_at = ?", [now]);
    },

    async markCompleteByToken(t, now) {
      return markCompleteByTokenTx(t, now);
    },

    async markErrored(f: AttemptFence, message: string, now: number, retry: RetryPolicy) {
      return markTx(f, ERRORED_SET, erroredParams(message, now, retry));
    },

    async markFailed(f: AttemptFence, message: string, now: number) {
      return markTx(
        f,
        `state = CASE WHEN cancel = 1 THEN 'canceled' ELSE 'failed' END,
         num_failures = num_failures + CASE WHEN cancel = 1 THEN 0 ELSE 1 END,
         failure_message = ?, finished_at = ?`,
        [message, now],
      );
    },

    async resetStalled(now: number, stalledAfterMs: number, maxResets: number) {
      const { reset, failed } = resetStalledTx(now, stalledAfterMs, maxResets);
      for (const r of reset) events.emit('enqueue', r.queue);
      return { reset: reset.map((r) => r.id), failed };
    },

    async expireDeadlines(now: number, retry: RetryPolicy) {
      return expireTx(now, retry);
    },

    async cancelJob(id: number, now: number) {
      const row = cancelTx(id, now);
      return row ? toJob(row) : null;
    },

    async retryJob(id: number, now: number) {
      const { row, requeued } = retryTx(id, now);
      if (!row) return null;
      if (requeued) events.emit('enqueue', row.queue);
      return toJob(row);
    },

    async upsertExecutor(hb: ExecutorHeartbeat, now: number) {
      q(
        `INSERT INTO executors (name, hostname, queue_name, queue_names, os, architecture, docker_version,
           executor_version, git_version, ignite_version, src_cli_version, first_seen_at, last_seen_at, metrics)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET hostname = excluded.hostname, queue_name = excluded.queue_name,
           queue_names = excluded.queue_names, os = excluded.os, architecture = excluded.architecture,
           docker_version = excluded.docker_version, executor_version = excluded.executor_version,
           git_version = excluded.git_version, ignite_version = excluded.ignite_version,
           src_cli_version = excluded.src_cli_version, last_seen_at = excluded.last_seen_at,
           metrics = excluded.metrics`,
      ).run(
        hb.name,
        hb.hostname,
        hb.queueName,
        hb.queueNames === null ? null : JSON.stringify(hb.queueNames),
        hb.os,
        hb.architecture,
        hb.dockerVersion,
        hb.executorVersion,
        hb.gitVersion,
        hb.igniteVersion,
        hb.srcCliVersion,
        now,
        now,
        hb.metrics,
      );
    },

    async getExecutor(name: string): Promise<ExecutorRecord | null> {
      const row = q('SELECT * FROM executors WHERE name = ?').get(name) as ExecutorRow | undefined;
      return row ? toExecutor(row) : null;
    },

    async listExecutors() {
      return (q('SELECT * FROM executors ORDER BY name').all() as ExecutorRow[]).map(toExecutor);
    },

    async deleteExecutorsSeenBefore(cutoff: number) {
      return q('DELETE FROM executors WHERE last_seen_at < ?').run(cutoff).changes;
    },

    async queueStats(now: number): Promise<QueueStats[]> {
      const rows = q(
        `SELECT queue,
           SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END) AS queued,
           SUM(CASE WHEN state = 'processing' THEN 1 ELSE 0 END) AS processing,
           MIN(CASE WHEN state = 'queued' AND (process_after IS NULL OR process_after <= ?)
               THEN max(queued_at, COALESCE(process_after, queued_at)) END) AS oldest
         FROM jobs GROUP BY queue ORDER BY queue`,
      ).all(now) as { queue: string; queued: number; processing: number; oldest: number | null }[];
      return rows.map((r) => ({
        queue: r.queue,
        queued: r.queued,
        processing: r.processing,
        oldestQueuedAt: r.oldest,
      }));
    },

    onEnqueue(cb: (queue: string) => void) {
      events.on('enqueue', cb);
      return () => {
        events.off('enqueue', cb);
      };
    },
  };

  function readOutput(jobId: number, attempt: number, entryId: number, from: number): string {
    const start = Math.max(0, Math.floor(from));
    const chunks = q(
      `SELECT byte_offset, data FROM log_chunks
       WHERE job_id = ? AND attempt = ? AND entry_id = ? AND byte_offset + length(data) > ?
       ORDER BY seq`,
    ).all(jobId, attempt, entryId, start) as { byte_offset: number; data: Buffer }[];
    if (chunks.length === 0) return '';
    const buf = Buffer.concat(chunks.map((c) => c.data));
    return buf.subarray(Math.max(0, start - chunks[0]!.byte_offset)).toString('utf8');
  }
}
