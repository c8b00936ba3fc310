import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobContext } from '../../../src/executor/job-context.js';
import { createJobLogger } from '../../../src/executor/logs/job-logger.js';
import { createRedactor } from '../../../src/executor/logs/redactor.js';
import { startGitProxy } from '../../../src/executor/workspace/git-proxy.js';
import { prepareLocalWorkspace } from '../../../src/executor/workspace/prepare.js';
import { createMemoryLogger } from '../../../src/lib/logger.js';
import type { Job } from '../../../src/protocol/job.js';
import { ZERO_TIME } from '../../../src/protocol/job.js';
import { createFakeLogSink } from '../logs/fake-log-sink.js';
import { type FakeFrontend, startFakeFrontend } from './fake-frontend.js';

const REPO = 'github.com/acme/widgets';
const TOKEN = 'job-token-0123456789abcdef';
const PASSWORD = 'executor-shared-password-xyz';

let base: string;
let root: string;
let frontend: FakeFrontend;
let head: string;
let first: string;

const gitEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@example.com',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@example.com',
};
const git = (cwd: string, ...args: string[]) =>
  execFileSync('git', ['-C', cwd, ...args], { env: gitEnv, encoding: 'utf8' }).trim();

beforeAll(async () => {
  base = await mkdtemp(path.join(os.tmpdir(), 'clone-test-'));
  root = path.join(base, 'workspaces');
  const src = path.join(base, 'src');
  await mkdir(path.join(src, 'a'), { recursive: true });
  await mkdir(path.join(src, 'b'), { recursive: true });
  git(src, 'init', '-q');
  await writeFile(path.join(src, 'a', 'one.txt'), 'one\n');
  await writeFile(path.join(src, 'b', 'two.txt'), 'two\n');
  git(src, 'add', '.');
  git(src, 'commit', '-qm', 'first');
  git(src, 'tag', 'v1');
  first = git(src, 'rev-parse', 'HEAD');
  await writeFile(path.join(src, 'a', 'three.txt'), 'three\n');
  git(src, 'add', '.');
  git(src, 'commit', '-qm', 'second');
  head = git(src, 'rev-parse', 'HEAD');
  const bare = path.join(base, 'repos', REPO);
  await mkdir(path.dirname(bare), { recursive: true });
  execFileSync('git', ['clone', '-q', '--bare', src, bare]);
  frontend = await startFakeFrontend(path.join(base, 'repos'));
});

afterAll(async () => {
  await frontend?.close();
  await rm(base, { recursive: true, force: true });
});

function job(over: Partial<Job> = {}): Job {
  return {
    version: 2,
    id: 7,
    token: TOKEN,
    repositoryName: REPO,
    repositoryDirectory: '',
    commit: head,
    fetchTags: false,
    shallowClone: false,
    sparseCheckout: [],
    files: {},
    dockerSteps: [],
    cliSteps: [],
    redactedValues: {},
    dockerAuthConfig: {},
    ...over,
  };
}

function context() {
  const sink = createFakeLogSink();
  // No secrets registered: what the sink sees is exactly the argv git was given.
  const logger = createJobLogger({
    sink,
    redactor: createRedactor({}),
    maxOutputBytes: 1 << 20,
    syncIntervalMs: 50,
    logger: createMemoryLogger(),
  });
  const ctx: JobContext = { signal: new AbortController().signal, logger, executorName: 'exec-1' };
  const entries = async () => {
    await logger.flush();
    return [...sink.stored.values()];
  };
  return { sink, ctx, entries };
}

const opts = () => ({
  root,
  keepWorkspaces: false,
  frontendUrl: frontend.url,
  frontendPassword: PASSWORD,
  executorName: 'exec-1',
  files: { get: async () => Buffer.alloc(0) },
});

