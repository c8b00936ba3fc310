/**
 * clone.cold / clone.warm / submit.unmirrored: repositories from code hosts and the clone cache.
 *
 * - A generated repository of realistic size (BENCH_CLONE_SCALE=1: 20,000 files over 2,000 commits,
 *   about 100 MiB packed; a smaller scale for a quick look) is served by a real queue server.
 * - clone.cold: a job's workspace setup (prepareLocalWorkspace: cache update, clone, checkout) with
 *   an empty clone cache, against the same setup without a cache (the cache's cost on a first job).
 * - clone.warm: the setup of a later job, after one new commit, with the warm cache, against
 *   clone.cold's figure: target warm <= 0.2x cold.
 * - submit.unmirrored: `POST /api/v1/jobs` at a commit the server's mirror does not have yet (the
 *   server fetches it from a code host on loopback, git http-backend behind basic auth), against
 *   `git fetch` of the same commit by hand into an identical copy of the mirror: target <= 1.2x.
 * Each figure is the median of alternating runs.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { createApiClient } from '../src/cli/api-client.js';
import { createJobLogger } from '../src/executor/logs/job-logger.js';
import { createRedactor } from '../src/executor/logs/redactor.js';
import { createGitCache, type GitCache } from '../src/executor/workspace/git-cache.js';
import { prepareLocalWorkspace } from '../src/executor/workspace/prepare.js';
import { createMemoryLogger } from '../src/lib/logger.js';
import { decodeJob, type Job } from '../src/protocol/job.js';
import { createFakeLogSink } from '../test/executor/logs/fake-log-sink.js';
import { startCodeHost } from '../test/helpers/code-host.js';
import { startBenchServer } from './cluster.js';
import { type Bench, median, result, tempDir } from './lib.js';

const RUNS = 3;
const pexecFile = promisify(execFile);
const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'b',
  GIT_AUTHOR_EMAIL: 'b@example.com',
  GIT_COMMITTER_NAME: 'b',
  GIT_COMMITTER_EMAIL: 'b@example.com',
  GIT_CONFIG_NOSYSTEM: '1',
};
const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-C', cwd, ...args], { env: GIT_ENV, encoding: 'utf8', maxBuffer: 64 << 20 }).trim();

/**
 * A bare repository of `commits` commits adding `filesPerCommit` files each (half random bytes,
 * half text that compresses), written with git fast-import.
 */
