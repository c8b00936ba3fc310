import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
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

/** POSTs a job the way a same-host nginx forwards an outside request; resolves the status. */
function proxiedSubmit(url: string, extra: Record<string, string>): Promise<number> {
  const body = JSON.stringify({ queue: 'default', steps: [{ image: 'busybox', run: 'id' }] });
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${url}/api/v1/jobs`,
      {
        method: 'POST',
        headers: {
          host: new URL(url).host,
          'x-executor-dashboard': '1',
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          ...extra,
        },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function listening(out: { stderr: string }): Promise<string> {
  return waitFor(() => /queue server listening url=(\S+)/.exec(out.stderr)?.[1], {
    timeoutMs: 30_000,
    what: 'the listening line',
  });
}

describe('executor server (CLI)', () => {
  it('starts on SQLite, serves, and exits 0 on SIGTERM', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'executor-server-cli-'));
    const { child, out, exited } = run(['--listen', '127.0.0.1:0', '--data', dir], {
      EXECUTORS_ACCESS_TOKEN: EXECUTOR_TOKEN,
      EXECUTOR_SERVER_API_TOKEN: API_TOKEN,
    });
    const url = await listening(out);
    const res = await fetch(`${url}/healthz`);
    expect(await res.text()).toBe('ok');
    expect(existsSync(path.join(dir, 'executor.db'))).toBe(true);
    expect(existsSync(path.join(dir, 'repos'))).toBe(true);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('serves no tokenless user API on loopback by default, even to a request shaped like a proxied one', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'executor-server-cli-'));
    const { child, out, exited } = run(['--listen', '127.0.0.1:0', '--data', dir], {
      EXECUTORS_ACCESS_TOKEN: EXECUTOR_TOKEN,
      EXECUTOR_SERVER_API_TOKEN: API_TOKEN,
    });
    const url = await listening(out);
    expect(await proxiedSubmit(url, { 'x-forwarded-for': '203.0.113.9' })).toBe(401);
    expect(await proxiedSubmit(url, {})).toBe(401);
    expect(await proxiedSubmit(url, { authorization: `Bearer ${API_TOKEN}` })).toBe(201);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('with the loopback setting on, still refuses a tokenless request that carries a proxy header', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'executor-server-cli-'));
    const { child, out, exited } = run(
      ['--listen', '127.0.0.1:0', '--data', dir, '--dashboard-loopback-open', 'true'],
      { EXECUTORS_ACCESS_TOKEN: EXECUTOR_TOKEN, EXECUTOR_SERVER_API_TOKEN: API_TOKEN },
    );
    const url = await listening(out);
    for (const h of [
      'forwarded',
      'x-forwarded-for',
      'x-forwarded-host',
      'x-forwarded-proto',
      'x-real-ip',
      'via',
    ]) {
      expect(await proxiedSubmit(url, { [h]: h === 'x-forwarded-proto' ? 'https' : '203.0.113.9' }), h).toBe(
        401,
      );
    }
    // The same request without a proxy header is the local dashboard, which the setting lets in.
    expect(await proxiedSubmit(url, {})).toBe(201);
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
