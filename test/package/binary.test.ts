/**
 * The single-file binary (`npm run package`): built once (reused while its inputs are unchanged,
 * see scripts/package.mjs --if-stale), then run as a user would: `--version`, `validate`, and a
 * `server` plus a `run` executor (shell runtime) completing one job submitted with `submit`.
 * Building takes about a minute (postject rewrites a ~110 MiB copy of node).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const binary = path.join(repo, 'dist/sea/executor-linux-x64');
const version = (JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string })
  .version;
const supported = process.platform === 'linux' && process.arch === 'x64';

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | string>;
}

function runBinary(args: string[], env: Record<string, string>): Run {
  const child = spawn(binary, args, {
    // A clean environment: nothing from the test runner (no tsx, no NODE_OPTIONS) leaks in.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: os.tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | string>((resolve) => child.on('exit', (c, s) => resolve(c ?? s ?? -1)));
  return { child, output: () => out, exited };
}

async function finished(r: Run, timeoutMs: number): Promise<number | string> {
  const timer = setTimeout(() => r.child.kill('SIGKILL'), timeoutMs);
  const code = await r.exited;
  clearTimeout(timer);
  return code;
}

describe.skipIf(!supported)('single-file binary', () => {
  let tmp: string;
  let server: Run | undefined;
  let url: string;
  let nativeCache: string;
  const executorsToken = randomBytes(16).toString('hex');
  const apiToken = randomBytes(16).toString('hex');

  beforeAll(async () => {
    execFileSync(process.execPath, [path.join(repo, 'scripts/package.mjs'), '--if-stale'], {
      cwd: repo,
      stdio: 'pipe',
      timeout: 300_000,
    });
    tmp = mkdtempSync(path.join(os.tmpdir(), 'binary-'));
    nativeCache = path.join(tmp, 'native-cache');
    server = runBinary(['server', '--listen', '127.0.0.1:0', '--data', path.join(tmp, 'data')], {
      EXECUTORS_ACCESS_TOKEN: executorsToken,
      EXECUTOR_SERVER_API_TOKEN: apiToken,
      EXECUTOR_NATIVE_CACHE_DIR: nativeCache,
    });
    url = await waitFor(() => /queue server listening url=(\S+)/.exec(server?.output() ?? '')?.[1], {
      timeoutMs: 30_000,
      what: `the server's listening line (output: ${server.output()})`,
    });
  }, 330_000);

  afterAll(async () => {
    if (server && server.child.exitCode === null) {
      server.child.kill('SIGTERM');
      await finished(server, 15_000);
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const executorEnv = () => ({
    EXECUTOR_FRONTEND_URL: url,
    EXECUTOR_FRONTEND_PASSWORD: executorsToken,
    EXECUTOR_QUEUE_NAME: 'default',
    EXECUTOR_RUNTIME: 'shell',
    EXECUTOR_WORKSPACE_ROOT: tmp,
    EXECUTOR_MIN_FREE_DISK: '0',
    EXECUTOR_NATIVE_CACHE_DIR: nativeCache,
  });

  it('--version prints the package version', async () => {
    const r = runBinary(['--version'], {});
    expect(await finished(r, 30_000)).toBe(0);
    expect(r.output()).toBe(`${version}\n`);
  });

  it('the server loaded SQLite from the addon embedded in the binary', () => {
    const files = readdirSync(nativeCache, { recursive: true }) as string[];
    expect(files.some((f) => f.endsWith('better_sqlite3.node'))).toBe(true);
  });

  it('serves the dashboard from assets embedded in the binary', async () => {
    const page = await fetch(`${url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const app = await fetch(`${url}/assets/app.js`);
    expect(app.status).toBe(200);
    expect((await app.text()).length).toBeGreaterThan(1000);
  });

  it('validate prints one line per check and passes against the server', async () => {
    const r = runBinary(['validate'], executorEnv());
    const code = await finished(r, 60_000);
    const lines = r.output().trimEnd().split('\n');
    for (const line of lines.slice(0, -1)) expect(line).toMatch(/^[✓✗-] [a-z][a-z ]*: \S/);
    expect(lines).toContain('✓ config: runtime shell, queue default');
    expect(lines).toContain(`✓ frontend auth: ${url} accepted the executor secret`);
    expect(lines.at(-1)).toBe('All checks passed!');
    expect(code).toBe(0);

    // Without a reachable server the same binary reports the failure in the same format.
    const down = runBinary(['validate'], {
      ...executorEnv(),
      EXECUTOR_FRONTEND_URL: 'http://127.0.0.1:9',
      SRC_HTTP_CLI_INTERNAL_RETRY_MAX_ATTEMPTS: '1',
    });
    expect(await finished(down, 60_000)).toBe(1);
    expect(down.output()).toMatch(/^✗ frontend auth: .+$/m);
    expect(down.output()).toMatch(/^1 of \d+ checks failed$/m);
  }, 120_000);

  it('server + run (shell runtime) complete a job submitted with submit', async () => {
    const jobFile = path.join(tmp, 'job.yaml');
    writeFileSync(
      jobFile,
      [
        'queue: default',
        'steps:',
        '  - key: hello',
        '    image: unused',
        '    run: echo "hello from the binary"',
        '',
      ].join('\n'),
    );
    const executor = runBinary(['run'], { ...executorEnv(), EXECUTOR_NUM_TOTAL_JOBS: '1' });
    const submit = runBinary(['submit', jobFile, '--follow', '--server', url, '--token', apiToken], {});
    expect(await finished(submit, 120_000), submit.output()).toBe(0);
    expect(submit.output()).toContain('hello from the binary');
    // EXECUTOR_NUM_TOTAL_JOBS=1: the executor exits by itself after the job.
    expect(await finished(executor, 60_000), executor.output()).toBe(0);

    const res = await fetch(`${url}/api/v1/jobs?limit=1`, {
      headers: { authorization: `Bearer ${apiToken}` },
    });
    expect(JSON.stringify(await res.json())).toContain('"completed"');
  }, 200_000);
});
