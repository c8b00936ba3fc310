import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { API_TOKEN, EXECUTOR_TOKEN } from './harness.js';

const script = new URL('./fixtures/run-server-command.ts', import.meta.url).pathname;
let dir: string;
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', script, 'server', ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stderr: '' };
  child.stderr.on('data', (d: Buffer) => {
    out.stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out, exited };
}

describe('executor server (CLI)', () => {
  it('starts on SQLite, serves, and exits 0 on SIGTERM', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'executor-server-cli-'));
    const { child, out, exited } = run(['--listen', '127.0.0.1:0', '--data', dir], {
      EXECUTORS_ACCESS_TOKEN: EXECUTOR_TOKEN,
      EXECUTOR_SERVER_API_TOKEN: API_TOKEN,
    });
    const url = await waitFor(() => /queue server listening url=(\S+)/.exec(out.stderr)?.[1], {
      timeoutMs: 30_000,
      what: 'the listening line',
    });
    const res = await fetch(`${url}/healthz`);
    expect(await res.text()).toBe('ok');
    expect(existsSync(path.join(dir, 'executor.db'))).toBe(true);
    expect(existsSync(path.join(dir, 'repos'))).toBe(true);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('exits non-zero naming every missing setting', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'executor-server-cli-'));
    const { out, exited } = run(['--data', dir], {});
    expect(await exited).toBe(2);
    expect(out.stderr).toContain('EXECUTORS_ACCESS_TOKEN: is required');
    expect(out.stderr).toContain('EXECUTOR_SERVER_API_TOKEN: is required');
  });
});
