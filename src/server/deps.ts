import type { ServerConfig } from '../config/server.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { Store } from '../store/types.js';
import type { AuthLimiter, AuthRefusalMetrics } from './auth-limiter.js';
import type { PruneMetrics } from './background/pruner.js';
import type { EnqueueNotifier } from './enqueue-notifier.js';
import type { HeartbeatWriter } from './executor-api/heartbeat-writer.js';
import type { LaneCounters } from './lane/lane.js';
import type { LogNotifier } from './log-notifier.js';
import type { MemoryGuard } from './memory-guard.js';
import type { HttpMetrics } from './metrics.js';
import type { Repositories } from './repos/index.js';
import type { FollowerLimits } from './user-api/follower-limits.js';

/** What every route file gets from createServer. */
export interface RouteDeps {
  store: Store;
  config: ServerConfig;
  clock: Clock;
  logger: Logger;
  notifier: EnqueueNotifier;
  /**
   * Wakes a parked dequeue for a job just made ready (submitted, retried, requeued), unless the
   * store announces it itself: both stores do (SQLite at once; PostgreSQL by NOTIFY, which reaches
   * every replica, this one included), so one job wakes one executor, not two.
   */
  announceEnqueue(queue: string): void;
  /** Wakes the log followers of a job after an accepted log write or mark. */
  logNotifier: LogNotifier;
  metrics: HttpMetrics;
  /** Failed authentications per peer and token name (both APIs share one table). */
  authLimiter: AuthLimiter;
  authRefusals: AuthRefusalMetrics;
  /** What the retention pruner deleted (served by /metrics). */
  pruneMetrics: PruneMetrics;
  /** Uniform in [0, 1); injectable so multi-queue selection can be tested. */
  random: () => number;
  /** This package's version, for executor compatibility of our own executors. */
  packageVersion: string;
  /** Refuses new work while the process's memory is above its limit. */
  memory: MemoryGuard;
  /** How long a log follower waits for a wake-up before it reads anyway. */
  followFallbackMs: number;
  /** Concurrent log followers, per job and in all. */
  followers: FollowerLimits;
  /** Mirrored repositories: registration, fetches, submit's commit resolution. */
  repos: Repositories;
  /** Heartbeats' store writes, coalesced (executor-api/heartbeat-writer.ts). */
  heartbeats: HeartbeatWriter;
  /** The heartbeat lane's counters (lane/lane.ts). */
  lane: LaneCounters;
}

/**
 * Optional Store hook: a Store that announces every job it makes ready (SQLite in process;
 * PostgreSQL through LISTEN/NOTIFY, from every replica) calls the listener with the queue name.
 * Returns an unsubscribe function.
 */
export interface EnqueueHook {
  onEnqueue?(listener: (queue: string) => void): (() => void) | undefined;
}
