/**
 * The heartbeat loop (Sourcegraph `workerutil` heartbeat, every 5 s): sends the running job ids,
 * then aborts and forgets jobs the server no longer knows, and aborts (keeping them) jobs it asks to
 * cancel. It runs independently of the dequeue loop, so it goes on while every slot is busy and
 * while draining. Beats start at a fixed rate and each is bounded by the interval (retries included);
 * on error it logs (with the time since the last success) and tries again at the next beat.
 */
import type { Clock } from '../lib/clock.js';
import { systemClock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { HeartbeatResult } from './client/queue-client.js';
import { type RunningJobs, UnknownJobError } from './running-jobs.js';

export const HEARTBEAT_INTERVAL_MS = 5000;

export interface HeartbeatOptions {
  client: { heartbeat(ids: readonly string[], opts?: { budgetMs?: number }): Promise<HeartbeatResult> };
  running: RunningJobs;
  logger: Logger;
  intervalMs?: number;
  clock?: Clock;
}

export interface HeartbeatLoop {
  start(): void;
  /** Stops the timer and waits for an in-flight beat. */
  stop(): Promise<void>;
  /** One beat now (also used by tests). */
  beat(): Promise<void>;
}

export function createHeartbeat(opts: HeartbeatOptions): HeartbeatLoop {
  const clock = opts.clock ?? systemClock;
  const intervalMs = opts.intervalMs ?? HEARTBEAT_INTERVAL_MS;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let lastSuccess = clock.now();
  let stopped = false;

  async function beat(): Promise<void> {
    const ids = opts.running.ids();
    let res: HeartbeatResult;
    try {
      // A beat never outlives its interval: one that cannot get through in time (retries
      // included) gives up, and the next starts fresh on schedule.
      res = await opts.client.heartbeat(ids, { budgetMs: intervalMs });
      lastSuccess = clock.now();
    } catch (e) {
      opts.logger.warn('heartbeat failed', { error: e, sinceLastSuccessMs: clock.now() - lastSuccess });
      return;
    }
    const known = new Set(res.knownIds);
    for (const id of ids) {
      if (!known.has(id)) {
        opts.logger.warn('Removed unknown job from running set', { job: id });
        opts.running.remove(id, new UnknownJobError());
      }
    }
    for (const id of res.cancelIds) {
      if (opts.running.has(id)) {
        opts.logger.info("canceling job on the server's request", { job: id });
        opts.running.cancel(id);
      }
    }
  }

  /** Fixed rate: the next beat is due one interval after the previous one began. */
  const schedule = (delayMs = intervalMs) => {
    if (stopped) return;
    timer = setTimeout(() => {
      const began = clock.now();
      inFlight = beat().finally(() => {
        inFlight = undefined;
        schedule(Math.max(0, intervalMs - (clock.now() - began)));
      });
    }, delayMs);
  };

  return {
    start() {
      stopped = false;
      schedule();
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await inFlight;
    },
    beat,
  };
}
