import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiLogEntry } from '../../src/cli/api-client.js';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { createLogger } from '../../src/lib/logger.js';
import { makeDemoRepo } from '../helpers/repos.js';
import { spawnCli } from '../helpers/spawn-cli.js';

describe('local cluster (server + executor in one process, shell runtime)', () => {
  let cluster: LocalCluster;
  let shas: { first: string; second: string };

  beforeAll(async () => {
    const data = mkdtempSync(join(tmpdir(), 'cluster-'));
    shas = makeDemoRepo(join(data, 'repos'));
    cluster = await startLocalCluster({
      dataDir: data,
      runtime: 'shell',
      logger: createLogger({ level: 'error' }),
    });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('clones at the commit, writes files, runs two steps, keeps the secret out of the log', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      repository: { name: 'demo/hello', commit: shas.first },
      files: { 'in/data.txt': 'from a file\n' },
      steps: [
        { key: 'show', image: 'unused', run: ['cat VERSION', 'cat in/data.txt', 'echo "token=$TOKEN"'] },
        { image: 'unused', run: 'echo second step; git rev-parse HEAD' },
      ],
      secrets: { TOKEN: 'hunter2-very-secret' },
    });
    const events: string[] = [];
    const final = await cluster.api.followLogs(job.id, (e) => {
      if (e.type === 'output') events.push(e.data);
    });
    expect(final.state).toBe('completed');
    const logs = (await cluster.api.getLogs(job.id)) as { entries: ApiLogEntry[] } | ApiLogEntry[];
    const entries = Array.isArray(logs) ? logs : logs.entries;
    const keys = entries.map((e) => e.key);
    expect(keys).toEqual(
      expect.arrayContaining([
        'setup.git.init',
        'setup.git.fetch',
        'setup.git.checkout',
        'setup.fs.extras',
        'step.docker.show',
        'step.docker.1',
        'teardown.fs',
      ]),
    );
    const show = entries.find((e) => e.key === 'step.docker.show')!;
    expect(show.out).toContain('stdout: one');
    expect(show.out).toContain('stdout: from a file');
    expect(show.out).toContain('token=${{ secrets.TOKEN }}');
    const all = JSON.stringify(entries) + events.join('');
    expect(all).not.toContain('hunter2-very-secret');
    expect(entries.find((e) => e.key === 'step.docker.1')!.out).toContain(shas.first);
  });

  it('executor validate passes against it and reports version compatibility with the server', async () => {
    const p = spawnCli(['validate'], cluster.executorEnv({ EXECUTOR_RUNTIME: 'shell' }));
    const code = await p.exited;
    expect(code, p.output()).toBe(0);
    expect(p.output()).toMatch(/✓ frontend auth/);
    // Our own versions, from the build metadata of the reported ones (5.6.0+executor.<version>).
    expect(p.output()).toMatch(/✓ version: executor \S+ vs server \S+: UP_TO_DATE/);
  });

  it('ends errored with the exit code when a step fails', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [{ key: 'bad', image: 'x', run: 'exit 7' }],
    });
    const final = await cluster.api.followLogs(job.id, () => {});
    expect(final.state).toBe('failed');
    expect(String(final.failureMessage)).toContain('exit code 7');
  });
});
