/**
 * The PostgreSQL twin of the Store (pg). Any number of server replicas may share one database.
 *
 * Time (option `clock`): 'database' (the default, and what openStore uses) takes every time that
 * is written or compared (lease, deadline, backoff, dequeue eligibility, created/queued/finished
 * times) from the database's `now()` inside the statement, and ignores the `now` the caller passes:
 * replicas whose clocks disagree still agree on every lease. 'caller' uses the caller's `now`
 * instead, as the SQLite twin does, so the contract suite can drive time by hand. Each time
 * parameter is written `COALESCE($n::bigint, <database now>)` and bound to NULL in database mode.
 * The one exception is deleteExecutorsSeenBefore, whose cutoff is a time, not a now: it is compared
 * as given (the janitor's window is hours, far above any clock skew).
 *
 * Locking strategy: each operation is one statement (data-modifying CTEs keep a state change and its
 * token deletion atomic) unless stated otherwise at the operation. Guards (state, owner, attempt) are
 * in the WHERE clauses; under READ COMMITTED an UPDATE re-checks them on the latest row version after
 * waiting for a concurrent writer, so a guard can never pass on a stale read. No transaction is held
 * open around a claim. Log writes are the exception: a short transaction holds the job row lock
 * (FOR NO KEY UPDATE, with the fence in its WHERE) while it reads the attempt's byte count and appends,
 * so concurrent writes to one job cannot both append the same suffix or overshoot the cap.
 *
 * Choices the interface leaves open are the SQLite twin's (see sqlite-store.ts).
 */
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { formatDuration } from '../../lib/duration.js';
import { newSuffix, planOutput } from '../log-output.js';
import { type TokenRow, toTokenRecord } from '../token-row.js';
import type {
  AppendResult,
  AttemptFence,
  DequeueOptions,
  ExecutorHeartbeat,
  ListJobsQuery,
  LogEntryInput,
  LogEntryRecord,
  NewJob,
  RetryPolicy,
  Store,
} from '../types.js';
import { isConnectionError, toStoreError } from './errors.js';
import { POSTGRES_MIGRATIONS } from './migrations.js';
import {
  type PgExecutorRow,
  type PgJobRow,
  type PgLogEntryRow,
  toExecutor,
  toJob,
  toLogEntry,
} from './rows.js';

export interface PostgresStoreOptions {
  connectionString: string;
  /** Pool size per server process. Default 10. */
  poolSize?: number;
  /**
   * Per-statement limit. Every statement here touches a handful of rows through an index, so a
   * statement running for 30 s means a lock pile-up or a missing index: failing it is better than
   * holding a pool connection indefinitely.
   */
  statementTimeoutMs?: number;
  /** Whose clock times come from (see the module comment). Default 'database'. */
  clock?: 'database' | 'caller';
  /**
   * How long a request waits for a pool connection (including a new connection to a database that
   * does not answer) before failing with UNAVAILABLE. Default 10000: opening a connection costs a
   * backend process and a SCRAM exchange, which take seconds on a saturated host.
   */
  connectTimeoutMs?: number;
}

/** "cached plan must not change result type" (0A000): a prepared statement outlived a schema change. */
const isCachedPlanChange = (e: unknown) =>
  (e as { code?: unknown }).code === '0A000' && /cached plan must not change result type/.test(String(e));

/** LISTEN/NOTIFY channel; the payload is the queue name. */
export const ENQUEUE_CHANNEL = 'executor_jobs';

const RESET_FAILURE_MESSAGE = 'job processor died while handling this message too many times';
const MIGRATION_LOCK_KEY = 'executor_schema_migrations';
const RANK_STEP = '(SELECT rank_step_ms FROM store_settings WHERE id = 1)';

/** The database's time in epoch milliseconds; `now()` is the statement's transaction start. */
const DB_NOW_MS = 'floor(extract(epoch FROM now()) * 1000)::bigint';
/** Time parameter $n: the caller's `now`, or the database's when bound to NULL (database clock). */
const at = (n: number) => `COALESCE($${n}::bigint, ${DB_NOW_MS})`;

