/**
 * The SQLite store's connection and what every operation shares: the database (WAL, a busy timeout,
 * foreign keys), a prepared-statement cache, the transaction helper, the enqueue events, and the
 * few reads and writes several operations make inside their own transactions.
 *
 * Locking: one server process owns the file and better-sqlite3 is synchronous, so statements run
 * one at a time. `tx(fn)` runs fn in `BEGIN IMMEDIATE`, taking the write lock at BEGIN, so another
 * connection to the file waits up to busy_timeout instead of failing half-way.
 */
import { EventEmitter } from 'node:events';
import Database from 'better-sqlite3';
import type { AttemptFence, ClaimOutcome } from '../types.js';
import { FENCE } from './fragments.js';
import type { JobRow } from './rows.js';

export interface SqliteStoreOptions {
  /** File path, or ':memory:'. */
  path: string;
  /** How long a writer waits for another connection's lock before failing. Default 5000. */
  busyTimeoutMs?: number;
}

export interface SqliteContext {
  db: Database.Database;
  /** Prepared once per SQL text; tables must exist, so only after migrate(). */
  q(sql: string): Database.Statement;
  /** fn as one IMMEDIATE transaction. */
  tx<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R;
  /** `enqueue` (queue name) after a job becomes ready: submitted, requeued or retried. */
  events: EventEmitter;
  getJobRow(id: number): JobRow | undefined;
  /** The attempt is current, processing and owned by the executor. */
  fenceHolds(f: AttemptFence): boolean;
  deleteToken(jobId: number): void;
  /**
   * What every end of an attempt does besides its own update, inside the caller's transaction: the
   * job's token is deleted and the attempt's claim written to job_claims with its outcome. An open
   * claim is not a row: it is the jobs row itself while it is processing (see claim.ts).
   */
  endAttempt(claim: EndedClaim, outcome: ClaimOutcome, now: number): void;
}

/** The attempt being ended, as its jobs row said before the update that ends it. */
export interface EndedClaim {
  jobId: number;
  attempt: number;
  executorName: string;
  claimedAt: number;
}

export function openSqlite(opts: SqliteStoreOptions): SqliteContext {
  const db = new Database(opts.path);
  // Freed pages go back to the file system (reclaimSpace) only in incremental mode, which a file
  // takes before its first table; older files are converted once by migrate().
  db.pragma('auto_vacuum = INCREMENTAL');
  db.pragma('journal_mode = WAL');
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
  db.pragma('foreign_keys = ON');
  db.pragma('synchronous = NORMAL');

  const events = new EventEmitter();
  events.setMaxListeners(0);
  const statements = new Map<string, Database.Statement>();
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
  const deleteToken = (jobId: number) => void q('DELETE FROM job_tokens WHERE job_id = ?').run(jobId);
  return {
    db,
    q,
    tx,
    events,
    getJobRow: (id) => q('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined,
    fenceHolds: (f) =>
      q(`SELECT 1 FROM jobs WHERE ${FENCE}`).get(f.jobId, f.executorName, f.attempt) !== undefined,
    deleteToken,
    endAttempt: (claim, outcome, now) => {
      deleteToken(claim.jobId);
      q(
        `INSERT INTO job_claims (job_id, attempt, executor_name, claimed_at, ended_at, outcome)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ).run(claim.jobId, claim.attempt, claim.executorName, claim.claimedAt, now, outcome);
    },
  };
}