async function generate(
  bare: string,
  commits: number,
  filesPerCommit: number,
  fileBytes: number,
): Promise<void> {
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', bare]);
  const child = spawn('git', ['-C', bare, 'fast-import', '--quiet'], {
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  const done = new Promise<void>((resolve, reject) =>
    child.on('exit', (c) => (c === 0 ? resolve() : reject(new Error(`fast-import exited ${c}`)))),
  );
  const write = (chunk: string | Buffer) =>
    child.stdin.write(chunk) ? Promise.resolve() : new Promise<void>((r) => child.stdin.once('drain', r));
  let n = 0;
  for (let c = 0; c < commits; c++) {
    const msg = `commit ${c}\n`;
    await write(
      `commit refs/heads/main\ncommitter b <b@example.com> ${1_700_000_000 + c} +0000\ndata ${Buffer.byteLength(msg)}\n${msg}`,
    );
    for (let f = 0; f < filesPerCommit; f++, n++) {
      const half = Math.floor(fileBytes / 2);
      const body = Buffer.concat([
        randomBytes(half),
        Buffer.from(`line ${n} of a generated file\n`.repeat(Math.ceil((fileBytes - half) / 30))).subarray(
          0,
          fileBytes - half,
        ),
      ]);
      await write(`M 644 inline dir${n % 200}/file${n}.txt\ndata ${body.length}\n`);
      await write(body);
      await write('\n');
    }
    await write('\n');
  }
  child.stdin.end();
  await done;
  git(bare, 'repack', '-a', '-d', '-q');
}

/** Adds one commit of `files` files to a bare repository (through a temporary clone). */
function pushCommit(bare: string, files: number, work: string): string {
  rmSync(work, { recursive: true, force: true });
  execFileSync('git', ['clone', '-q', '--depth=1', `file://${bare}`, work], { env: GIT_ENV });
  for (let i = 0; i < files; i++) {
    execFileSync('sh', ['-c', `head -c 8192 /dev/urandom > "${work}/new-${Date.now()}-${i}.bin"`]);
  }
  git(work, 'add', '.');
  git(work, 'commit', '-qm', 'new commit');
  git(work, 'push', '-q', 'origin', 'HEAD:refs/heads/main');
  return git(work, 'rev-parse', 'HEAD');
}

function jobContext() {
  const sink = createFakeLogSink();
  const logger = createJobLogger({
    sink,
    redactor: createRedactor({}),
    maxOutputBytes: 1 << 20,
    syncIntervalMs: 1000,
    logger: createMemoryLogger(),
  });
  const ctx = { signal: new AbortController().signal, logger, executorName: 'bench-executor' };
  /** The duration of each log entry of the setup, by key (`setup.git.fetch` -> ms). */
  const phases = async (): Promise<Record<string, number>> => {
    await logger.flush();
    const out: Record<string, number> = {};
    for (const e of sink.stored.values()) if (e.key.startsWith('setup.')) out[e.key] = e.durationMs ?? 0;
    return out;
  };
  return { ctx, phases };
}

/** `fetch 120, checkout 900, other 80` from the phases of one setup lasting `ms`. */
function describePhases(ms: number, phases: Record<string, number>): string {
  const parts = Object.entries(phases)
    .filter(([key]) => key.startsWith('setup.git.'))
    .map(([key, d]) => [key.slice('setup.git.'.length), d] as const);
  const other = ms - parts.reduce((s, [, d]) => s + d, 0);
  return [...parts, ['other', other] as const].map(([k, d]) => `${k} ${Math.round(d)}`).join(', ');
}

export const clone: Bench = async (ctx) => {
  const scale = Number(process.env.BENCH_CLONE_SCALE ?? '1');
  const commits = Math.max(10, Math.round(2000 * scale));
  const server = await startBenchServer({ logger: ctx.logger });
  const tmp = tempDir('clone');
  try {
    const bare = path.join(server.config.reposDir, 'bench', 'big.git');
    ctx.say(`generating ${commits} commits x 10 files (scale ${scale})`);
    await generate(bare, commits, 10, 10_000);
    const api = createApiClient({ server: server.url, token: server.apiToken });
    const exec = (p: string, body: unknown) =>
      fetch(`${server.url}/.executors/queue/bench${p}`, {
        method: 'POST',
        headers: {
          authorization: `token-executor ${server.executorsToken}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify(body),
      });
    await exec('/heartbeat', { executorName: 'bench-executor', executorVersion: '0.1.0', jobIds: [] });
    /** A dequeued job of the repository at `commit`, with its token. */
    const nextJob = async (commit: string): Promise<Job> => {
      await api.submit({
        queue: 'bench',
        repository: { name: 'bench/big', commit },
        steps: [{ image: 'alpine', run: 'true' }],
      });
      const res = await exec('/dequeue', { executorName: 'bench-executor', version: '0.1.0' });
      if (res.status !== 200) throw new Error(`dequeue: ${res.status}`);
      return decodeJob(await res.json());
    };
    /** The executor's defaults: 20G, one prepared checkout per repository. */
    const newCache = (cacheDir: string, checkouts = 1) =>
      createGitCache({ dir: cacheDir, maxBytes: 20 * 1024 ** 3, frontendUrl: server.url, checkouts });
    const setup = async (job: Job, cache: GitCache | undefined): Promise<{ ms: number; phases: string }> => {
      const { ctx: jobCtx, phases } = jobContext();
      const t = performance.now();
      const ws = await prepareLocalWorkspace(job, jobCtx, {
        root: path.join(tmp.path, 'workspaces'),
        keepWorkspaces: false,
        frontendUrl: server.url,
        frontendPassword: server.executorsToken,
        executorName: 'bench-executor',
        files: { get: async () => Buffer.alloc(0) },
        gitCache: cache,
      });
      const ms = performance.now() - t;
      await ws.remove();
      return { ms, phases: describePhases(ms, await phases()) };
    };

    const plain: number[] = [];
    const cold: number[] = [];
    const warm: number[] = [];
    const warmPhases: string[] = [];
    const preparing: number[] = [];
    const unprepared: number[] = [];
    const unpreparedPhases: string[] = [];
    for (let i = 0; i < RUNS; i++) {
      const head = git(bare, 'rev-parse', 'main');
      const p = await setup(await nextJob(head), undefined);
      const cacheDir = path.join(tmp.path, `cache-${i}`);
      const cache = newCache(cacheDir);
      const c = await setup(await nextJob(head), cache);
      // The checkout the cache prepares after a full clone, in the background: done before the
      // next job here (its time is reported; jobs arriving sooner clone as clone.warm.unprepared).
      const t = performance.now();
      await cache.idle();
      preparing.push(performance.now() - t);
      const next = pushCommit(bare, 1, path.join(tmp.path, 'work'));
      const w = await setup(await nextJob(next), cache);
      await cache.idle();
      // The same later job without a prepared checkout: a copy of the cache's packs and a full checkout.
      const after = pushCommit(bare, 1, path.join(tmp.path, 'work'));
      const u = await setup(await nextJob(after), newCache(cacheDir, 0));
      rmSync(cacheDir, { recursive: true, force: true });
      plain.push(p.ms);
      cold.push(c.ms);
      warm.push(w.ms);
      warmPhases.push(w.phases);
      unprepared.push(u.ms);
      unpreparedPhases.push(u.phases);
      ctx.say(`run ${i + 1}: plain ${p.ms.toFixed(0)} ms (${p.phases})`);
      ctx.say(
        `run ${i + 1}: cold ${c.ms.toFixed(0)} ms (${c.phases}); checkout prepared ${preparing[i]!.toFixed(0)} ms after it`,
      );
      ctx.say(`run ${i + 1}: warm ${w.ms.toFixed(0)} ms (${w.phases})`);
      ctx.say(`run ${i + 1}: warm without a prepared checkout ${u.ms.toFixed(0)} ms (${u.phases})`);
    }
    const packed = execFileSync('du', ['-sk', path.join(bare, 'objects')], { encoding: 'utf8' }).split(
      '\t',
    )[0];
    const note = `${commits} commits, ${commits * 10} files, ${Math.round(Number(packed) / 1024)} MiB packed; medians of ${RUNS}`;

    // submit.unmirrored: the server fetches a new commit from a code host at submit.
    const host = await startCodeHost({ username: 'bench', password: 'bench-code-host-password' });
    const submit: number[] = [];
    const byHand: number[] = [];
    const serverFetch: number[] = [];
    try {
      const hostBare = path.join(host.root, 'bench/big.git');
      cpSync(bare, hostBare, { recursive: true });
      process.env.BENCH_CODE_HOST_PASSWORD = 'bench-code-host-password';
      await api.addRepository({
        name: 'bench/mirrored',
        url: `${host.url}/bench/big.git`,
        credential: { username: 'bench', passwordEnv: 'BENCH_CODE_HOST_PASSWORD' },
      });
      const mirror = path.join(server.config.reposDir, 'bench/mirrored.git');
      for (let i = 0; i < RUNS; i++) {
        const sha = pushCommit(hostBare, 5, path.join(tmp.path, 'work'));
        const copy = path.join(tmp.path, `mirror-copy-${i}.git`);
        cpSync(mirror, copy, { recursive: true });
        const header = `Authorization: Basic ${Buffer.from('bench:bench-code-host-password').toString('base64')}`;
        let t = performance.now();
        // Not execFileSync: the code host answers from this process's event loop.
        await pexecFile(
          'git',
          [
            '--git-dir',
            copy,
            '-c',
            `http.extraHeader=${header}`,
            'fetch',
            '--quiet',
            `${host.url}/bench/big.git`,
            '+refs/heads/*:refs/heads/*',
            '+refs/tags/*:refs/tags/*',
          ],
          { env: GIT_ENV },
        );
        byHand.push(performance.now() - t);
        t = performance.now();
        await api.submit({
          queue: 'bench-submit',
          repository: { name: 'bench/mirrored', commit: sha },
          steps: [{ image: 'alpine', run: 'true' }],
        });
        submit.push(performance.now() - t);
        rmSync(copy, { recursive: true, force: true });
        const { lastSyncDurationMs } = await api.getRepository('bench/mirrored');
        serverFetch.push(lastSyncDurationMs ?? Number.NaN);
        ctx.say(
          `submit run ${i + 1}: submit ${submit[i]!.toFixed(0)} ms (the server's fetch ${lastSyncDurationMs} ms), git fetch ${byHand[i]!.toFixed(0)} ms`,
        );
      }
    } finally {
      await host.close();
    }

    return [
      result({
        name: 'clone.cold',
        ours: median(cold),
        baseline: median(plain),
        unit: 'ms',
        target: 'ratio <= 1.2',
        met: (_o, r) => r <= 1.2,
        note: `first job with an empty clone cache vs the same job without a cache; ${note}`,
      }),
      result({
        name: 'clone.warm',
        ours: median(warm),
        baseline: median(cold),
        unit: 'ms',
        target: 'ratio <= 0.2',
        met: (_o, r) => r <= 0.2,
        note: `a later job after one new commit vs the first job (clone.cold), taking the checkout the cache prepared after the first (in the background, ${median(preparing).toFixed(0)} ms after it); ${note}; phases of the median warm run, ms: ${warmPhases[warm.indexOf(median(warm))]}`,
      }),
      result({
        name: 'clone.warm.unprepared',
        ours: median(unprepared),
        baseline: median(cold),
        unit: 'ms',
        target: 'none (reported)',
        met: () => true,
        note: `clone.warm without a prepared checkout (EXECUTOR_GIT_CACHE_CHECKOUTS=0, or a job arriving before it is ready): the cache's packs copied, every file checked out; ${note}; phases of the median run, ms: ${unpreparedPhases[unprepared.indexOf(median(unprepared))]}`,
      }),
      result({
        name: 'submit.unmirrored',
        ours: median(submit),
        baseline: median(byHand),
        unit: 'ms',
        target: 'ratio <= 1.2',
        met: (_o, r) => r <= 1.2,
        note: `POST /api/v1/jobs at a commit fetched at submit (one commit of 5 files) vs git fetch of it by hand into a copy of the mirror; medians of ${RUNS}; the server's fetch (as the repository's lastSyncDurationMs) ${median(serverFetch)} ms`,
      }),
    ];
  } finally {
    await server.close();
    tmp.remove();
  }
};
