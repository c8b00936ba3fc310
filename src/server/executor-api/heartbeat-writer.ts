/**
 * What heartbeats write, coalesced. A heartbeat writes at most three things: its executor's
 * registry row, the leases of the jobs it reports, and when its executor was last seen.
 *
 * - Rows: a row this server wrote less than EXECUTOR_ROW_REFRESH_MS ago with the same content
 *   (telemetry and pushed metrics, `rowKey`) is not written again (`rowDue`): an idle executor's
 *   heartbeats repeat themselves. Each replica keeps its own record of what it wrote, so with
 *   several replicas a row is written at least as often as by any one of them.
 * - Last seen: a heartbeat that does not write its row is `seen`, and what was seen goes to the
 *   store every HEARTBEAT_TOUCH_INTERVAL_MS as one `touchExecutors` (last_seen_at moved forward to
 *   each executor's latest heartbeat): an idle fleet of any size costs about one statement a
 *   second, not one per heartbeat, and lastSeenAt trails a heartbeat by about a second. An
 *   executor whose row is gone (the janitor, an operator) is forgotten, so its next heartbeat
 *   writes the row again.
 * - Batches: writes arriving within HEARTBEAT_BATCH_WINDOW_MS of the first of a batch go to the
 *   store as one `recordHeartbeats` (one transaction; one statement on PostgreSQL). At most one
 *   batch is in flight; what arrives meanwhile goes in the next, which starts when it returns.
 *
 * Answers stay exact: a batch starts after every heartbeat in it arrived, so its statement sees
 * every mark and cancel committed before any of them.
 *
 * Failures: a failed batch of several is written again one heartbeat at a time, so one bad row (text
 * PostgreSQL refuses, a deadlock between replicas) fails no other heartbeat; a heartbeat whose row
 * fails is written again without it, and the failure logged: losing the registry row must not cost
 * the executor its jobs (upstream only logs it too). An unavailable store fails the batch at once.
 */
import { createHash } from 'node:crypto';
import { type Clock, systemTimers, type Timer, type Timers } from '../../lib/clock.js';
import { isAppError } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import type { Telemetry } from '../../protocol/http.js';
import type { HeartbeatAnswer, HeartbeatWrite, Store } from '../../store/types.js';

/**
 * How long the first heartbeat write of a batch waits for others: a few milliseconds on top of a
 * heartbeat's round trip. A batch also takes whatever arrived while the one before was in the
 * store (7 to 16 heartbeats a batch in fleet runs of 2,000 executors on a loaded machine).
 */
export const HEARTBEAT_BATCH_WINDOW_MS = 2;

/**
 * An unchanged row is written again once it is this old (a minute: one heartbeat in twelve at
 * 5 s), so a row that differs from what this replica last wrote (another writer of the same name)
 * is put right within a minute. lastSeenAt does not wait for it: touches keep it current.
 */
export const EXECUTOR_ROW_REFRESH_MS = 60_000;

/**
 * How often the executors seen since the last touch are written (one statement). An executor
 * beating every 5 s shows as seen within about 6 s, well inside the 15 s of `active`
 * (ACTIVE_WITHIN_MS) and the 30 s /metrics serves its pushed metrics for.
 */
export const HEARTBEAT_TOUCH_INTERVAL_MS = 1_000;

export interface HeartbeatWriterOptions {
  store: Pick<Store, 'recordHeartbeats' | 'touchExecutors'>;
  clock: Clock;
  logger: Logger;
  windowMs?: number;
  refreshMs?: number;
  /** The touch timer's (default: real ones); tests fire it by hand. */
  timers?: Timers;
  touchMs?: number;
}

export interface HeartbeatWriter {
  /** True when a heartbeat with this row content (`rowKey`) must write its executor's row. */
  rowDue(executorName: string, key: string, now: number): boolean;
  /** Writes in the next batch; answers per job list in order. `key` is the row's, when it has one. */
  write(w: HeartbeatWrite, key?: string): Promise<HeartbeatAnswer[]>;
  /** A heartbeat of this executor arrived at `now` and did not write its row: goes in the next touch. */
  seen(executorName: string, now: number): void;
  /** Writes what was seen and not yet touched, and stops the touch timer. */
  close(): Promise<void>;
  /** Heartbeats waiting for their batch or in the one in flight (tests and diagnostics). */
  pending(): number;
  /** Counters of heartbeats written, touches and store writes, as Prometheus text (for /metrics). */
  render(): string;
}

