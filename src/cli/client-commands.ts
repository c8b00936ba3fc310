/**
 * Client commands against a running server: submit, jobs, show, logs, cancel, retry (executors
 * and queues: fleet-commands.ts). Human output by default (tables, colour on a TTY), `--json` for scripts.
 * `submit --follow` and `logs -f` exit with the job's outcome: 0 completed, 1 otherwise; Ctrl-C stops
 * following without cancelling the job.
 */
import type { Command } from 'commander';
import { JOB_STATES, type JobEventView } from '../protocol/user-api.js';
import { type ApiClient, ApiError, type ApiJob, type ApiLogEntry, createApiClient } from './api-client.js';
import { ago, humanDuration, paint, stateText, table, toMs } from './format.js';
import { collect, JobFileError, readJobFile, SECRET_FLAG, SECRET_FLAG_HELP } from './job-file.js';

export interface GlobalOpts {
  server?: string;
  token?: string;
  json?: boolean;
}

export const TERMINAL = new Set(['completed', 'failed', 'canceled']);

/** Exit code for a job's final state. */
export function outcomeExitCode(state: string): number {
  return state === 'completed' ? 0 : 1;
}

/** Checks a server URL: http or https with a host, so that a typo is not reported as "not running". */
export function checkServerUrl(server: string, from: string): string {
  let url: URL | undefined;
  try {
    url = new URL(server);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
    throw new UsageError(
      `${from} "${server}" is not a server URL: it needs http:// or https://, for example http://${server.replace(/^[a-z]+:\/\//i, '') || '127.0.0.1:3080'}`,
    );
  }
  return server;
}

export function clientFrom(opts: GlobalOpts): ApiClient {
  const server = checkServerUrl(
    opts.server ?? process.env.EXECUTOR_SERVER_URL ?? 'http://127.0.0.1:3080',
    opts.server ? '--server' : process.env.EXECUTOR_SERVER_URL ? 'EXECUTOR_SERVER_URL' : 'the server URL',
  );
  const token = opts.token ?? process.env.EXECUTOR_SERVER_API_TOKEN;
  if (!token) {
    throw new UsageError(
      'no API token: pass --token or set EXECUTOR_SERVER_API_TOKEN (printed by `executor up`)',
    );
  }
  return createApiClient({ server, token });
}

export class UsageError extends Error {}

function parseId(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`"${text}" is not a job id (a positive integer)`);
  return n;
}

export const out = (s: string) => process.stdout.write(`${s}\n`);

export function str(v: unknown): string {
  return v === null || v === undefined || v === '' ? '-' : String(v);
}

function repoOf(job: ApiJob): string {
  if (job.repositoryName) return `${job.repositoryName}@${String(job.commit ?? '').slice(0, 10)}`;
  return '-';
}

function jobDurationMs(job: ApiJob, now = Date.now()): number | null {
  const start = toMs(job.startedAt as string);
  if (start === null) return null;
  return (toMs(job.finishedAt as string) ?? now) - start;
}

export function renderJobs(jobs: ApiJob[]): string {
  return table(
    ['ID', 'STATE', 'QUEUE', 'REPOSITORY', 'EXECUTOR', 'ATTEMPT', 'AGE', 'DURATION'],
    jobs.map((j) => [
      String(j.id),
      stateText(j.state),
      j.queue,
      repoOf(j),
      str(j.executor),
      String(j.attempts ?? 0),
      ago(j.createdAt as string),
      humanDuration(jobDurationMs(j)),
    ]),
  );
}

