/**
 * The SQLite twin of the Store (better-sqlite3, WAL).
 *
 * Locking strategy, for every file of this folder: one server process owns the database file and
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
import type { Store } from '../types.js';
import { apiTokenQueries } from './api-tokens.js';
import { claimQueries } from './claim.js';
import { openSqlite, type SqliteStoreOptions } from './connection.js';
import { executorQueries } from './executors.js';
import { jobQueries } from './jobs.js';
import { logQueries } from './logs.js';
import { markQueries } from './marks.js';
import { migrateQueries } from './migrate.js';
import { pruneQueries } from './prune.js';
import { repositoryQueries } from './repositories.js';
import { resetQueries } from './resets.js';

export type { SqliteStoreOptions } from './connection.js';

/** One file per concern (see each file's locking rule), composed here into the Store. */
export function createSqliteStore(opts: SqliteStoreOptions): Store {
  const c = openSqlite(opts);
  const { db, q, events } = c;
  return {
    ...migrateQueries(c),
    ...jobQueries(c),
    ...claimQueries(c),
    ...executorQueries(c),
    ...logQueries(c),
    ...markQueries(c),
    ...resetQueries(c),
    ...apiTokenQueries(c),
    ...pruneQueries(c),
    ...repositoryQueries(c),

    async close() {
      events.removeAllListeners();
      if (db.open) db.close();
    },

    async ping() {
      q('SELECT 1').get();
    },

    onEnqueue(cb: (queue: string) => void) {
      events.on('enqueue', cb);
      return () => {
        events.off('enqueue', cb);
      };
    },
  };
}