const INT8_OID = 20;
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * SET clause shared by markErrored and expireDeadlines. $1 message, $2 now, $3 retry.maxMs,
 * $4 retry.baseMs. `1 << least(num_failures, 40)` is 2^(n-1) for the n = num_failures + 1 failure
 * being recorded (retryDelayMs in types.ts).
 */
const ERRORED_SET = `
  state = CASE WHEN cancel THEN 'canceled' WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END,
  num_failures = num_failures + CASE WHEN cancel THEN 0 ELSE 1 END,
  failure_message = $1::text,
  finished_at = CASE WHEN NOT cancel AND attempts < max_attempts THEN NULL ELSE ${at(2)} END,
  process_after = CASE WHEN NOT cancel AND attempts < max_attempts
    THEN ${at(2)} + LEAST($3::bigint, $4::bigint * (1::bigint << LEAST(num_failures, 40))) ELSE process_after END,
  queued_at = CASE WHEN NOT cancel AND attempts < max_attempts THEN ${at(2)} ELSE queued_at END,
  rank_key = CASE WHEN NOT cancel AND attempts < max_attempts
    THEN ${at(2)} - priority * ${RANK_STEP} ELSE rank_key END,
  started_at = CASE WHEN NOT cancel AND attempts < max_attempts THEN NULL ELSE started_at END`;

