/**
 * The PostgreSQL store's connection and what every operation shares: the pool (named prepared
 * statements, errors mapped to store errors), the transaction helper, NOTIFY after a change and the
 * LISTEN connection behind onEnqueue, and the clock convention (`t(now)`).
 *
 * Locking: a pool query is one statement in its own transaction (READ COMMITTED). inTransaction
 * holds one connection for a short explicit transaction; no transaction is held open around a claim.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import pg from 'pg';
import { isConnectionError, toStoreError } from './errors.js';
import { createFollowLock, createLogAnnouncer, LOGS_CHANNEL } from './log-announcer.js';

export { LOGS_CHANNEL };

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
/** The NOTIFY statement, built once (see fragments.ts `sql` on why a statement's text is kept). */
const NOTIFY_ENQUEUE = `SELECT pg_notify('${ENQUEUE_CHANNEL}', q) FROM unnest($1::text[]) AS q`;

const INT8_OID = 20;
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

export interface PgContext {
  /** The value bound to a time parameter: NULL selects the database clock (see fragments `at`). */
  t(now: number): number | null;
  query<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  rows<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]>;
  inTransaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T>;
  /** Wakes waiters of these queues on every replica; after the change committed, best effort. */
  notify(queues: string[]): Promise<void>;
  /** Tells the other replicas that the job's log changed; not awaited, best effort. */
  announceLogWrite(jobId: number): void;
  /** Registers this replica's log followers until the returned function is called (log-announcer.ts). */
  followLogs(): Promise<() => void>;
  /** `enqueue` events (queue name) and `logwrite` events (job id) from NOTIFY (while subscribed) */
  events: EventEmitter;
  ensureListener(): Promise<void>;
  close(): Promise<void>;
}

/**
 * `enqueue` (queue name), `logwrite` (job id) and `follow` events; the last two only from other
 * stores than `origin`.
 */
function emitNotification(
  msg: pg.Notification,
  events: EventEmitter,
  origin: string,
  ownBackends: ReadonlySet<number>,
): void {
  // This replica's own NOTIFY (sent by a backend of its pool) woke its waiters when it was sent.
  if (msg.channel === ENQUEUE_CHANNEL && msg.payload && !ownBackends.has(msg.processId))
    events.emit('enqueue', msg.payload);
  if (msg.channel === LOGS_CHANNEL && msg.payload) {
    const [from, id] = msg.payload.split(':');
    if (from === origin) return;
    if (id === 'follow') events.emit('follow');
    else if (Number.isSafeInteger(Number(id))) events.emit('logwrite', Number(id));
  }
}

export function openPostgres(opts: PostgresStoreOptions): PgContext {
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
  // The backends of this pool's connections: a NOTIFY one of them sent is this replica's own.
  const ownBackends = new Set<number>();
  const backendOf = (c: pg.PoolClient) => (c as { processID?: number | null }).processID;
  pool.on('connect', (c) => {
    const pid = backendOf(c);
    if (typeof pid === 'number') ownBackends.add(pid);
  });
  pool.on('remove', (c) => {
    const pid = backendOf(c);
    if (typeof pid === 'number') ownBackends.delete(pid);
  });

  const events = new EventEmitter();
  events.setMaxListeners(0);
  let closed = false;
  const origin = randomBytes(6).toString('hex');

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
    const unique = [...new Set(queues)];
    // This replica's waiters now, not a NOTIFY round trip later (its echo is not emitted again).
    for (const q of unique) events.emit('enqueue', q);
    await pool.query(NOTIFY_ENQUEUE, [unique]).catch(() => {});
  }

  const listen = createListener(clientConfig, events, origin, () => closed, ownBackends);

  return {
    t,
    query,
    rows,
    inTransaction,
    notify,
    announceLogWrite: createLogAnnouncer({
      pool,
      origin,
      events,
      listenerPid: listen.pid,
      closed: () => closed,
    }),
    followLogs: listen.follow,
    events,
    ensureListener: listen.ensure,
    async close() {
      closed = true;
      events.removeAllListeners();
      await listen.end();
      await pool.end();
    },
  };
}

/**
 * The dedicated connection that holds LISTEN (it cannot go back to the pool), and with it the lock
 * of this replica's log followers (log-announcer.ts); it reconnects while anything is subscribed.
 */
function createListener(
  clientConfig: pg.ClientConfig,
  events: EventEmitter,
  origin: string,
  closed: () => boolean,
  ownBackends: ReadonlySet<number>,
) {
  let listener: pg.Client | null = null;
  let listening: Promise<void> | null = null;
  /** The LISTEN connection once it listens, else null. */
  const ready = async (): Promise<pg.Client | null> => {
    await ensure();
    return listener;
  };
  const followLock = createFollowLock({ origin, listener: ready });

  function ensure(): Promise<void> {
    if (listening) return listening;
    const client = new pg.Client(clientConfig);
    const drop = () => {
      if (listener !== client) return;
      listener = null;
      listening = null;
      followLock.disconnected();
      client.end().catch(() => {});
      const wanted =
        events.listenerCount('enqueue') + events.listenerCount('logwrite') > 0 || followLock.wanted();
      if (!closed() && wanted) setTimeout(() => void ensure(), 1_000).unref();
    };
    client.on('error', drop);
    client.on('end', drop);
    client.on('notification', (msg) => emitNotification(msg, events, origin, ownBackends));
    listener = client;
    listening = (async () => {
      await client.connect();
      await client.query(`LISTEN ${ENQUEUE_CHANNEL}`);
      await client.query(`LISTEN ${LOGS_CHANNEL}`);
      followLock.connected();
    })().catch(() => drop());
    return listening;
  }

  return {
    ensure,
    follow: () => followLock.follow(),
    /** The LISTEN connection's backend pid, or -1. */
    pid: () => (listener as { processID?: number | null } | null)?.processID ?? -1,
    async end() {
      const l = listener;
      listener = null;
      listening = null;
      if (l) await l.end().catch(() => {});
    },
  };
}