describe('prepareLocalWorkspace with a repository', () => {
  it('clones through the local proxy with the exact git sequence, and git never sees the token', async () => {
    const { sink, ctx, entries } = context();
    frontend.requests.length = 0;
    const ws = await prepareLocalWorkspace(
      job({
        files: { 'extra/f.txt': { content: Buffer.from('x'), modifiedAt: ZERO_TIME } },
        dockerSteps: [{ image: 'alpine', commands: ['ls'], dir: '', env: [] }],
      }),
      ctx,
      opts(),
    );
    expect(path.dirname(ws.path)).toBe(root);
    expect(path.basename(ws.path)).toMatch(/^workspace-7-/);
    expect(await readFile(path.join(ws.path, 'a', 'three.txt'), 'utf8')).toBe('three\n');
    expect(git(ws.path, 'rev-parse', 'HEAD')).toBe(head);
    expect(git(ws.path, 'remote', 'get-url', 'origin')).toBe(REPO);
    expect(git(ws.path, 'config', '--local', 'gc.auto')).toBe('0');
    expect(await readFile(path.join(ws.path, 'extra', 'f.txt'), 'utf8')).toBe('x');
    expect(ws.scriptNames).toEqual([`7.0_github.com_acme_widgets@${head}.sh`]);

    // The owner file sits next to the workspace, not inside it.
    const owner = JSON.parse(await readFile(`${ws.path}.owner.json`, 'utf8'));
    expect(owner).toMatchObject({
      executorName: 'exec-1',
      hostname: os.hostname(),
      pid: process.pid,
      jobUid: '7',
    });

    const gitConfig = await readFile(path.join(ws.path, '.git', 'config'), 'utf8');
    expect(gitConfig).not.toContain(TOKEN);
    expect(gitConfig).not.toContain(PASSWORD);

    // Headers arrived at the frontend on every git request.
    expect(frontend.requests.length).toBeGreaterThanOrEqual(2);
    for (const r of frontend.requests) {
      expect(r.url.startsWith(`/.executors/git/${REPO}/`)).toBe(true);
      expect(r.headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(r.headers['x-sourcegraph-actor-uid']).toBe('internal');
      expect(r.headers['x-sourcegraph-job-id']).toBe('7');
      expect(r.headers['x-sourcegraph-executor-name']).toBe('exec-1');
    }

    const list = await entries();
    expect(list.map((e) => e.key)).toEqual([
      'setup.git.init',
      'setup.git.add-remote',
      'setup.git.disable-gc',
      'setup.git.fetch',
      'setup.git.checkout',
      'setup.git.set-remote',
      'setup.fs.extras',
    ]);
    for (const e of list) expect(e.exitCode).toBe(0);
    const byKey = Object.fromEntries(list.map((e) => [e.key, e.command]));
    const proxyUrl = byKey['setup.git.add-remote']![6]!;
    expect(proxyUrl).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/${REPO.replace(/\./g, '\\.')}$`));
    expect(byKey['setup.git.init']).toEqual(['git', '-C', ws.path, 'init']);
    expect(byKey['setup.git.fetch']).toEqual([
      'git',
      '-C',
      ws.path,
      '-c',
      'protocol.version=2',
      'fetch',
      '--no-recurse-submodules',
      'origin',
      head,
    ]);
    expect(byKey['setup.git.checkout']).toEqual(['git', '-C', ws.path, 'checkout', '--force', head]);
    expect(byKey['setup.git.set-remote']).toEqual([
      'git',
      '-C',
      ws.path,
      'remote',
      'set-url',
      'origin',
      REPO,
    ]);
    // No credential anywhere in what was logged (argv and output).
    const everything = JSON.stringify(sink.calls);
    expect(everything).not.toContain(TOKEN);
    expect(everything).not.toContain(PASSWORD);

    // The proxy is gone after the clone.
    const port = Number(new URL(proxyUrl).port);
    await expect(fetch(`http://127.0.0.1:${port}/${REPO}/info/refs`)).rejects.toThrow();

    await ws.remove();
    await ws.remove(); // idempotent
    expect(existsSync(ws.path)).toBe(false);
    expect(existsSync(`${ws.path}.owner.json`)).toBe(false);
    const teardown = (await entries()).filter((e) => e.key === 'teardown.fs');
    expect(teardown).toHaveLength(1);
    expect(teardown[0]).toMatchObject({ command: null, exitCode: 0, out: `Removing ${ws.path}\n` });
  });

  it('uses the shared password when the job has no token, and clones into repositoryDirectory', async () => {
    const { ctx } = context();
    frontend.requests.length = 0;
    const ws = await prepareLocalWorkspace(job({ token: '', repositoryDirectory: 'src/repo' }), ctx, opts());
    try {
      expect(await readFile(path.join(ws.path, 'src', 'repo', 'b', 'two.txt'), 'utf8')).toBe('two\n');
      for (const r of frontend.requests) expect(r.headers.authorization).toBe(`token-executor ${PASSWORD}`);
    } finally {
      await ws.remove();
    }
  });

  it('shallow fetch without tags: --no-tags --depth=1', async () => {
    const { ctx, entries } = context();
    const ws = await prepareLocalWorkspace(job({ shallowClone: true }), ctx, opts());
    try {
      const fetchEntry = (await entries()).find((e) => e.key === 'setup.git.fetch')!;
      expect(fetchEntry.command!.slice(5)).toEqual([
        'fetch',
        '--no-recurse-submodules',
        '--no-tags',
        '--depth=1',
        'origin',
        head,
      ]);
      expect(git(ws.path, 'rev-list', '--count', 'HEAD')).toBe('1');
      expect(git(ws.path, 'tag')).toBe('');
    } finally {
      await ws.remove();
    }
  });

  it('fetchTags with shallow: --tags --depth=1, and the tags arrive', async () => {
    const { ctx, entries } = context();
    const ws = await prepareLocalWorkspace(job({ shallowClone: true, fetchTags: true }), ctx, opts());
    try {
      const fetchEntry = (await entries()).find((e) => e.key === 'setup.git.fetch')!;
      expect(fetchEntry.command!.slice(7, -2)).toEqual(['--tags', '--depth=1']);
      expect(git(ws.path, 'tag')).toBe('v1');
      expect(git(ws.path, 'rev-parse', 'v1^{commit}')).toBe(first);
    } finally {
      await ws.remove();
    }
  });

  it('sparse checkout: --filter=blob:none, sparse config and set, checkout over protocol v2', async () => {
    const { ctx, entries } = context();
    const ws = await prepareLocalWorkspace(job({ sparseCheckout: ['a/*'] }), ctx, opts());
    try {
      const list = await entries();
      const byKey = Object.fromEntries(list.map((e) => [e.key, e.command!]));
      expect(list.map((e) => e.key)).toEqual([
        'setup.git.init',
        'setup.git.add-remote',
        'setup.git.disable-gc',
        'setup.git.fetch',
        'setup.git.sparse-checkout-config',
        'setup.git.sparse-checkout-set',
        'setup.git.checkout',
        'setup.git.set-remote',
      ]);
      expect(byKey['setup.git.fetch']!.slice(7, -2)).toEqual(['--filter=blob:none']);
      expect(byKey['setup.git.sparse-checkout-config']!.slice(3)).toEqual([
        'config',
        '--local',
        'core.sparseCheckout',
        '1',
      ]);
      expect(byKey['setup.git.sparse-checkout-set']!.slice(3)).toEqual([
        'sparse-checkout',
        'set',
        '--no-cone',
        '--',
        'a/*',
      ]);
      expect(byKey['setup.git.checkout']!.slice(3)).toEqual([
        '-c',
        'protocol.version=2',
        'checkout',
        '--force',
        head,
      ]);
      expect((await readdir(path.join(ws.path, 'a'))).sort()).toEqual(['one.txt', 'three.txt']);
      expect(existsSync(path.join(ws.path, 'b'))).toBe(false);
    } finally {
      await ws.remove();
    }
  });

  it('fails with "failed <key>" on an unknown commit and removes the workspace', async () => {
    const { ctx } = context();
    const before = existsSync(root) ? await readdir(root) : [];
    await expect(prepareLocalWorkspace(job({ commit: 'f'.repeat(40) }), ctx, opts())).rejects.toThrow(
      /^failed setup\.git\.fetch: command failed with exit code 128$/,
    );
    expect(await readdir(root)).toEqual(before);
  });

  it('refuses a repositoryDirectory outside the workspace', async () => {
    const { ctx } = context();
    await expect(
      prepareLocalWorkspace(job({ repositoryDirectory: '../elsewhere' }), ctx, opts()),
    ).rejects.toThrow(/^invalid repo path$/);
    expect(existsSync(path.join(root, 'elsewhere'))).toBe(false);
  });

  it('keeps the workspace when keepWorkspaces is set', async () => {
    const { ctx, entries } = context();
    const ws = await prepareLocalWorkspace(job({ repositoryName: '' }), ctx, {
      ...opts(),
      keepWorkspaces: true,
    });
    await ws.remove();
    expect(existsSync(ws.path)).toBe(true);
    const t = (await entries()).find((e) => e.key === 'teardown.fs')!;
    expect(t.out).toBe(`Preserving workspace (${ws.path}) as per config`);
    await rm(ws.path, { recursive: true });
    await rm(`${ws.path}.owner.json`);
  });
});

describe('git proxy', () => {
  it('answers 403 outside /<repo>/ and refuses dot segments', async () => {
    const proxy = await startGitProxy({
      frontendUrl: frontend.url,
      repositoryName: REPO,
      authorization: `Bearer ${TOKEN}`,
      jobId: 1,
      executorName: 'e',
    });
    try {
      frontend.requests.length = 0;
      for (const p of [
        '/github.com/acme/other/info/refs',
        `/${REPO}x/info/refs`,
        `/${REPO}/../other/info/refs`,
        `/${REPO}/%2e%2e/other/info/refs`,
        '/',
      ]) {
        const res = await new Promise<number>((resolve, reject) => {
          // http.get with options sends the path as is (a URL would normalise the dot segments).
          const u = new URL(proxy.url);
          http
            .get({ host: u.hostname, port: u.port, path: p }, (r) => {
              r.resume();
              resolve(r.statusCode ?? 0);
            })
            .on('error', reject);
        });
        expect(res, p).toBe(403);
      }
      expect(frontend.requests).toHaveLength(0);
      const ok = await fetch(`${proxy.url}/${REPO}/info/refs?service=git-upload-pack`);
      expect(ok.status).toBe(200);
      expect(frontend.requests).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  });
});
