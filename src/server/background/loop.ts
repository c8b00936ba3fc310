/**
 * One background loop: runs `runOnce(now)` every `intervalMs` (never overlapping itself), logs each
 * failure with the time since the last success, and stops cleanly (waiting for a running pass).
 * Times passed to runOnce come from the injected clock; tests call runOnce directly on fake time.
 */
import type { Clock } from '../../lib/clock.js';
import type { Logger } from '../../lib/logger.js';

export interface BackgroundLoop<R = unknown> {
  readonly name: string;
  start(): void;
  stop(): Promise<void>;
  runOnce(now: number): Promise<R>;
}

export function createLoop<R>(opts: {
  name: string;
  intervalMs: number;
  clock: Clock;
  logger: Logger;
  runOnce: (now: number) => Promise<R>;
  /** Fields worth logging at info level (e.g. when something was reset); undefined = stay quiet. */
  describe?: (result: R) => Record<string, unknown> | undefined;
}): BackgroundLoop<R> {
  const log = opts.logger.child({ loop: opts.name });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let lastSuccess = opts.clock.now();
  const tick = () => {
    if (running) return;
    running = (async () => {
      const now = opts.clock.now();
      try {
        const result = await opts.runOnce(now);
        const fields = opts.describe?.(result);
        if (fields) log.info(`${opts.name} acted`, { ...fields, sinceLastSuccessMs: now - lastSuccess });
        else log.debug(`${opts.name} ran`, { sinceLastSuccessMs: now - lastSuccess });
        lastSuccess = now;
      } catch (e) {
        log.error(`${opts.name} failed`, { error: e, sinceLastSuccessMs: now - lastSuccess });
      }
    })().finally(() => {
      running = undefined;
    });
  };
  return {
    name: opts.name,
    start() {
      if (timer) return;
      lastSuccess = opts.clock.now();
      timer = setInterval(tick, opts.intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await running;
    },
    runOnce: opts.runOnce,
  };
}