export function renderJob(job: ApiJob): string {
  const lines = [
    `${paint(`Job ${job.id}`, 'bold')}  ${stateText(job.state)}`,
    `  queue       ${job.queue}`,
    `  repository  ${repoOf(job)}`,
    `  attempts    ${str(job.attempts)} of ${str(job.maxAttempts)}${job.numResets ? ` (${job.numResets} resets)` : ''}`,
    `  priority    ${str(job.priority)}`,
    `  executor    ${str(job.executor)}`,
    `  created     ${ago(job.createdAt as string)}`,
    `  duration    ${humanDuration(jobDurationMs(job))}`,
  ];
  const secrets = (job.spec as { secrets?: string[] } | undefined)?.secrets;
  if (secrets?.length) lines.push(`  secrets     ${secrets.join(', ')}`);
  if (job.failureMessage) lines.push(`  failure     ${paint(String(job.failureMessage), 'red')}`);
  const events = job.events as JobEventView[] | undefined;
  if (events?.length) {
    lines.push('', paint('History', 'bold'));
    for (const e of events) lines.push(`  ${e.at}  ${e.action.padEnd(9)}  by ${e.actor}`);
  }
  const entries = (job.logEntries ?? job.entries) as ApiLogEntry[] | undefined;
  if (entries?.length) {
    lines.push('', paint('Steps', 'bold'));
    for (const e of entries) {
      const mark =
        e.exitCode === null || e.exitCode === undefined
          ? paint('…', 'cyan')
          : e.exitCode === 0
            ? paint('✓', 'green')
            : paint('✗', 'red');
      lines.push(
        `  ${mark} ${e.key.padEnd(32)} ${humanDuration(e.durationMs).padStart(8)}${
          e.exitCode !== null && e.exitCode !== undefined ? `  exit ${e.exitCode}` : ''
        }`,
      );
    }
  }
  return lines.join('\n');
}

/**
 * Prints log events as they arrive: a header per entry, then its output, then its result. The result
 * line waits until the entry's output has been printed (output may arrive after the entry closed).
 */
export function createLogPrinter(write: (s: string) => void = (s) => process.stdout.write(s)) {
  const keys = new Map<number, string>();
  const results = new Map<number, ApiLogEntry>();
  const printed = new Set<number>();
  let current = -1;
  let atLineStart = true;
  const newline = () => {
    if (!atLineStart) write('\n');
    atLineStart = true;
  };
  const printResult = (id: number) => {
    const e = results.get(id);
    if (!e || printed.has(id)) return;
    printed.add(id);
    newline();
    const res = e.exitCode === 0 ? paint('ok', 'green') : paint(`exit code ${e.exitCode}`, 'red');
    write(`${paint(`<== ${e.key}: `, 'gray')}${res}${paint(` in ${humanDuration(e.durationMs)}`, 'gray')}\n`);
  };
  const header = (id: number) => {
    if (current === id) return;
    if (current >= 0) printResult(current);
    newline();
    current = id;
    write(`${paint(`==> ${keys.get(id) ?? `entry ${id}`}`, 'blue')}\n`);
  };
  return {
    entry(e: ApiLogEntry) {
      const known = keys.has(e.entryId);
      keys.set(e.entryId, e.key);
      if (!known) header(e.entryId);
      if (e.exitCode !== null && e.exitCode !== undefined) {
        results.set(e.entryId, e);
        if (current !== e.entryId) printResult(e.entryId);
      }
    },
    output(entryId: number, data: string) {
      if (!data) return;
      header(entryId);
      write(data);
      atLineStart = data.endsWith('\n');
    },
    /** Prints the results still waiting (for a finished log printed at once). */
    flush() {
      for (const id of results.keys()) printResult(id);
    },
    end(job: ApiJob) {
      for (const id of results.keys()) printResult(id);
      newline();
      const msg = job.failureMessage ? `: ${job.failureMessage}` : '';
      write(`${paint(`Job ${job.id} ${job.state}`, job.state === 'completed' ? 'green' : 'red')}${msg}\n`);
    },
  };
}

/**
 * A live progress line under the log on a terminal: which step is running and for how long. It is
 * erased before each write and drawn again after it, so it never mixes with the log text.
 */