export function createPostgresStore(opts: PostgresStoreOptions): Store {
  const statementTimeoutMs = opts.statementTimeoutMs ?? 30_000;
  const callerClock = opts.clock === 'caller';
  /** The value bound to a time parameter: NULL selects the database clock (see `at`). */
  const t = (now: number): number | null => (callerClock ? now : null);
  const clientConfig: pg.ClientConfig = {
    connectionString: opts.connectionString,
    types,
    statement_timeout: statementTimeoutMs,
    idle_in_transaction_session_timeout: statementTimeoutMs,
    application_name: 'executor-server',
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    // Detects a peer that vanished without closing (a cut network) on idle and LISTEN connections.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
  // Idle connections are kept for a minute (pg's default is 10 s): reopening them in every lull
  // costs more than keeping them.
  const pool = new pg.Pool({ ...clientConfig, max: opts.poolSize ?? 10, idleTimeoutMillis: 60_000 });
  // An idle client's error (the server restarted) must not crash the process; the pool replaces it.
  pool.on('error', () => {});

  const events = new EventEmitter();
  events.setMaxListeners(0);
  let listener: pg.Client | null = null;
  let listening: Promise<void> | null = null;
  let closed = false;
  let rankStepMs: number | undefined;

  /**
   * Pool queries run as named prepared statements, one name per SQL text: each connection parses
   * and plans a statement once instead of on every call. Planning the claim and mark statements
   * was most of the database's work per dequeue + mark cycle (their throughput rose 1.6 to 1.8x).
   * A schema change under a prepared statement whose result columns changed (a replica migrating
   * while this one runs) fails it with 0A000; the names are then renewed, so each connection
   * prepares again, and the call is retried once.
   */
  const statementNames = new Map<string, string>();
  let statementGeneration = 0;
  const statementName = (sql: string) => {
    let name = statementNames.get(sql);
    if (name === undefined) {
      name = `executor_${statementGeneration}_${statementNames.size}`;
      statementNames.set(sql, name);
    }
    return name;
  };

  /** Every pool query goes through here: connection failures become UNAVAILABLE (toStoreError). */
  async function query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) {
    try {
      try {
        return await pool.query<R>({ name: statementName(sql), text: sql, values: params });
      } catch (e) {
        if (!isCachedPlanChange(e)) throw e;
        statementNames.clear();
        statementGeneration++;
        return await pool.query<R>({ name: statementName(sql), text: sql, values: params });
      }
    } catch (e) {
      throw toStoreError(e);
    }
  }
  const rows = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> =>
    (await query<R>(sql, params)).rows;

  async function inTransaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let c: pg.PoolClient;
    try {
      c = await pool.connect();
    } catch (e) {
      throw toStoreError(e);
    }
    let broken: unknown;
    // A checked-out client has no listener of the pool's, so its 'error' event (the connection died
    // mid-transaction) would be an uncaught exception that ends the server; the query fails anyway.
    const onError = (e: unknown) => {
      broken ??= e;
    };
    c.on('error', onError);
    try {
      await c.query('BEGIN');
      const r = await fn(c);
      await c.query('COMMIT');
      return r;
    } catch (e) {
      if (isConnectionError(e)) broken = e;
      else await c.query('ROLLBACK').catch(() => {});
      throw toStoreError(e);
    } finally {
      c.off('error', onError);
      // A connection that broke is destroyed rather than returned to the pool.
      c.release(broken !== undefined);
    }
  }

  /**
   * NOTIFY after the change committed, so a woken replica sees the row. Best effort: a wake-up is a
   * hint (waiters re-check on a timer), so a failure here never fails the change that committed.
   */
  async function notify(queues: string[]): Promise<void> {
    if (queues.length === 0) return;
    await pool
      .query(`SELECT pg_notify('${ENQUEUE_CHANNEL}', q) FROM unnest($1::text[]) AS q`, [[...new Set(queues)]])
      .catch(() => {});
  }

  /** A dedicated connection holds LISTEN (it cannot go back to the pool); reconnects while subscribed. */
  function ensureListener(): Promise<void> {
    if (listening) return listening;
    const client = new pg.Client(clientConfig);
    const drop = () => {
      if (listener !== client) return;
      listener = null;
      listening = null;
      client.end().catch(() => {});
      if (!closed && events.listenerCount('enqueue') > 0)
        setTimeout(() => void ensureListener(), 1_000).unref();
    };
    client.on('error', drop);
    client.on('end', drop);
    client.on('notification', (msg) => {
      if (msg.channel === ENQUEUE_CHANNEL && msg.payload) events.emit('enqueue', msg.payload);
    });
    listener = client;
    listening = (async () => {
      await client.connect();
      await client.query(`LISTEN ${ENQUEUE_CHANNEL}`);
    })().catch(() => drop());
    return listening;
  }

  /**
   * Re-ranks queued jobs when the dequeue's priority step differs from the one rank_key was computed
   * with (a configuration change): a short transaction that locks the settings row, so concurrent
   * replicas re-rank once. Replicas must share one step or they re-rank in turn.
   */
  async function syncRankStep(stepMs: number): Promise<void> {
    if (rankStepMs === stepMs) return;
    await inTransaction(async (c) => {
      const cur = await c.query<{ rank_step_ms: number }>(
        'SELECT rank_step_ms FROM store_settings WHERE id = 1 FOR UPDATE',
      );
      if (cur.rows[0]?.rank_step_ms === stepMs) return;
      await c.query('UPDATE store_settings SET rank_step_ms = $1 WHERE id = 1', [stepMs]);
      await c.query("UPDATE jobs SET rank_key = queued_at - priority * $1::bigint WHERE state = 'queued'", [
        stepMs,
      ]);
    });
    rankStepMs = stepMs;
  }

  /**
   * Locks the job row if the fence holds (inside a log-write transaction) and returns the attempt's
   * output usage; null when fenced out.
   */
  async function lockFence(
    c: pg.PoolClient,
    f: AttemptFence,
  ): Promise<{ bytes: number; truncated: boolean } | null> {
    const held = await c.query(
      `SELECT id FROM jobs WHERE id = $1 AND state = 'processing' AND worker_hostname = $2 AND attempts = $3
       FOR NO KEY UPDATE`,
      [f.jobId, f.executorName, f.attempt],
    );
    if (held.rowCount === 0) return null;
    const u = await c.query<{ bytes: number; truncated: boolean }>(
      `SELECT COALESCE(SUM(out_length), 0)::bigint AS bytes, COALESCE(bool_or(truncated), false) AS truncated
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

  /**
   * A mark: the guarded update, the token deletion and the claim's outcome (job_claims) in one
   * statement. `set` uses $1..$n; $nowAt is the time parameter.
   */
  async function mark(
    f: AttemptFence,
    outcome: string,
    set: string,
    params: unknown[],
    nowAt: number,
  ): Promise<boolean> {
    const n = params.length;
    const r = await rows<{ n: number }>(
      `WITH m AS (
         UPDATE jobs SET ${set}
         WHERE id = $${n + 1} AND state = 'processing' AND worker_hostname = $${n + 2} AND attempts = $${n + 3}
         RETURNING id, attempts),
       t AS (DELETE FROM job_tokens WHERE job_id IN (SELECT id FROM m)),
       h AS (
         UPDATE job_claims c SET ended_at = ${at(nowAt)}, outcome = $${n + 4}
         FROM m WHERE c.job_id = m.id AND c.attempt = m.attempts AND c.outcome IS NULL)
       SELECT count(*)::int AS n FROM m`,
      [...params, f.jobId, f.executorName, f.attempt, outcome],
    );
    return r[0]!.n > 0;
  }

  async function readOutput(jobId: number, attempt: number, entryId: number, from: number): Promise<string> {
    const start = Math.max(0, Math.floor(from));
    const chunks = await rows<{ byte_offset: number; data: Buffer }>(
      `SELECT byte_offset, data FROM log_chunks
       WHERE job_id = $1 AND attempt = $2 AND entry_id = $3 AND byte_offset + length(data) > $4
       ORDER BY seq`,
      [jobId, attempt, entryId, start],
    );
    if (chunks.length === 0) return '';
    return Buffer.concat(chunks.map((c) => c.data))
      .subarray(Math.max(0, start - chunks[0]!.byte_offset))
      .toString('utf8');
  }

  return {
    /** Serialised across replicas by a transaction-scoped advisory lock. */
    async migrate() {
      await inTransaction(async (c) => {
        await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [MIGRATION_LOCK_KEY]);
        await c.query(
          `CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
        );
        const applied = new Set(
          (await c.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map(
            (r) => r.version,
          ),
        );
        for (const m of POSTGRES_MIGRATIONS) {
          if (applied.has(m.version)) continue;
          await c.query(m.sql);
          await c.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
        }
      });
    },

    async close() {
      closed = true;
      events.removeAllListeners();
      const l = listener;
      listener = null;
      listening = null;
      if (l) await l.end().catch(() => {});
      await pool.end();
    },

    async ping() {
      await query('SELECT 1');
    },

    async enqueue(job: NewJob, now: number) {
      const [row] = await rows<PgJobRow>(
        `INSERT INTO jobs (queue, state, spec, repository_name, commit_sha, priority, max_attempts, timeout_ms,
           created_at, queued_at, rank_key)
         SELECT $1::text, 'queued', $2::json, $3::text, $4::text, $5::int, $6::int, $7::bigint, n, n,
           n - $5::int * ${RANK_STEP}
         FROM (SELECT ${at(8)} AS n) AS clock
         RETURNING *`,
        [
          job.queue,
          JSON.stringify(job.spec),
          job.repositoryName,
          job.commit,
          job.priority,
          job.maxAttempts,
          job.timeoutMs,
          t(now),
        ],
      );
      await notify([job.queue]);
      return toJob(row!);
    },

    async getJob(id: number) {
      const [row] = await rows<PgJobRow>('SELECT * FROM jobs WHERE id = $1', [id]);
      return row ? toJob(row) : null;
    },

    async listJobs(query: ListJobsQuery) {
      const where: string[] = [];
      const params: unknown[] = [];
      if (query.state) {
        params.push(query.state);
        where.push(`state = $${params.length}`);
      }
      if (query.queue) {
        params.push(query.queue);
        where.push(`queue = $${params.length}`);
      }
      const filter = where.length ? `WHERE ${where.join(' AND ')}` : '';
      const [{ total }] = (await rows<{ total: number }>(
        `SELECT count(*) AS total FROM jobs ${filter}`,
        params,
      )) as [{ total: number }];
      const pageWhere = [...where];
      const pageParams = [...params];
      if (query.before !== undefined) {
        pageParams.push(query.before);
        pageWhere.push(`id < $${pageParams.length}`);
      }
      pageParams.push(Math.min(500, Math.max(1, Math.floor(query.limit))));
      const page = await rows<PgJobRow>(
        `SELECT * FROM jobs ${pageWhere.length ? `WHERE ${pageWhere.join(' AND ')}` : ''}
         ORDER BY id DESC LIMIT $${pageParams.length}`,
        pageParams,
      );
      return { jobs: page.map(toJob), total };
    },

    /**
     * One statement: pick the best queued row through the partial index, lock it with SKIP LOCKED (a
     * row another claimer holds is passed over, never waited for), set it processing, install the
     * attempt's token (replacing an older one) and clear any log left under the attempt number.
     */
    async dequeue(o: DequeueOptions) {
      await syncRankStep(o.priorityStepMs);
      const [row] = await rows<PgJobRow>(
        `WITH candidate AS (
           SELECT id FROM jobs
           WHERE queue = $1 AND state = 'queued' AND (process_after IS NULL OR process_after <= ${at(2)})
           ORDER BY rank_key, id
           FOR UPDATE SKIP LOCKED
           LIMIT 1),
         claimed AS (
           UPDATE jobs j SET state = 'processing', started_at = ${at(2)}, last_heartbeat_at = ${at(2)},
             finished_at = NULL,
             failure_message = NULL, worker_hostname = $3, attempts = j.attempts + 1
           FROM candidate c WHERE j.id = c.id
           RETURNING j.*),
         token AS (
           INSERT INTO job_tokens (token_hash, job_id, attempt, queue, repository_name, executor_name, created_at)
           SELECT $4, id, attempts, queue, repository_name, $3, started_at FROM claimed
           ON CONFLICT (job_id) DO UPDATE SET token_hash = excluded.token_hash, attempt = excluded.attempt,
             queue = excluded.queue, repository_name = excluded.repository_name,
             executor_name = excluded.executor_name, created_at = excluded.created_at),
         stale_log AS (
           DELETE FROM log_entries l USING claimed c WHERE l.job_id = c.id AND l.attempt = c.attempts),
         history AS (
           INSERT INTO job_claims (job_id, attempt, executor_name, claimed_at)
           SELECT id, attempts, $3, started_at FROM claimed)
         SELECT * FROM claimed`,
        [o.queue, t(o.now), o.executorName, o.tokenHash],
      );
      return row ? { job: toJob(row), attempt: row.attempts } : null;
    },

    async readyCounts(queues: string[], now: number) {
      const counts = new Map<string, number>(queues.map((name) => [name, 0]));
      const r = await rows<{ queue: string; n: number }>(
        `SELECT queue, count(*) AS n FROM jobs
         WHERE queue = ANY($1::text[]) AND state = 'queued'
           AND (process_after IS NULL OR process_after <= ${at(2)})
         GROUP BY queue`,
        [queues, t(now)],
      );
      for (const { queue, n } of r) counts.set(queue, n);
      return counts;
    },

    async lookupTokenFor(tokenHash: string, executorName: string) {
      // One row always: the token's columns are null when there is no such token.
      const [r] = await rows<(TokenRow | { [K in keyof TokenRow]: null }) & { executor_known: boolean }>(
        `SELECT t.job_id, t.attempt, t.queue, t.repository_name, t.executor_name,
           EXISTS (SELECT 1 FROM executors WHERE name = $2) AS executor_known
         FROM (SELECT 1) AS one LEFT JOIN job_tokens t ON t.token_hash = $1`,
        [tokenHash, executorName],
      );
      return {
        token: r && r.job_id !== null ? toTokenRecord(r as TokenRow) : null,
        executorKnown: r?.executor_known === true,
      };
    },

    /** Locks the owned rows in id order first, so two overlapping heartbeats cannot deadlock. */
    async heartbeat(executorName: string, queue: string, jobIds: number[], now: number) {
      if (jobIds.length === 0) return { knownIds: [], cancelIds: [] };
      const r = await rows<{ id: number; cancel: boolean }>(
        `WITH alive AS (
           SELECT id FROM jobs
           WHERE id = ANY($1::bigint[]) AND state = 'processing' AND worker_hostname = $2 AND queue = $3
           ORDER BY id FOR UPDATE)
         UPDATE jobs SET last_heartbeat_at = ${at(4)} WHERE id IN (SELECT id FROM alive)
         RETURNING id, cancel`,
        [jobIds, executorName, queue, t(now)],
      );
      r.sort((a, b) => a.id - b.id);
      return { knownIds: r.map((x) => x.id), cancelIds: r.filter((x) => x.cancel).map((x) => x.id) };
    },

    async addLogEntry(f: AttemptFence, entry: LogEntryInput, maxOutputBytes: number) {
      return inTransaction(async (c) => {
        const usage = await lockFence(c, f);
        if (!usage) return null;
        const ins = await c.query<{ entry_id: number }>(
          `INSERT INTO log_entries (job_id, attempt, entry_id, key, command, start_time, exit_code, duration_ms)
           SELECT $1, $2, COALESCE(MAX(entry_id), 0) + 1, $3, $4, $5, $6, $7 FROM log_entries
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
          ],
        );
        const id = ins.rows[0]!.entry_id;
        await writeOutput(c, f, id, 0, newSuffix(entry.out, 0), usage, maxOutputBytes);
        return id;
      });
    },

    async updateLogEntry(f: AttemptFence, entryId: number, entry: LogEntryInput, maxOutputBytes: number) {
      return inTransaction(async (c) => {
        const usage = await lockFence(c, f);
        if (!usage) return false;
        const cur = await getEntry(c, f, entryId);
        if (!cur) return false;
        await c.query(
          `UPDATE log_entries SET key = $4, command = $5, start_time = $6, exit_code = $7, duration_ms = $8
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
          ],
        );
        await writeOutput(
          c,
          f,
          entryId,
          cur.out_length,
          newSuffix(entry.out, cur.out_length),
          usage,
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
        const bytes = Buffer.from(out, 'utf8');
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

    async getLogEntries(jobId: number, o: { attempt?: number; withOutput?: boolean } = {}) {
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
      const entries: LogEntryRecord[] = (
        await rows<PgLogEntryRow>(
          'SELECT * FROM log_entries WHERE job_id = $1 AND attempt = $2 ORDER BY entry_id',
          [jobId, attempt],
        )
      ).map(toLogEntry);
      if (o.withOutput) for (const e of entries) e.out = await readOutput(jobId, e.attempt, e.entryId, 0);
      return entries;
    },

    async readLogOutput(jobId: number, attempt: number, entryId: number, from: number) {
      return readOutput(jobId, attempt, entryId, from);
    },

    async markComplete(f: AttemptFence, now: number) {
      return mark(f, 'completed', `state = 'completed', finished_at = ${at(1)}`, [t(now)], 1);
    },

    async markCompleteByToken(tk, now) {
      // One statement: the token, the executor's registration and the fence are checked together.
      const r = await rows<{ attempts: number }>(
        `WITH tok AS (
           SELECT attempt FROM job_tokens
           WHERE token_hash = $1 AND job_id = $2 AND executor_name = $3 AND queue = $4
             AND EXISTS (SELECT 1 FROM executors WHERE name = $3)),
         m AS (
           UPDATE jobs SET state = 'completed', finished_at = ${at(5)}
           WHERE id = $2 AND state = 'processing' AND worker_hostname = $3
             AND attempts = (SELECT attempt FROM tok)
           RETURNING id, attempts),
         t AS (DELETE FROM job_tokens WHERE job_id IN (SELECT id FROM m)),
         h AS (
           UPDATE job_claims c SET ended_at = ${at(5)}, outcome = 'completed'
           FROM m WHERE c.job_id = m.id AND c.attempt = m.attempts AND c.outcome IS NULL)
         SELECT attempts FROM m`,
        [tk.tokenHash, tk.jobId, tk.executorName, tk.queue, t(now)],
      );
      const row = r[0];
      return row ? { jobId: tk.jobId, executorName: tk.executorName, attempt: row.attempts } : null;
    },

    async markErrored(f: AttemptFence, message: string, now: number, retry: RetryPolicy) {
      return mark(f, 'errored', ERRORED_SET, [message, t(now), retry.maxMs, retry.baseMs], 2);
    },

    async markFailed(f: AttemptFence, message: string, now: number) {
      return mark(
        f,
        'failed',
        `state = CASE WHEN cancel THEN 'canceled' ELSE 'failed' END,
         num_failures = num_failures + CASE WHEN cancel THEN 0 ELSE 1 END,
         failure_message = $1::text, finished_at = ${at(2)}`,
        [message, t(now)],
        2,
      );
    },

    /**
     * Two statements (fail, then reset), each locking its rows with SKIP LOCKED so replicas running
     * the resetter at once split the work instead of queueing behind each other.
     */
    async resetStalled(now: number, stalledAfterMs: number, maxResets: number) {
      const failed = await rows<{ id: number }>(
        `WITH stalled AS (
           SELECT id FROM jobs
           WHERE state = 'processing' AND last_heartbeat_at < ${at(1)} - $2::bigint AND num_resets >= $3
           FOR UPDATE SKIP LOCKED),
         f AS (
           UPDATE jobs j SET state = 'failed', finished_at = ${at(1)}, failure_message = $4
           FROM stalled s WHERE j.id = s.id RETURNING j.id, j.attempts, j.finished_at),
         t AS (DELETE FROM job_tokens WHERE job_id IN (SELECT id FROM f)),
         h AS (
           UPDATE job_claims c SET ended_at = f.finished_at, outcome = 'stalled-failed'
           FROM f WHERE c.job_id = f.id AND c.attempt = f.attempts AND c.outcome IS NULL)
         SELECT id FROM f ORDER BY id`,
        [t(now), stalledAfterMs, maxResets, RESET_FAILURE_MESSAGE],
      );
      const reset = await rows<{ id: number; queue: string }>(
        `WITH stalled AS (
           SELECT id FROM jobs
           WHERE state = 'processing' AND last_heartbeat_at < ${at(1)} - $2::bigint AND num_resets < $3
           FOR UPDATE SKIP LOCKED),
         r AS (
           UPDATE jobs j SET state = 'queued', num_resets = j.num_resets + 1, started_at = NULL,
             last_heartbeat_at = NULL, process_after = NULL, queued_at = ${at(1)},
             rank_key = ${at(1)} - j.priority * ${RANK_STEP}
           FROM stalled s WHERE j.id = s.id RETURNING j.id, j.queue, j.attempts, j.queued_at),
         t AS (DELETE FROM job_tokens WHERE job_id IN (SELECT id FROM r)),
         h AS (
           UPDATE job_claims c SET ended_at = r.queued_at, outcome = 'stalled-reset'
           FROM r WHERE c.job_id = r.id AND c.attempt = r.attempts AND c.outcome IS NULL)
         SELECT id, queue FROM r ORDER BY id`,
        [t(now), stalledAfterMs, maxResets],
      );
      await notify(reset.map((r) => r.queue));
      return { reset: reset.map((r) => r.id), failed: failed.map((r) => r.id) };
    },

    /**
     * Finds overdue attempts, then ends each with its own guarded statement (the message names the
     * job's own timeout). The guard includes the attempt, so a job that finished or was reset in
     * between is left alone.
     */
    async expireDeadlines(now: number, retry: RetryPolicy) {
      const due = await rows<{ id: number; attempts: number; timeout_ms: number }>(
        `SELECT id, attempts, timeout_ms FROM jobs
         WHERE state = 'processing' AND started_at + timeout_ms < ${at(1)} ORDER BY id`,
        [t(now)],
      );
      const touched: number[] = [];
      for (const j of due) {
        const message = `job exceeded its timeout of ${formatDuration(j.timeout_ms)}`;
        const r = await rows<{ n: number }>(
          `WITH m AS (
             UPDATE jobs SET ${ERRORED_SET}
             WHERE id = $5 AND state = 'processing' AND attempts = $6 RETURNING id, attempts),
           t AS (DELETE FROM job_tokens WHERE job_id IN (SELECT id FROM m)),
           h AS (
             UPDATE job_claims c SET ended_at = ${at(2)}, outcome = 'deadline'
             FROM m WHERE c.job_id = m.id AND c.attempt = m.attempts AND c.outcome IS NULL)
           SELECT count(*)::int AS n FROM m`,
          [message, t(now), retry.maxMs, retry.baseMs, j.id, j.attempts],
        );
        if (r[0]!.n > 0) touched.push(j.id);
      }
      return touched;
    },

    async cancelJob(id: number, now: number) {
      const [row] = await rows<PgJobRow>(
        `UPDATE jobs SET cancel = TRUE,
           state = CASE WHEN state IN ('queued', 'errored') THEN 'canceled' ELSE state END,
           finished_at = CASE WHEN state IN ('queued', 'errored') THEN ${at(2)} ELSE finished_at END
         WHERE id = $1 AND state IN ('queued', 'errored', 'processing') RETURNING *`,
        [id, t(now)],
      );
      if (row) return toJob(row);
      const [cur] = await rows<PgJobRow>('SELECT * FROM jobs WHERE id = $1', [id]);
      return cur ? toJob(cur) : null;
    },

    async retryJob(id: number, now: number) {
      const [row] = await rows<PgJobRow>(
        `WITH r AS (
           UPDATE jobs SET state = 'queued', attempts = 0, num_failures = 0, num_resets = 0, cancel = FALSE,
             failure_message = NULL, worker_hostname = NULL, started_at = NULL, last_heartbeat_at = NULL,
             finished_at = NULL, process_after = NULL, queued_at = ${at(2)},
             rank_key = ${at(2)} - priority * ${RANK_STEP}
           WHERE id = $1 AND state IN ('failed', 'errored', 'canceled') RETURNING *),
         t AS (DELETE FROM job_tokens WHERE job_id IN (SELECT id FROM r))
         SELECT * FROM r`,
        [id, t(now)],
      );
      if (row) {
        await notify([row.queue]);
        return toJob(row);
      }
      const [cur] = await rows<PgJobRow>('SELECT * FROM jobs WHERE id = $1', [id]);
      return cur ? toJob(cur) : null;
    },

    async upsertExecutor(hb: ExecutorHeartbeat, now: number) {
      await query(
        `INSERT INTO executors (name, hostname, queue_name, queue_names, os, architecture, docker_version,
           executor_version, git_version, ignite_version, src_cli_version, first_seen_at, last_seen_at, metrics)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, ${at(12)}, ${at(12)}, $13)
         ON CONFLICT (name) DO UPDATE SET hostname = excluded.hostname, queue_name = excluded.queue_name,
           queue_names = excluded.queue_names, os = excluded.os, architecture = excluded.architecture,
           docker_version = excluded.docker_version, executor_version = excluded.executor_version,
           git_version = excluded.git_version, ignite_version = excluded.ignite_version,
           src_cli_version = excluded.src_cli_version, last_seen_at = excluded.last_seen_at,
           metrics = excluded.metrics`,
        [
          hb.name,
          hb.hostname,
          hb.queueName,
          hb.queueNames,
          hb.os,
          hb.architecture,
          hb.dockerVersion,
          hb.executorVersion,
          hb.gitVersion,
          hb.igniteVersion,
          hb.srcCliVersion,
          t(now),
          hb.metrics,
        ],
      );
    },

    async getExecutor(name: string) {
      const [row] = await rows<PgExecutorRow>('SELECT * FROM executors WHERE name = $1', [name]);
      return row ? toExecutor(row) : null;
    },

    async listExecutors() {
      return (await rows<PgExecutorRow>('SELECT * FROM executors ORDER BY name COLLATE "C"')).map(toExecutor);
    },

    async deleteExecutorsSeenBefore(cutoff: number) {
      return (await query('DELETE FROM executors WHERE last_seen_at < $1', [cutoff])).rowCount ?? 0;
    },

    async queueStats(now: number) {
      const r = await rows<{ queue: string; queued: number; processing: number; oldest: number | null }>(
        `SELECT queue,
           count(*) FILTER (WHERE state = 'queued') AS queued,
           count(*) FILTER (WHERE state = 'processing') AS processing,
           MIN(GREATEST(queued_at, COALESCE(process_after, queued_at)))
             FILTER (WHERE state = 'queued' AND (process_after IS NULL OR process_after <= ${at(1)})) AS oldest
         FROM jobs GROUP BY queue ORDER BY queue COLLATE "C"`,
        [t(now)],
      );
      return r.map((x) => ({
        queue: x.queue,
        queued: x.queued,
        processing: x.processing,
        oldestQueuedAt: x.oldest,
      }));
    },

    onEnqueue(cb: (queue: string) => void) {
      events.on('enqueue', cb);
      void ensureListener();
      return () => {
        events.off('enqueue', cb);
      };
    },
  };
}