/**
 * The content of an executor's row as its heartbeat gives it: the telemetry and queues as they
 * are, the pushed metrics by digest (their text can be 256 KiB, and changes at every heartbeat of
 * an executor whose counters move).
 */
export function rowKey(
  t: Telemetry & { queueName: string | null; queueNames: string[] | null },
  metrics: string,
): string {
  const digest = metrics === '' ? '' : createHash('sha1').update(metrics).digest('base64');
  return JSON.stringify([
    t.queueName,
    t.queueNames,
    t.os,
    t.architecture,
    t.dockerVersion,
    t.executorVersion,
    t.gitVersion,
    t.igniteVersion,
    t.srcCliVersion,
    digest,
  ]);
}

interface Pending {
  w: HeartbeatWrite;
  key: string | undefined;
  resolve(a: HeartbeatAnswer[]): void;
  reject(e: unknown): void;
}

const unavailable = (e: unknown) => isAppError(e) && e.code === 'UNAVAILABLE';

export function createHeartbeatWriter(opts: HeartbeatWriterOptions): HeartbeatWriter {
  const { store, clock, logger } = opts;
  const windowMs = opts.windowMs ?? HEARTBEAT_BATCH_WINDOW_MS;
  const refreshMs = opts.refreshMs ?? EXECUTOR_ROW_REFRESH_MS;

  // What this server wrote, per executor: two generations, swapped every refreshMs, so that an
  // executor gone quiet is forgotten within 2 x refreshMs (by then its entry says nothing).
  let current = new Map<string, { key: string; at: number }>();
  let previous = new Map<string, { key: string; at: number }>();
  let swappedAt = Number.NEGATIVE_INFINITY;
  const remember = (name: string, key: string, at: number) => {
    if (at - swappedAt >= refreshMs) {
      previous = current;
      current = new Map();
      swappedAt = at;
    }
    current.set(name, { key, at });
  };

  let queue: Pending[] = [];
  let inFlight = 0;
  let timer = false;
  let written = 0;
  let batches = 0;

  const touches = createTouches(opts, (name) => {
    current.delete(name);
    previous.delete(name);
  });

  /** The store's answer for `batch`, remembering the rows it wrote. Throws what the store threw. */
  async function record(batch: Pending[], now: number): Promise<HeartbeatAnswer[][]> {
    const answers = await store.recordHeartbeats(
      batch.map((p) => p.w),
      now,
    );
    for (const p of batch) if (p.w.row && p.key !== undefined) remember(p.w.executorName, p.key, now);
    return answers;
  }

  /**
   * A heartbeat whose write failed with `error`: without a row it fails; with one, the row's loss
   * is logged and the leases are written without it (not tried again when the store is down).
   */
  async function withoutRow(p: Pending, error: unknown): Promise<void> {
    if (p.w.row === null) {
      p.reject(error);
      return;
    }
    logger.error('upserting executor heartbeat failed', { executor: p.w.executorName, error });
    const w = { ...p.w, row: null };
    if (w.jobs.every((g) => g.jobIds.length === 0)) {
      p.resolve(w.jobs.map(() => ({ knownIds: [], cancelIds: [] })));
      return;
    }
    if (unavailable(error)) {
      p.reject(error);
      return;
    }
    try {
      p.resolve((await record([{ ...p, w, key: undefined }], clock.now()))[0]!);
    } catch (e) {
      p.reject(e);
    }
  }

  async function flush(batch: Pending[]): Promise<void> {
    let error: unknown;
    try {
      const answers = await record(batch, clock.now());
      for (const [i, p] of batch.entries()) p.resolve(answers[i]!);
      return;
    } catch (e) {
      error = e;
    }
    if (batch.length === 1 || unavailable(error)) {
      for (const p of batch) await withoutRow(p, error);
      return;
    }
    // Which heartbeat failed the batch is not known: each is written on its own.
    for (const p of batch) {
      try {
        p.resolve((await record([p], clock.now()))[0]!);
      } catch (e) {
        await withoutRow(p, e);
      }
    }
  }

  const run = () => {
    timer = false;
    if (inFlight > 0 || queue.length === 0) return;
    const batch = queue;
    queue = [];
    inFlight = batch.length;
    written += batch.length;
    batches++;
    void flush(batch).finally(() => {
      inFlight = 0;
      // What arrived meanwhile has waited for this batch already: it goes at once.
      run();
    });
  };

  return {
    rowDue(executorName, key, now) {
      const seen = current.get(executorName) ?? previous.get(executorName);
      return seen === undefined || seen.key !== key || now - seen.at >= refreshMs || now < seen.at;
    },

    write(w, key) {
      return new Promise<HeartbeatAnswer[]>((resolve, reject) => {
        queue.push({ w, key, resolve, reject });
        if (timer || inFlight > 0) return;
        timer = true;
        if (windowMs > 0) setTimeout(run, windowMs);
        else setImmediate(run);
      });
    },

    seen: touches.seen,
    close: touches.close,

    pending: () => queue.length + inFlight,

    render: () =>
      [
        '# HELP src_executor_server_heartbeat_writes_total Heartbeats that wrote to the store (a row or leases).',
        '# TYPE src_executor_server_heartbeat_writes_total counter',
        `src_executor_server_heartbeat_writes_total ${written}`,
        '# HELP src_executor_server_heartbeat_batches_total Batches those heartbeats were written in.',
        '# TYPE src_executor_server_heartbeat_batches_total counter',
        `src_executor_server_heartbeat_batches_total ${batches}`,
        ...touches.render(),
        '',
      ].join('\n'),
  };
}