export function createProgressLine(stream: NodeJS.WriteStream, now: () => number = Date.now) {
  let shown = false;
  let atLineStart = true;
  let running: { key: string; startMs: number } | null = null;
  const clear = () => {
    if (shown) stream.write('\r\x1b[K');
    shown = false;
  };
  const draw = () => {
    if (!running || !atLineStart) return;
    stream.write(
      paint(`… ${running.key} running for ${humanDuration(now() - running.startMs)}`, 'cyan', stream),
    );
    shown = true;
  };
  const timer = setInterval(() => {
    clear();
    draw();
  }, 250);
  timer.unref();
  return {
    write(text: string) {
      clear();
      stream.write(text);
      if (text) atLineStart = text.endsWith('\n');
      draw();
    },
    entry(e: ApiLogEntry) {
      if (e.exitCode === null || e.exitCode === undefined) {
        running = { key: e.key, startMs: toMs(e.startTime) ?? now() };
      } else if (running?.key === e.key) {
        running = null;
      }
    },
    stop() {
      clearInterval(timer);
      clear();
    },
  };
}

/** Follows a job's logs to the end; returns the exit code for its outcome. */
export async function followJob(client: ApiClient, id: number, json: boolean): Promise<number> {
  const controller = new AbortController();
  const onSigint = () => {
    process.stderr.write(
      `\nstopped following job ${id}; it keeps running (executor cancel ${id} to stop it)\n`,
    );
    controller.abort();
  };
  process.once('SIGINT', onSigint);
  const progress = !json && process.stdout.isTTY ? createProgressLine(process.stdout) : undefined;
  const printer = createLogPrinter(progress ? (text) => progress.write(text) : undefined);
  try {
    const final = await client.followLogs(
      id,
      (e) => {
        if (json) {
          out(JSON.stringify(e));
          return;
        }
        if (e.type === 'entry') {
          progress?.entry(e.entry);
          printer.entry(e.entry);
        } else if (e.type === 'output') printer.output(e.entryId, e.data);
        else printer.end(e.job);
      },
      controller.signal,
    );
    return outcomeExitCode(final.state);
  } catch (e) {
    if (controller.signal.aborted) return 130;
    throw e;
  } finally {
    progress?.stop();
    process.removeListener('SIGINT', onSigint);
  }
}

/**
 * Runs a command's action: its exit code, or a clear message for usage errors (2), API errors (1)
 * and an unreachable server (3). `notFound` is the hint after a 404.
 */
export async function runAction(
  fn: () => Promise<number | undefined>,
  notFound = '; list jobs with `executor jobs`',
): Promise<void> {
  try {
    const code = await fn();
    process.exitCode = code ?? 0;
  } catch (e) {
    if (e instanceof JobFileError || e instanceof UsageError) {
      process.stderr.write(`error: ${e.message}\n`);
      process.exitCode = 2;
    } else if (e instanceof ApiError) {
      const hint =
        e.status === 401
          ? '; check --token or EXECUTOR_SERVER_API_TOKEN: it must be a token this server issued (`executor up` prints one, `executor tokens create` makes more) and --server or EXECUTOR_SERVER_URL must name that server'
          : e.status === 404
            ? notFound
            : e.status === 403
              ? '; use a token with that scope (see `executor tokens list`)'
              : '';
      process.stderr.write(
        `error: ${e.message}${e.code.startsWith('HTTP_') || e.code === 'UNREACHABLE' ? '' : ` (${e.code})`}${hint}\n`,
      );
      for (const d of e.details) process.stderr.write(`  ${d.path}: ${d.message}\n`);
      process.exitCode = e.status === 0 ? 3 : 1;
    } else {
      throw e;
    }
  }
}

/** The options every client command takes. */
export function withGlobal(cmd: Command): Command {
  return cmd
    .option(
      '--server <url>',
      'Server URL, with http:// or https:// (env EXECUTOR_SERVER_URL, default http://127.0.0.1:3080)',
    )
    .option('--token <token>', 'User API token (env EXECUTOR_SERVER_API_TOKEN)')
    .option('--json', 'Print JSON for scripts');
}

