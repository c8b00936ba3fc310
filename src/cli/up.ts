/**
 * `executor up`: a queue server on SQLite and an executor in one process, for a first run. It picks
 * Docker when a daemon answers (otherwise the shell runtime, with a loud warning that jobs are not
 * isolated), creates a demo repository, submits a demo job and shows its log live. Ctrl-C drains
 * (running jobs finish) and stops; a second Ctrl-C stops at once.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import type { RuntimeName } from '../config/executor.js';
import { createLogger, type LogLevel } from '../lib/logger.js';
import { createLogPrinter, outcomeExitCode } from './client-commands.js';
import { DEMO_REPO, demoJob, ensureDemoImage, ensureDemoRepo } from './demo.js';
import { paint } from './format.js';
import type { LocalCluster } from './local-cluster.js';

const run = promisify(execFile);

export interface Credentials {
  executorsAccessToken: string;
  apiToken: string;
}

/** Tokens are generated once and kept in `<data>/credentials.json` (mode 0600) across restarts. */
export function loadOrCreateCredentials(dataDir: string): Credentials {
  const file = join(dataDir, 'credentials.json');
  if (existsSync(file)) {
    const c = JSON.parse(readFileSync(file, 'utf8')) as Partial<Credentials>;
    if (c.executorsAccessToken && c.apiToken) return c as Credentials;
  }
  const newToken = () => randomBytes(20).toString('hex');
  const c = { executorsAccessToken: newToken(), apiToken: newToken() };
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, `${JSON.stringify(c, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return c;
}

export async function dockerAnswers(): Promise<boolean> {
  try {
    await run('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * How the user runs this CLI, for the commands `up` prints: `executor` when a program of that name is
 * on the shell's PATH (a global install or a linked package), else `npx executor` (a local install
 * or a clone).
 */
export function commandName(path = process.env.PATH ?? ''): string {
  for (const dir of path.split(delimiter)) {
    // npx and npm scripts put node_modules/.bin on PATH for this process only, not the user's shell.
    if (!dir || /node_modules[\\/]\.bin[\\/]?$/.test(dir)) continue;
    try {
      accessSync(join(dir, 'executor'), constants.X_OK);
      return 'executor';
    } catch {
      // not in this directory
    }
  }
  return 'npx executor';
}

const say = (s = '') => process.stdout.write(`${s}\n`);
const warn = (s: string) => process.stderr.write(`${paint(s, 'yellow', process.stderr)}\n`);

interface UpOptions {
  data: string;
  listen: string;
  runtime?: RuntimeName;
  demo: boolean;
  exitAfterDemo?: boolean;
  logLevel: LogLevel;
}

export async function up(opts: UpOptions): Promise<number> {
  const dataDir = resolve(opts.data);
  const creds = loadOrCreateCredentials(dataDir);
  let runtime = opts.runtime;
  let demoImage = 'unused-by-the-shell-runtime';
  if (!runtime) {
    runtime = (await dockerAnswers()) ? 'docker' : 'shell';
    if (runtime === 'shell') {
      warn('No Docker daemon answered, so jobs will run with the SHELL runtime: directly on this machine,');
      warn(
        'as this user, NOT ISOLATED. Fine for a first look; use --runtime docker or gvisor for real work.',
      );
    }
  } else if (runtime === 'shell') {
    warn('The shell runtime runs jobs directly on this machine, as this user, NOT ISOLATED.');
  }
  const executorEnv: Record<string, string> = {};
  if (runtime === 'docker' || runtime === 'gvisor') {
    const { hasNetAdmin } = await import('../executor/network/net-admin.js');
    if (!hasNetAdmin()) {
      executorEnv.EXECUTOR_JOB_NETWORK = 'bridge';
      warn("Not root and no CAP_NET_ADMIN, so job steps get Docker's plain BRIDGE network: NOT FIREWALLED,");
      warn(
        'they can reach private networks, this machine and cloud metadata. Fine for a first look; run as root (or `executor install`) for the isolated network.',
      );
    }
    const { diskQuotaProblem } = await import('../executor/workspace/disk-confinement.js');
    const disk = { text: '20G', bytes: 20 * 1024 ** 3 };
    if (await diskQuotaProblem({ runtime, jobDiskSpace: disk, workspaceRoot: tmpdir() })) {
      executorEnv.EXECUTOR_JOB_DISK_SPACE = '0';
      warn('Cannot loop-mount disk images here (needs root), so job workspaces have NO DISK QUOTA:');
      warn("a job can fill this machine's disk. Fine for a first look; run as root for the quota.");
    }
  }
  if (opts.demo && (runtime === 'docker' || runtime === 'gvisor')) {
    const img = await ensureDemoImage();
    if (!img.image) {
      warn(`The demo job cannot run in ${runtime}: ${img.reason}. Skipping the demo job.`);
      opts.demo = false;
    } else {
      demoImage = img.image;
      if (img.how !== 'present') say(paint(`demo image ${img.image}: ${img.how}`, 'gray'));
    }
  }

  const reposDir = join(dataDir, 'repos');
  if (opts.demo) await ensureDemoRepo(reposDir);

  const logger = createLogger({ level: opts.logLevel });
  let cluster: LocalCluster;
  try {
    // The server, the Store and the executor are imported when the command runs, not when the CLI
    // registers its commands.
    const { startLocalCluster } = await import('./local-cluster.js');
    cluster = await startLocalCluster({
      dataDir,
      reposDir,
      listen: opts.listen,
      runtime,
      executorEnv,
      logger,
      executorsAccessToken: creds.executorsAccessToken,
      apiToken: creds.apiToken,
    });
  } catch (e) {
    const msg =
      (e as NodeJS.ErrnoException).code === 'EADDRINUSE'
        ? `${opts.listen} is already in use; pass --listen HOST:PORT`
        : (e as Error).message;
    process.stderr.write(`error: ${msg}\n`);
    return 1;
  }

  const cmd = commandName();
  say(paint('executor is up', 'green'));
  say(`  server     ${cluster.url}  (dashboard at ${cluster.url}/, user API at ${cluster.url}/api/v1)`);
  say(`  API token  ${creds.apiToken}  (kept in ${join(opts.data, 'credentials.json')})`);
  const network =
    runtime === 'shell' ? '' : `, job network ${executorEnv.EXECUTOR_JOB_NETWORK ?? 'isolated'}`;
  const unconfined =
    runtime === 'shell'
      ? '  (not isolated)'
      : [
          executorEnv.EXECUTOR_JOB_NETWORK ? 'network not firewalled' : '',
          executorEnv.EXECUTOR_JOB_DISK_SPACE ? 'no disk quota' : '',
        ]
          .filter(Boolean)
          .map((w) => `  (${w})`)
          .join('');
  say(`  runtime    ${runtime}${network}${unconfined ? paint(unconfined, 'yellow') : ''}`);
  say(`  data       ${opts.data}  (SQLite database, repositories under repos/)`);
  say();
  say('Submit more work from another terminal:');
  say(`  export EXECUTOR_SERVER_URL=${cluster.url}`);
  say(`  export EXECUTOR_SERVER_API_TOKEN=${creds.apiToken}`);
  say(`  ${cmd} submit examples/steps-and-files.yaml --follow`);
  say(`  ${cmd} jobs`);
  say('Add executors elsewhere:');
  say(
    `  EXECUTOR_FRONTEND_URL=${cluster.url} EXECUTOR_FRONTEND_PASSWORD=${creds.executorsAccessToken} EXECUTOR_QUEUE_NAME=default ${cmd} run`,
  );
  say();

  let demoExit = 0;
  if (opts.demo) {
    const job = await cluster.api.submit(demoJob(demoImage));
    say(paint(`Demo job ${job.id}: clone ${DEMO_REPO}, two steps, one secret`, 'bold'));
    const printer = createLogPrinter();
    const final = await cluster.api.followLogs(job.id, (e) => {
      if (e.type === 'entry') printer.entry(e.entry);
      else if (e.type === 'output') printer.output(e.entryId, e.data);
      else printer.end(e.job);
    });
    demoExit = outcomeExitCode(final.state);
    say();
  }

  if (opts.exitAfterDemo) {
    await cluster.stop();
    return demoExit;
  }
  say(paint('Ready. Ctrl-C drains running jobs and stops.', 'gray'));
  await new Promise<void>((done) => {
    let signals = 0;
    const onSignal = () => {
      signals++;
      if (signals === 1) {
        say('\ndraining: running jobs finish, no new ones start (Ctrl-C again to stop now)');
        cluster.stop().then(done, done);
      } else {
        say('stopping now: running jobs are marked errored');
        cluster.stop({ force: true }).then(done, done);
        void cluster.executor?.forceStop();
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  say('stopped');
  return 0;
}

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('Start a server and an executor in one process, with a demo job (first run)')
    .option(
      '--data <dir>',
      'Where the SQLite database, repositories and credentials live (env EXECUTOR_SERVER_DATA)',
      process.env.EXECUTOR_SERVER_DATA || './.executor-data',
    )
    .option(
      '--listen <host:port>',
      'Address of the server (env EXECUTOR_SERVER_LISTEN)',
      process.env.EXECUTOR_SERVER_LISTEN || '127.0.0.1:3080',
    )
    .option(
      '--runtime <name>',
      'Runtime: docker, gvisor or shell (default: docker if a daemon answers, else shell)',
    )
    .option('--no-demo', 'Do not create the demo repository and job')
    .option('--exit-after-demo', 'Stop after the demo job and exit with its outcome (for scripts)')
    .option('--verbose', 'Show the server and executor logs')
    .action(
      async (o: {
        data: string;
        listen: string;
        runtime?: string;
        demo: boolean;
        exitAfterDemo?: boolean;
        verbose?: boolean;
      }) => {
        if (o.runtime && !['docker', 'gvisor', 'shell'].includes(o.runtime)) {
          process.stderr.write(`error: --runtime must be docker, gvisor or shell, not "${o.runtime}"\n`);
          process.exitCode = 2;
          return;
        }
        process.exitCode = await up({
          data: o.data,
          listen: o.listen,
          runtime: o.runtime as RuntimeName | undefined,
          demo: o.demo,
          exitAfterDemo: o.exitAfterDemo,
          logLevel: o.verbose ? 'info' : 'warn',
        });
        if (!o.exitAfterDemo) process.exit(process.exitCode);
      },
    );
}
