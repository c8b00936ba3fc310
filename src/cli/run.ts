/**
 * `executor run`: loads the executor configuration from the environment, starts the executor and
 * wires signals. First SIGTERM/SIGINT: drain (no new jobs, heartbeats go on, running jobs finish,
 * exit 0). Second: abort running jobs (marked errored "executor shutting down") and exit 1.
 */
import type { Command } from 'commander';
import { loadExecutorConfig, renderExecutorEnvHelp } from '../config/executor.js';
import type { startExecutor } from '../executor/index.js';
import { errorMessage } from '../lib/errors.js';
import { createLogger } from '../lib/logger.js';

// The executor and the validation checks are imported when the command runs, not when the CLI
// registers its commands: every command's definition is loaded, only one command's work is.
export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('Run the executor: take jobs from the queue server and run them in sandboxes')
    .option('--verify', 'Run the `executor validate` checks first and stop if any fails')
    .addHelpText(
      'after',
      `\nConfigured through the environment:\n${renderExecutorEnvHelp()}\n\nSee docs/configuration.md for what each one means.`,
    )
    .action(async (opts: { verify?: boolean }) => {
      const logger = createLogger();
      const loaded = loadExecutorConfig(process.env);
      if (!loaded.ok) {
        process.stderr.write(
          `invalid configuration:\n${loaded.problems.map((p) => `  - ${p}`).join('\n')}\n`,
        );
        process.exitCode = 2;
        return;
      }
      const config = loaded.config;
      if (opts.verify) {
        const { runValidation } = await import('./validate.js');
        const ok = await runValidation(process.env, (line) => process.stdout.write(`${line}\n`));
        if (!ok) {
          process.exitCode = 1;
          return;
        }
      }
      let ex: Awaited<ReturnType<typeof startExecutor>>;
      try {
        const { startExecutor } = await import('../executor/index.js');
        ex = await startExecutor(config, { logger });
      } catch (e) {
        logger.error('executor could not start', { error: errorMessage(e) });
        process.exitCode = 1;
        return;
      }
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        signals++;
        if (signals === 1) {
          logger.info(`${sig}: draining; send it again to stop now`);
          void ex.drain();
        } else {
          logger.warn(`${sig} again: aborting running jobs`);
          process.exitCode = 1;
          void ex.forceStop();
        }
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      await ex.done;
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    });
}
