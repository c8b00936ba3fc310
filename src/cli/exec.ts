/**
 * `executor exec FILE`: runs one job on this machine with no server to set up. It starts a private,
 * throwaway server and executor in this process (the same handler and runtime code as production,
 * over loopback), serves the job's repository from a local path, streams the log, and exits with the
 * job's outcome: 0 completed, 1 otherwise.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import type { RuntimeName } from '../config/executor.js';
import { createLogger } from '../lib/logger.js';
import { ApiError } from './api-client.js';
import { createLogPrinter, outcomeExitCode } from './client-commands.js';
import { collect, JobFileError, readJobFile, SECRET_FLAG, SECRET_FLAG_HELP } from './job-file.js';

const run = promisify(execFile);

interface ExecOptions {
  repo?: string;
  runtime: RuntimeName;
  keepWorkspace?: boolean;
  verbose?: boolean;
  secret?: string[];
}

export async function execJob(file: string, opts: ExecOptions): Promise<number> {
  const spec = await readJobFile(file, { flags: opts.secret });
  const scratch = mkdtempSync(join(tmpdir(), 'executor-exec-'));
  try {
    const reposDir = join(scratch, 'repos');
    if (spec.repository) {
      const source = resolve(opts.repo ?? '.');
      const dest = join(reposDir, spec.repository.name);
      mkdirSync(dirname(dest), { recursive: true });
      try {
        // A bare clone of the committed state (hard links, so it is quick); the working tree's
        // uncommitted changes are not part of the job.
        await run('git', ['clone', '--bare', '--quiet', source, dest], { timeout: 300_000 });
      } catch (e) {
        throw new JobFileError(file, [
          {
            path: 'repository',
            message: `cannot use ${source} as ${spec.repository.name}: ${String((e as { stderr?: string }).stderr ?? e).trim()} (pass --repo PATH to a git repository)`,
          },
        ]);
      }
    }
    // Imported when the command runs, not when the CLI registers its commands.
    const { startLocalCluster } = await import('./local-cluster.js');
    const cluster = await startLocalCluster({
      dataDir: join(scratch, 'data'),
      reposDir,
      runtime: opts.runtime,
      queue: spec.queue,
      maxJobs: 1,
      logger: createLogger({ level: opts.verbose ? 'info' : 'warn' }),
      executorEnv: {
        EXECUTOR_WORKSPACE_ROOT: scratch,
        ...(opts.keepWorkspace ? { EXECUTOR_KEEP_WORKSPACES: 'true' } : {}),
      },
    });
    const controller = new AbortController();
    const onSigint = () => {
      process.stderr.write('\ncanceling the job...\n');
      void cluster.api.cancel(job.id).catch(() => undefined);
    };
    const job = await cluster.api.submit(spec);
    process.once('SIGINT', onSigint);
    let finished = false;
    try {
      const printer = createLogPrinter();
      const final = await cluster.api.followLogs(
        job.id,
        (e) => {
          if (e.type === 'entry') printer.entry(e.entry);
          else if (e.type === 'output') printer.output(e.entryId, e.data);
          else printer.end(e.job);
        },
        controller.signal,
      );
      finished = true;
      return outcomeExitCode(final.state);
    } finally {
      process.removeListener('SIGINT', onSigint);
      await cluster.stop({ force: !finished });
    }
  } finally {
    if (!opts.keepWorkspace) rmSync(scratch, { recursive: true, force: true });
    else process.stderr.write(`workspace kept under ${scratch}\n`);
  }
}

export function registerExecCommand(program: Command): void {
  program
    .command('exec <file>')
    .description('Run a job file on this machine, no server needed; exit with its outcome')
    .option('--repo <path>', "Local git repository to serve as the job's repository (default: .)")
    .option('--runtime <name>', 'Runtime: docker, gvisor or shell', 'docker')
    .option('--keep-workspace', 'Keep the workspace and scratch directory for inspection')
    .option('--verbose', 'Show the server and executor logs')
    .option(SECRET_FLAG, SECRET_FLAG_HELP, collect, [])
    .action(
      async (
        file: string,
        o: { repo?: string; runtime: string; keepWorkspace?: boolean; verbose?: boolean; secret: string[] },
      ) => {
        if (!['docker', 'gvisor', 'shell'].includes(o.runtime)) {
          process.stderr.write(`error: --runtime must be docker, gvisor or shell, not "${o.runtime}"\n`);
          process.exitCode = 2;
          return;
        }
        try {
          process.exitCode = await execJob(file, { ...o, runtime: o.runtime as RuntimeName });
        } catch (e) {
          if (e instanceof JobFileError) {
            process.stderr.write(`error: ${e.message}\n`);
            process.exitCode = 2;
          } else if (e instanceof ApiError) {
            process.stderr.write(`error: ${e.message}\n`);
            for (const d of e.details) process.stderr.write(`  ${d.path}: ${d.message}\n`);
            process.exitCode = 2;
          } else {
            process.stderr.write(`error: ${(e as Error).message}\n`);
            process.exitCode = 1;
          }
        }
      },
    );
}