/** `executor submit FILE [--follow] [--secret ...]`. */
function registerSubmitCommand(program: Command): void {
  withGlobal(program.command('submit <file>').description('Submit a job file (YAML or JSON; - for stdin)'))
    .option('-f, --follow', "Follow the job's log until it ends; exit with its outcome")
    .option(SECRET_FLAG, SECRET_FLAG_HELP, collect, [])
    .addHelpText(
      'after',
      '\nThe job file, its fields, secrets and limits: docs/job-file.md (shipped with the package).\nIts JSON Schema, for editors: executor schema job',
    )
    .action((file: string, opts: GlobalOpts & { follow?: boolean; secret: string[] }) =>
      runAction(async () => {
        const spec = await readJobFile(file, { flags: opts.secret });
        const client = clientFrom(opts);
        const job = await client.submit(spec);
        if (opts.json && !opts.follow) out(JSON.stringify(job));
        else process.stderr.write(`submitted job ${job.id} to queue ${job.queue}\n`);
        return opts.follow ? followJob(client, job.id, !!opts.json) : 0;
      }),
    );
}

export function registerClientCommands(program: Command): void {
  registerSubmitCommand(program);

  withGlobal(program.command('jobs').description('List jobs, newest first'))
    .option(
      '--state <state>',
      'Only jobs in this state: queued, processing, completed, errored, failed or canceled',
    )
    .option('--queue <queue>', 'Only this queue')
    .option('--limit <n>', 'Page size', '20')
    .option('--before <id>', 'Jobs with an id below this (the next page)')
    .action((opts: GlobalOpts & { state?: string; queue?: string; limit: string; before?: string }) =>
      runAction(async () => {
        if (opts.state !== undefined && !(JOB_STATES as readonly string[]).includes(opts.state)) {
          throw new UsageError(`--state must be one of ${JOB_STATES.join(', ')}, not "${opts.state}"`);
        }
        const page = await clientFrom(opts).listJobs({
          state: opts.state,
          queue: opts.queue,
          limit: Number(opts.limit),
          before: opts.before ? parseId(opts.before) : undefined,
        });
        if (opts.json) out(JSON.stringify(page));
        else {
          out(page.jobs.length ? renderJobs(page.jobs) : 'no jobs');
          if (page.nextBefore)
            out(paint(`${page.total} in all; next page: --before ${page.nextBefore}`, 'gray'));
        }
        return 0;
      }),
    );

  withGlobal(
    program.command('show <id>').description('Show a job: state, attempts, history, steps and durations'),
  ).action((id: string, opts: GlobalOpts) =>
    runAction(async () => {
      const job = await clientFrom(opts).getJob(parseId(id));
      out(opts.json ? JSON.stringify(job) : renderJob(job));
      return 0;
    }),
  );

  withGlobal(program.command('logs <id>').description("Print a job's log"))
    .option('-f, --follow', 'Follow until the job ends; exit with its outcome')
    .action((id: string, opts: GlobalOpts & { follow?: boolean }) =>
      runAction(async () => {
        const client = clientFrom(opts);
        const jobId = parseId(id);
        if (opts.follow) return followJob(client, jobId, !!opts.json);
        const logs = await client.getLogs(jobId);
        const entries = Array.isArray(logs) ? logs : logs.entries;
        if (opts.json) {
          out(JSON.stringify(logs));
          return 0;
        }
        const printer = createLogPrinter();
        for (const e of entries) {
          printer.entry(e);
          printer.output(e.entryId, e.out ?? '');
        }
        printer.flush();
        return 0;
      }),
    );

  for (const [name, verb] of [
    ['cancel', 'Cancel a queued or running job'],
    ['retry', 'Queue a failed, errored or canceled job again'],
  ] as const) {
    withGlobal(program.command(`${name} <id>`).description(verb)).action((id: string, opts: GlobalOpts) =>
      runAction(async () => {
        const client = clientFrom(opts);
        const job = name === 'cancel' ? await client.cancel(parseId(id)) : await client.retry(parseId(id));
        out(
          opts.json
            ? JSON.stringify(job)
            : `job ${job.id}: ${stateText(job.state)}${job.cancelRequested ? ' (cancel requested)' : ''}`,
        );
        return 0;
      }),
    );
  }
}
