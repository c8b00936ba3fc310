/** What a batch of heartbeats writes and answers (Store.recordHeartbeats). */
import type { ExecutorHeartbeat } from './types.js';

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
