import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createApiClient } from '../../src/cli/api-client.js';
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
    p.child.kill('SIGINT');
    expect(await p.exited).toBe(0);
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
