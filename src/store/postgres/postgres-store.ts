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
 * Choices the interface leaves open are the SQLite twin's (see sqlite-store.ts). One file per concern,
 * each with its own locking rule; this file composes them.
 */
import type { Store } from '../types.js';
import { apiTokenQueries } from './api-tokens.js';
import { claimQueries } from './claim.js';
import { openPostgres, type PostgresStoreOptions } from './connection.js';
import { executorQueries } from './executors.js';
import { jobQueries } from './jobs.js';
import { logQueries } from './logs.js';
import { markQueries } from './marks.js';
import { migrateQueries } from './migrate.js';
import { pruneQueries } from './prune.js';
import { repositoryQueries } from './repositories.js';
import { resetQueries } from './resets.js';

export { ENQUEUE_CHANNEL, LOGS_CHANNEL, type PostgresStoreOptions } from './connection.js';

export function createPostgresStore(opts: PostgresStoreOptions): Store {
  const c = openPostgres(opts);
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
    close: () => c.close(),
    async ping() {
      await c.query('SELECT 1');
    },
    onEnqueue(cb: (queue: string) => void) {
      c.events.on('enqueue', cb);
      void c.ensureListener();
      return () => {
        c.events.off('enqueue', cb);
      };
    },
    onLogWrite(cb: (jobId: number) => void) {
      c.events.on('logwrite', cb);
      void c.ensureListener();
      return () => {
        c.events.off('logwrite', cb);
      };
    },
    announceLogWrite: (jobId: number) => c.announceLogWrite(jobId),
    followLogs: () => c.followLogs(),
  };
}
