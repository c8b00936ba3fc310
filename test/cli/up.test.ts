import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createApiClient } from '../../src/cli/api-client.js';
import { commandName } from '../../src/cli/up.js';
import { dockerAvailable, requireOrSkip, waitFor } from '../helpers/env.js';
import { spawnCli } from '../helpers/spawn-cli.js';

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

/**
 * `executor up` as a new user runs it: a spawned process, the demo job followed to the end, its log
 * checked through the API with the printed URL and token, then Ctrl-C (SIGINT) drains and exits 0.
 */
async function upAndCheck(runtime: 'shell' | 'docker') {
  const data = join(mkdtempSync(join(tmpdir(), `up-${runtime}-`)), 'data');
  const p = spawnCli(['up', '--runtime', runtime, '--listen', '127.0.0.1:0', '--data', data]);
  try {
    await waitFor(() => /Job 1 (completed|failed|canceled|errored)/.test(plain(p.output())), {
      timeoutMs: 120_000,
      what: 'the demo job to end',
    });
    const out = plain(p.output());
    expect(out).toContain('Job 1 completed');
    const url = /server\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1]!;
    const token = /API token\s+([0-9a-f]{40})/.exec(out)![1]!;
    const api = createApiClient({ server: url, token });
    const job = await api.getJob(1);
    expect(job.state).toBe('completed');
    const logs = (await api.getLogs(1)) as { entries: { key: string; out?: string }[] };
    const test = logs.entries.find((e) => e.key === 'step.docker.test');
    expect(test?.out).toContain('1 test passed');
    expect(test?.out).toContain('${{ secrets.DEMO_TOKEN }}');
    expect(JSON.stringify(logs)).not.toContain('demo-secret-4f7a1c2e9b');
    expect(logs.entries.map((e) => e.key)).toContain('setup.git.checkout');
    // Commands a user can paste: the two export lines the README promises, and `npx executor`
    // when no `executor` is on PATH (the test's PATH has none).
    expect(out).toContain(
      `\n  export EXECUTOR_SERVER_URL=${url}\n  export EXECUTOR_SERVER_API_TOKEN=${token}\n`,
    );
    expect(out).toContain('  npx executor submit examples/steps-and-files.yaml --follow');
    p.child.kill('SIGINT');
    expect(await p.exited).toBe(0);
    expect(plain(p.output()).trimEnd().split('\n').at(-1)).toBe('stopped');
  } finally {
    p.child.kill('SIGKILL');
  }
}

describe('executor up', { timeout: 240_000 }, () => {
  it('runs the demo job with the shell runtime', async () => {
    await upAndCheck('shell');
  });

  it.skipIf(!requireOrSkip('Docker', dockerAvailable()))(
    'runs the demo job with the Docker runtime',
    async () => {
      await upAndCheck('docker');
    },
  );
});

describe('commandName', () => {
  it('is `executor` when one is on PATH, else `npx executor`', () => {
    const bin = mkdtempSync(join(tmpdir(), 'bin-'));
    expect(commandName(`/nonexistent${delimiter}${bin}`)).toBe('npx executor');
    writeFileSync(join(bin, 'executor'), '#!/bin/sh\n', { mode: 0o755 });
    expect(commandName(`/nonexistent${delimiter}${bin}`)).toBe('executor');
    // node_modules/.bin is on PATH only inside npx and npm scripts, not in the user's shell.
    const local = join(mkdtempSync(join(tmpdir(), 'proj-')), 'node_modules', '.bin');
    mkdirSync(local, { recursive: true });
    writeFileSync(join(local, 'executor'), '#!/bin/sh\n', { mode: 0o755 });
    expect(commandName(local)).toBe('npx executor');
  });
});
