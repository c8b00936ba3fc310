import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createJobLogger } from '../../../src/executor/logs/job-logger.js';
import { createRedactor } from '../../../src/executor/logs/redactor.js';
import {
  buildScript,
  formatGoDuration,
  SCRIPT_PREAMBLE,
  scriptName,
  writeWorkspaceFiles,
} from '../../../src/executor/workspace/files.js';
import { createMemoryLogger } from '../../../src/lib/logger.js';
import type { Job } from '../../../src/protocol/job.js';
import { ZERO_TIME } from '../../../src/protocol/job.js';
import { createFakeLogSink } from '../logs/fake-log-sink.js';

function job(over: Partial<Job> = {}): Job {
  return {
    version: 2,
    id: 42,
    token: 'tok',
    repositoryName: 'github.com/sourcegraph/sourcegraph',
    repositoryDirectory: '',
    commit: 'deadbeef',
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

let ws: string;
beforeEach(async () => {
  ws = await mkdtemp(path.join(os.tmpdir(), 'files-test-'));
});
afterEach(async () => {
  await rm(ws, { recursive: true, force: true });
});

function logs() {
  const sink = createFakeLogSink();
  const logger = createJobLogger({
    sink,
    redactor: createRedactor({}),
    maxOutputBytes: 1 << 20,
    logger: createMemoryLogger(),
  });
  return { sink, logger };
}

/** A fake of the files endpoint client: serves a fixed map and records what was asked. */
function fakeFetcher(objects: Record<string, string>) {
  const asked: string[] = [];
  return {
    asked,
    async get(bucket: string, key: string) {
      asked.push(`${bucket}/${key}`);
      const v = objects[`${bucket}/${key}`];
      if (v === undefined) throw new Error(`404 ${bucket}/${key}`);
      return Buffer.from(v);
    },
  };
}

describe('writeWorkspaceFiles', () => {
  it('writes files and step scripts with Sourcegraph layout, modes, times and log entry', async () => {
    const { sink, logger } = logs();
    const fetcher = fakeFetcher({ 'batch-changes/spec.yml': 'name: x\n' });
    const j = job({
      files: {
        'changeset.json': { content: Buffer.from('{"a":1}'), modifiedAt: '2024-03-04T05:06:07Z' },
        'nested/dir/spec.yml': { bucket: 'batch-changes', key: 'spec.yml', modifiedAt: ZERO_TIME },
      },
      dockerSteps: [
        { image: 'alpine', commands: ['echo one', 'echo two'], dir: '', env: [] },
        { key: 'b', image: 'alpine', commands: ['true'], dir: 'sub', env: [] },
      ],
    });
    const names = await writeWorkspaceFiles(j, ws, logger, fetcher);
    expect(names).toEqual([
      '42.0_github.com_sourcegraph_sourcegraph@deadbeef.sh',
      '42.1_github.com_sourcegraph_sourcegraph@deadbeef.sh',
    ]);
    expect(names[1]).toBe(scriptName(j, 1));
    expect((await readdir(path.join(ws, '.sourcegraph-executor'))).sort()).toEqual(names);

    const script = await readFile(path.join(ws, '.sourcegraph-executor', names[0]!), 'utf8');
    expect(script).toBe(`${SCRIPT_PREAMBLE}\n\necho one\necho two\n`);
    expect(script.startsWith('\n# Only on the first run, check if we can upgrade to bash.\n')).toBe(true);
    expect(script).toContain('\nset +e\n# From the actual script, log all commands.\nset -x\n');

    expect(await readFile(path.join(ws, 'changeset.json'), 'utf8')).toBe('{"a":1}');
    expect(await readFile(path.join(ws, 'nested/dir/spec.yml'), 'utf8')).toBe('name: x\n');
    expect(fetcher.asked).toEqual(['batch-changes/spec.yml']);
    for (const f of ['changeset.json', 'nested/dir/spec.yml', `.sourcegraph-executor/${names[0]}`]) {
      expect((await stat(path.join(ws, f))).mode & 0o777).toBe(0o777);
    }
    expect((await stat(path.join(ws, 'changeset.json'))).mtime.toISOString()).toBe(
      '2024-03-04T05:06:07.000Z',
    );
    expect(Date.now() - (await stat(path.join(ws, 'nested/dir/spec.yml'))).mtimeMs).toBeLessThan(60_000);

    await logger.flush();
    const entries = [...sink.stored.values()];
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ key: 'setup.fs.extras', command: null, exitCode: 0 });
    const lines = entries[0]!.out!.trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    for (const l of lines) expect(l).toMatch(/^Wrote \/.+ in [0-9.]+(ns|µs|ms|s)$/);
    expect(lines[0]).toContain(path.join(ws, 'changeset.json'));
  });

  it('writes nothing and opens no entry when there is nothing to write', async () => {
    const { sink, logger } = logs();
    expect(await writeWorkspaceFiles(job(), ws, logger, fakeFetcher({}))).toEqual([]);
    await logger.flush();
    expect(sink.calls).toHaveLength(0);
  });

  it('refuses paths outside the workspace before opening the entry', async () => {
    for (const rel of ['../escape.txt', '/etc/passwd-x', 'a/../../x', '..\\x', 'x\0y']) {
      const { sink, logger } = logs();
      const j = job({ files: { [rel]: { content: Buffer.from('pwn'), modifiedAt: ZERO_TIME } } });
      await expect(writeWorkspaceFiles(j, ws, logger, fakeFetcher({}))).rejects.toThrow(
        /refusing to write outside of working directory/,
      );
      await logger.flush();
      expect(sink.calls).toHaveLength(0);
    }
    await expect(stat(path.join(path.dirname(ws), 'escape.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('does not write through a symlink (e.g. from the cloned repo) that points outside', async () => {
    const outside = await mkdtemp(path.join(os.tmpdir(), 'files-outside-'));
    try {
      await symlink(outside, path.join(ws, 'evil'));
      const { logger } = logs();
      const j = job({ files: { 'evil/owned.txt': { content: Buffer.from('pwn'), modifiedAt: ZERO_TIME } } });
      await expect(writeWorkspaceFiles(j, ws, logger, fakeFetcher({}))).rejects.toThrow(/refusing/);
      expect(await readdir(outside)).toEqual([]);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('closes the entry with 1 when a fetch fails', async () => {
    const { sink, logger } = logs();
    const j = job({ files: { 'f.txt': { bucket: 'b', key: 'missing', modifiedAt: ZERO_TIME } } });
    await expect(writeWorkspaceFiles(j, ws, logger, fakeFetcher({}))).rejects.toThrow(
      /^failed to write virtual machine files: 404 b\/missing/,
    );
    await logger.flush();
    expect([...sink.stored.values()][0]).toMatchObject({ key: 'setup.fs.extras', exitCode: 1 });
  });

  it('produces a script that runs in sh and traces its commands', async () => {
    const file = path.join(ws, 's.sh');
    await writeFile(file, buildScript(['echo hello-from-step', 'false', 'echo after']));
    const r = execFileSync('sh', [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    // set +e: a failing command does not stop the script.
    expect(r).toBe('hello-from-step\nafter\n');
  });
});

describe('formatGoDuration', () => {
  it('prints like Go time.Duration', () => {
    expect(formatGoDuration(0n)).toBe('0s');
    expect(formatGoDuration(999n)).toBe('999ns');
    expect(formatGoDuration(12_500n)).toBe('12.5µs');
    expect(formatGoDuration(1_234_567n)).toBe('1.234567ms');
    expect(formatGoDuration(2_000_000_000n)).toBe('2s');
    expect(formatGoDuration(90_500_000_000n)).toBe('1m30.5s');
    expect(formatGoDuration(3_600_000_000_000n)).toBe('1h0m0s');
  });
});
