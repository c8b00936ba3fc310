/**
 * What a batch of heartbeats writes and answers (Store.recordHeartbeats), and how the executor
 * rows they write are read back (lists, counts, pushed metrics).
 */
import type { ExecutorHeartbeat, ExecutorSummary } from './types.js';

/** One heartbeat of a batch written by `recordHeartbeats`. */
export interface HeartbeatWrite {
  executorName: string;
  /** The executor's row to upsert (its name is `executorName`), or null to leave the row as it is. */
  row: ExecutorHeartbeat | null;
  /** The running jobs it reports, by queue, renewed as `heartbeat` renews them. */
  jobs: { queue: string; jobIds: number[] }[];
}

/** What `heartbeat` answers for one queue's job ids. */
export interface HeartbeatAnswer {
  knownIds: number[];
  cancelIds: number[];
}

/** An executor's pushed metrics as /metrics and the dashboard read them (recentExecutorMetrics). */
export interface ExecutorMetricsRow {
  name: string;
  lastSeenAt: number;
  metrics: string;
}

/** A page of a listing by name: at most `limit`, those named after `after` (byte order). */
export interface NamePage {
  after?: string;
  limit: number;
}

/** What heartbeats write: leases, executor rows, and when each executor was last seen. */
export interface HeartbeatQueries {
  /**
   * Renews the lease of the given jobs owned by executorName (processing, same owner). Returns
   * which are known and which of those have the cancel flag. Unknown ids are simply absent.
   */
  heartbeat(executorName: string, queue: string, jobIds: number[], now: number): Promise<HeartbeatAnswer>;

  /**
   * Several heartbeats as one write (one transaction; one statement on PostgreSQL): every row given
   * is upserted as `upsertExecutor` would (of two rows of one name, the later in the batch wins) and
   * every job list renewed as `heartbeat` would, all at `now`. Answers per heartbeat, per job list
   * in order, what `heartbeat` would have answered: a mark or cancel committed before the call is
   * seen. All or nothing: when it fails, nothing of the batch was written.
   */
  recordHeartbeats(batch: HeartbeatWrite[], now: number): Promise<HeartbeatAnswer[][]>;

  /**
   * Moves each named executor's last_seen_at forward to its `at` (never back; by the store's clock
   * as `t(now)` is elsewhere), leaving the rest of its row as it is: what a heartbeat whose row did
   * not change writes, many at a time. Answers the names that have a row; a name without one is
   * not created (its next heartbeat writes the whole row).
   */
  touchExecutors(seen: ExecutorSeen[]): Promise<string[]>;
}

/** The executor rows heartbeats write, read back. */
export interface ExecutorReads {
  /**
   * Executors by name in byte order, without their metrics text (up to
   * EXECUTOR_SERVER_MAX_EXECUTOR_METRICS each): all of them, or with `page` the first `limit` named
   * after `after`.
   */
  listExecutors(page?: NamePage): Promise<ExecutorSummary[]>;
  /** How many executor rows there are, and how many were seen within `activeWithinMs` of `now`. */
  countExecutors(now: number, activeWithinMs: number): Promise<{ total: number; active: number }>;
  /**
   * The queues executors seen within `activeWithinMs` of `now` poll (their queue_name, or each of
   * their queue_names), each with how many of them poll it, by queue name in byte order.
   */
  queuePollers(now: number, activeWithinMs: number): Promise<QueuePollers[]>;
  /**
   * The pushed metrics of executors seen within `withinMs` of `now` (by the store's clock, as
   * last_seen_at was written), those with metrics only, by name in byte order: what /metrics
   * serves. With `page`, the first `limit` named after `after` (no one read holds the loop).
   */
  recentExecutorMetrics(now: number, withinMs: number, page?: NamePage): Promise<ExecutorMetricsRow[]>;
}

/** A queue and how many recently seen executors poll it (ExecutorReads.queuePollers). */
export interface QueuePollers {
  queue: string;
  executors: number;
}

/** An executor and when a heartbeat of it arrived (Store.touchExecutors). */
export interface ExecutorSeen {
  name: string;
  at: number;
}