/**
 * The touches: executors seen since the last one, each with the time of its latest heartbeat,
 * written every `touchMs` in one statement, one at a time. `forget` is told of each name the store
 * has no row for.
 */
function createTouches(opts: HeartbeatWriterOptions, forget: (name: string) => void) {
  const { store, logger } = opts;
  const timers = opts.timers ?? systemTimers;
  const touchMs = opts.touchMs ?? HEARTBEAT_TOUCH_INTERVAL_MS;
  let seenSince = new Map<string, number>();
  let timer: Timer | undefined;
  let touching: Promise<void> = Promise.resolve();
  let touched = 0;
  let writes = 0;

  const touch = async () => {
    timer = undefined;
    if (seenSince.size === 0) return;
    const seen = [...seenSince].map(([name, at]) => ({ name, at }));
    seenSince = new Map();
    writes++;
    touched += seen.length;
    try {
      const found = new Set(await store.touchExecutors(seen));
      // No row to touch: the next heartbeat writes it whole.
      for (const { name } of seen) if (!found.has(name)) forget(name);
    } catch (error) {
      // lastSeenAt trails by one more interval: each of these beats again within seconds.
      if (!unavailable(error))
        logger.warn('touching executors seen failed', { executors: seen.length, error });
    }
  };

  return {
    seen(executorName: string, now: number) {
      const before = seenSince.get(executorName);
      if (before === undefined || now > before) seenSince.set(executorName, now);
      timer ??= timers.set(() => {
        touching = touching.then(touch);
      }, touchMs);
    },

    async close() {
      timer?.cancel();
      timer = undefined;
      touching = touching.then(touch);
      await touching;
    },

    render: () => [
      '# HELP src_executor_server_heartbeat_touches_total Executors whose last-seen time heartbeats moved on without writing their row.',
      '# TYPE src_executor_server_heartbeat_touches_total counter',
      `src_executor_server_heartbeat_touches_total ${touched}`,
      '# HELP src_executor_server_heartbeat_touch_writes_total Store writes those touches took (one a touch interval at most).',
      '# TYPE src_executor_server_heartbeat_touch_writes_total counter',
      `src_executor_server_heartbeat_touch_writes_total ${writes}`,
    ],
  };
}
