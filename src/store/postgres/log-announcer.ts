/**
 * Log announcements between replicas, paid for only while some other replica has log followers.
 *
 * A replica with followers holds a shared advisory lock (FOLLOW_LOCK) on its LISTEN connection, and
 * sends `<origin>:follow` on `executor_logs` when it takes it. A writer announces log writes
 * (NOTIFY, payload `<origin>:<job id>`) only while another replica holds the lock: it checks
 * pg_locks in the statement that would notify, at most once per FOLLOWER_CHECK_MS, and in between
 * trusts the last check, or a `follow` notice heard since. With nobody following elsewhere, the
 * usual case, a replica's writes send no statement at all: the announcements had cost the queue
 * benchmark (dequeue + markComplete) ~9 % of its cycles, a NOTIFY transaction for every third
 * cycle and a wake-up of every listening backend.
 *
 * The lock lives and dies with the LISTEN connection: a replica that crashes or loses its
 * connection stops counting as a follower at once, and takes the lock again when it reconnects.
 * A missed or late announcement is harmless: a wake-up is a hint, and followers re-read on a timer.
 */
import type { EventEmitter } from 'node:events';
import type pg from 'pg';

/** LISTEN/NOTIFY channel of log writes (see the module comment for its payloads). */
export const LOGS_CHANNEL = 'executor_logs';

/** The advisory lock (two int4 keys, 'exec' and 1) a replica with log followers holds, shared. */
export const FOLLOW_LOCK = [0x65786563, 1] as const;

/**
 * How long a writer trusts its last look at pg_locks. A follower that starts on another replica
 * tells writers at once (its `follow` notice); this bounds how long one that stopped still gets
 * announcements, and how long a writer that missed the notice (its LISTEN connection was down)
 * stays unaware.
 */
export const FOLLOWER_CHECK_MS = 1000;

/**
 * The shortest time between two log announcements of one store. Every NOTIFY wakes each backend
 * that LISTENs in the database (every replica's LISTEN connection, this one's included, which reads
 * its own announcements only to drop them). Waiting this long after the previous one delays a
 * follower on another replica by at most as much, and only while writes keep coming.
 */
export const LOG_ANNOUNCE_INTERVAL_MS = 10;

const NOTIFY_LOGS = `SELECT pg_notify('${LOGS_CHANNEL}', p) FROM unnest($1::text[]) AS p`;
/** NOTIFY only if a replica other than the one whose LISTEN backend is $4 holds FOLLOW_LOCK. */
const NOTIFY_LOGS_IF_FOLLOWED = `
  WITH f AS (
    SELECT EXISTS (
      SELECT 1 FROM pg_locks
      WHERE locktype = 'advisory' AND granted AND classid = $2::oid AND objid = $3::oid AND objsubid = 2
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND pid <> $4::int) AS others)
  SELECT others, (SELECT count(pg_notify('${LOGS_CHANNEL}', p)) FROM unnest($1::text[]) AS p WHERE others) AS sent
  FROM f`;

export interface LogAnnouncerDeps {
  pool: pg.Pool;
  origin: string;
  /** `follow` events: another replica started following (its notice). */
  events: EventEmitter;
  /** The backend pid of this store's LISTEN connection (its own lock is not another's), or -1. */
  listenerPid(): number;
  closed(): boolean;
}

/**
 * `announce(jobId)`: NOTIFY of a log write after it committed; best effort. Writes announced while
 * one announcement waits go out with it, in one statement (one notification per job). The first
 * announcement after a pause leaves in the next turn of the event loop, later ones at most once per
 * LOG_ANNOUNCE_INTERVAL_MS; none leaves while no other replica follows (see the module comment).
 */
export function createLogAnnouncer(d: LogAnnouncerDeps): (jobId: number) => void {
  let announced = new Set<number>();
  let lastSentAt = Number.NEGATIVE_INFINITY;
  let othersFollow = false;
  let checkedAt = Number.NEGATIVE_INFINITY;
  // Counts `follow` notices, so that a check that began before one does not undo it.
  let notices = 0;
  d.events.on('follow', () => {
    othersFollow = true;
    checkedAt = performance.now();
    notices++;
  });

  const send = () => {
    const ids = [...announced].map((id) => `${d.origin}:${id}`);
    announced = new Set();
    if (d.closed()) return;
    const now = performance.now();
    const known = now - checkedAt < FOLLOWER_CHECK_MS;
    if (known && !othersFollow) return;
    lastSentAt = now;
    if (known) {
      d.pool.query(NOTIFY_LOGS, [ids]).catch(() => {});
      return;
    }
    const noticesBefore = notices;
    // Taken as checked now, not when the answer comes: a later announcement checks again.
    checkedAt = now;
    d.pool
      .query<{ others: boolean }>(NOTIFY_LOGS_IF_FOLLOWED, [
        ids,
        FOLLOW_LOCK[0],
        FOLLOW_LOCK[1],
        d.listenerPid(),
      ])
      .then((r) => {
        if (notices === noticesBefore) othersFollow = r.rows[0]?.others === true;
      })
      .catch(() => {
        // Unknown: the next announcement checks again.
        if (notices === noticesBefore) checkedAt = Number.NEGATIVE_INFINITY;
      });
  };
  return (jobId) => {
    if (d.closed()) return;
    if (announced.size === 0) {
      const waitMs = lastSentAt + LOG_ANNOUNCE_INTERVAL_MS - performance.now();
      if (waitMs > 0) setTimeout(send, waitMs);
      else setImmediate(send);
    }
    announced.add(jobId);
  };
}

/**
 * This replica's side: `follow()` registers log followers until the returned function is called;
 * while any are registered, the LISTEN connection holds FOLLOW_LOCK (taken again after it
 * reconnects: call `connected()` then, and `disconnected()` when it is gone).
 */
export function createFollowLock(d: { origin: string; listener(): Promise<pg.Client | null> }) {
  let registered = 0;
  let held: pg.Client | null = null;
  let chain: Promise<void> = Promise.resolve();

  /** Brings the lock in line with `registered`, one change at a time. */
  const sync = (): Promise<void> => {
    chain = chain.then(async () => {
      const client = await d.listener();
      if (!client) return;
      if (registered > 0 && held !== client) {
        await client.query(`SELECT pg_advisory_lock_shared($1, $2), pg_notify('${LOGS_CHANNEL}', $3)`, [
          FOLLOW_LOCK[0],
          FOLLOW_LOCK[1],
          `${d.origin}:follow`,
        ]);
        held = client;
      } else if (registered === 0 && held === client) {
        held = null;
        await client.query('SELECT pg_advisory_unlock_shared($1, $2)', [FOLLOW_LOCK[0], FOLLOW_LOCK[1]]);
      }
    });
    chain = chain.catch(() => {});
    return chain;
  };

  return {
    async follow(): Promise<() => void> {
      registered++;
      await sync();
      let released = false;
      return () => {
        if (released) return;
        released = true;
        registered--;
        void sync();
      };
    },
    wanted: () => registered > 0,
    /** The LISTEN connection is (again) up: the lock is taken on it if followers are registered. */
    connected: () => void sync(),
    /** The LISTEN connection is gone, and the lock with it. */
    disconnected() {
      held = null;
    },
  };
}
