/**
 * The set of running jobs (Sourcegraph `workerutil/idset.go`), keyed by record UID (`"42"` or
 * `"42-batches"`), each with the job's one AbortController. `cancel` aborts and keeps the id (the
 * handler then marks the job failed); `remove` aborts and forgets it (the server no longer knows
 * the job).
 */
import type { Job } from '../protocol/job.js';

/** Abort reason: the server asked for the job to be canceled (heartbeat cancelIds). */
export class JobCanceledError extends Error {
  constructor() {
    super('job canceled');
    this.name = 'JobCanceledError';
  }
}
/** Abort reason: the server's heartbeat response no longer lists the job. */
export class UnknownJobError extends Error {
  constructor() {
    super('job is no longer known to the server');
    this.name = 'UnknownJobError';
  }
}
/** Abort reason: MAXIMUM_RUNTIME_PER_JOB passed. */
export class JobTimeoutError extends Error {
  constructor(readonly limit: string) {
    super(`job exceeded maximum execution time of ${limit}`);
    this.name = 'JobTimeoutError';
  }
}
/** Abort reason: the executor was told to stop now (second signal). */
export class ShutdownError extends Error {
  constructor() {
    super('executor shutting down');
    this.name = 'ShutdownError';
  }
}

export interface RunningJob {
  job: Job;
  controller: AbortController;
}

export interface RunningJobs {
  /** Returns false when the uid is already running (the job is then left alone). */
  add(uid: string, entry: RunningJob): boolean;
  has(uid: string): boolean;
  /** Sorted uids. */
  ids(): string[];
  size(): number;
  cancel(uid: string): void;
  remove(uid: string, reason?: Error): void;
  /** Called by the handler when it is done with the job. */
  release(uid: string, controller: AbortController): void;
  abortAll(reason: Error): void;
}

export function createRunningJobs(): RunningJobs {
  const map = new Map<string, RunningJob>();
  return {
    add(uid, entry) {
      if (map.has(uid)) return false;
      map.set(uid, entry);
      return true;
    },
    has: (uid) => map.has(uid),
    ids: () => [...map.keys()].sort(),
    size: () => map.size,
    cancel(uid) {
      map.get(uid)?.controller.abort(new JobCanceledError());
    },
    remove(uid, reason = new UnknownJobError()) {
      const e = map.get(uid);
      if (!e) return;
      map.delete(uid);
      e.controller.abort(reason);
    },
    release(uid, controller) {
      if (map.get(uid)?.controller === controller) map.delete(uid);
    },
    abortAll(reason) {
      for (const e of map.values()) e.controller.abort(reason);
    },
  };
}
