/**
 * What heartbeats write, coalesced. A heartbeat writes at most two things: its executor's registry
 * row and the leases of the jobs it reports.
 *
 * - Rows: a row this server wrote less than EXECUTOR_ROW_REFRESH_MS ago with the same content
 *   (telemetry and pushed metrics, `rowKey`) is not written again (`rowDue`): an idle executor's
 *   heartbeats repeat themselves, and its row only needs lastSeenAt refreshed. At 5 s heartbeats
 *   every other one writes (see the constant). Each replica keeps its own record of what it wrote,
 *   so with several replicas a row is written at least as often as by any one of them.
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
import type { Clock } from '../../lib/clock.js';
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
 * An unchanged row is written again once it is this old. With heartbeats every 5 s this falls
 * between one interval and two with 2 s to spare either side, so every other heartbeat writes and
 * lastSeenAt trails an executor's latest heartbeat by less than 7 s: one beating every 5 s shows
 * as seen within 12 s, inside the 15 s of `active` (ACTIVE_WITHIN_MS), and its metrics stay
 * within the 30 s /metrics serves them for.
 */
export const EXECUTOR_ROW_REFRESH_MS = 7_000;

export interface HeartbeatWriterOptions {
  store: Pick<Store, 'recordHeartbeats'>;
  clock: Clock;
  logger: Logger;
  windowMs?: number;
  refreshMs?: number;
}

export interface HeartbeatWriter {
  /** True when a heartbeat with this row content (`rowKey`) must write its executor's row. */
  rowDue(executorName: string, key: string, now: number): boolean;
  /** Writes in the next batch; answers per job list in order. `key` is the row's, when it has one. */
  write(w: HeartbeatWrite, key?: string): Promise<HeartbeatAnswer[]>;
  /** Heartbeats waiting for their batch or in the one in flight (tests and diagnostics). */
  pending(): number;
  /** Counters of heartbeats written and store writes, as Prometheus text (for /metrics). */
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

    pending: () => queue.length + inFlight,

    render: () =>
      [
        '# HELP src_executor_server_heartbeat_writes_total Heartbeats that wrote to the store (a row or leases).',
        '# TYPE src_executor_server_heartbeat_writes_total counter',
        `src_executor_server_heartbeat_writes_total ${written}`,
        '# HELP src_executor_server_heartbeat_batches_total Batches those heartbeats were written in.',
        '# TYPE src_executor_server_heartbeat_batches_total counter',
        `src_executor_server_heartbeat_batches_total ${batches}`,
        '',
      ].join('\n'),
  };
}
