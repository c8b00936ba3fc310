/**
 * An executor process for the chaos scenarios: the real startExecutor, configured from the
 * environment exactly as `executor run` is, plus the test knobs `CHAOS_HEARTBEAT_MS` and
 * `CHAOS_LOG_SYNC_MS` (the product fixes the heartbeat at 5 s; a shorter one keeps the stall
 * window, and so every scenario, short). Signals as `executor run`: first SIGTERM drains, second
 * aborts. Prints `chaos-executor ready` once started.
 */
import { loadExecutorConfig } from '../../src/config/executor.js';
import { startExecutor } from '../../src/executor/index.js';
import { createLogger } from '../../src/lib/logger.js';

const logger = createLogger({ level: 'debug', format: 'json' });
const loaded = loadExecutorConfig(process.env);
if (!loaded.ok) {
  process.stderr.write(`invalid configuration:\n${loaded.problems.join('\n')}\n`);
  process.exit(2);
}
const num = (v: string | undefined) => (v ? Number(v) : undefined);
const ex = await startExecutor(loaded.config, {
  logger,
  worker: {
    heartbeatIntervalMs: num(process.env.CHAOS_HEARTBEAT_MS),
    logSyncIntervalMs: num(process.env.CHAOS_LOG_SYNC_MS),
  },
});
process.stdout.write('chaos-executor ready\n');
let signals = 0;
const onSignal = () => {
  signals++;
  if (signals === 1) void ex.drain();
  else void ex.forceStop();
};
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);
await ex.done;
process.exit(0);
