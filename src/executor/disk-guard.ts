/**
 * EXECUTOR_MIN_FREE_DISK: before each dequeue the worker asks whether the workspace root's file
 * system has room. Logs once when space drops below the minimum and once when it is back, and keeps
 * the free-space gauges current. A failed read lets the dequeue go ahead (with a warning): a statfs
 * problem must not stop an executor that may well have room.
 */
import { statfs } from 'node:fs/promises';
import { formatBytes } from '../lib/duration.js';
import type { Logger } from '../lib/logger.js';
import type { ExecutorMetrics } from './metrics.js';

export interface DiskGuardOptions {
  /** 0 = no minimum (always ok). */
  minFreeBytes: number;
  dir: string;
  /** Free bytes of dir's file system; default statfs. */
  freeDiskBytes?: (dir: string) => Promise<number>;
  logger: Logger;
  metrics: ExecutorMetrics;
}

async function statfsFree(dir: string): Promise<number> {
  const s = await statfs(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/** Returns the check the poller calls before each dequeue: true when there is room. */
export function createDiskGuard(opts: DiskGuardOptions): () => Promise<boolean> {
  const { logger, metrics } = opts;
  let diskWasLow = false;
  return async function diskOk(): Promise<boolean> {
    if (opts.minFreeBytes <= 0) return true;
    let free: number;
    try {
      free = await (opts.freeDiskBytes ?? statfsFree)(opts.dir);
    } catch (e) {
      logger.warn('could not read free disk space; dequeuing anyway', { dir: opts.dir, error: e });
      return true;
    }
    metrics.freeDiskBytes.set({}, free);
    const low = free < opts.minFreeBytes;
    metrics.diskLow.set({}, low ? 1 : 0);
    if (low && !diskWasLow) {
      logger.warn('not dequeuing: free disk space is below EXECUTOR_MIN_FREE_DISK', {
        dir: opts.dir,
        free: formatBytes(free),
        required: formatBytes(opts.minFreeBytes),
      });
    } else if (!low && diskWasLow) {
      logger.info('free disk space is back above EXECUTOR_MIN_FREE_DISK; dequeuing again', {
        free: formatBytes(free),
      });
    }
    diskWasLow = low;
    return !low;
  };
}
