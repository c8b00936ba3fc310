/**
 * The job handler end to end with the shell runtime (real /bin/sh) against the fake frontend:
 * files (inline and from the files endpoint), steps in order with Sourcegraph's log keys, skip.json,
 * failures, redaction, cli steps without src-cli, and log flush failures.
 */
import { readdir } from 'node:fs/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFilesClient } from '../../src/executor/client/files-client.js';
import { createQueueClient } from '../../src/executor/client/queue-client.js';
import { type HandlerDeps, handleJob } from '../../src/executor/handler.js';
import { createShellRuntime } from '../../src/executor/runtimes/shell/shell-runtime.js';
import { createMemoryLogger } from '../../src/lib/logger.js';
import { decodeJob } from '../../src/protocol/job.js';
import { type FakeFrontend, startFakeSourcegraphFrontend } from './fake-sourcegraph-frontend.js';
import { TELEMETRY, tempDir } from './harness.js';

let fe: FakeFrontend;
let ws: Awaited<ReturnType<typeof tempDir>>;
let deps: HandlerDeps;
beforeEach(async () => {
  fe = await startFakeSourcegraphFrontend();
  ws = await tempDir('executor-handler-test-');
  const logger = createMemoryLogger();
  const retry = { maxAttempts: 1, delayBaseMs: 1, delayMaxMs: 1, retryAfterMaxMs: 0, timeoutMs: 0 };
  const client = createQueueClient({
    frontendUrl: fe.url,
    password: 'hunter2',
    executorName: 'exec-1',
    queueName: 'test_queue',
    version: 'test',
    telemetry: () => TELEMETRY,
    retry,
  });
  const files = createFilesClient({
    frontendUrl: fe.url,
    password: 'hunter2',
    executorName: 'exec-1',
    retry,
  });
  const runtime = createShellRuntime({
    executorName: 'exec-1',
    workspaceRoot: ws.dir,
    keepWorkspaces: false,
    frontendUrl: fe.url,
    frontendPassword: 'hunter2',
    files: (job) => files.forJob(job),
    logger,
    graceMs: 200,
  });
  deps = {
    runtime,
    reporter: client,
    sinkFor: (job) => client.logSink(job),
    executorName: 'exec-1',
    frontendPassword: 'hunter2',
    maximumRuntimePerJobMs: 60_000,
    maxLogBytes: 1 << 20,
    logger,
    logSyncIntervalMs: 20,
  };
});
afterEach(async () => {
  await fe.close();
  await ws.cleanup();
});

const outOf = (jobId: number, key: string) => fe.entriesFor(jobId).find((e) => e.key === key)?.out ?? '';

describe('handleJob with the shell runtime', () => {
  it('writes files, runs two steps in order with step.docker.<key|i> keys, marks complete, removes the workspace', async () => {
    fe.files.set('batch-changes/spec/file1', Buffer.from('from the files endpoint\n'));
    const job = decodeJob({
      version: 2,
      id: 42,
      token: 'job-token',
      files: {
        'inline.txt': { content: Buffer.from('inline content\n').toString('base64') },
        'sub/remote.txt': { bucket: 'batch-changes', key: 'spec/file1' },
      },
      dockerSteps: [
        {
          key: 'first',
          image: 'alpine',
          commands: ['cat inline.txt sub/remote.txt', 'echo one > order.txt'],
          dir: '',
          env: [],
        },
        {
          image: 'alpine',
          commands: ['cat ../order.txt', 'echo "FOO is $FOO"', 'pwd'],
          dir: 'sub',
          env: ['FOO=bar=baz'],
        },
      ],
      dockerAuthConfig: {},
    });
    const outcome = await handleJob(job, deps);
    expect(outcome).toEqual({ mark: 'complete' });
    expect(fe.marks).toEqual([
      { route: 'markComplete', queue: 'test_queue', jobId: 42, errorMessage: undefined },
    ]);
    const keys = fe.entriesFor(42).map((e) => e.key);
    expect(keys).toEqual(['setup.fs.extras', 'step.docker.first', 'step.docker.1', 'teardown.fs']);
    expect(outOf(42, 'step.docker.first')).toContain('stdout: inline content');
    expect(outOf(42, 'step.docker.first')).toContain('stdout: from the files endpoint');
    expect(outOf(42, 'step.docker.1')).toContain('stdout: one');
    expect(outOf(42, 'step.docker.1')).toContain('stdout: FOO is bar=baz');
    expect(outOf(42, 'step.docker.1')).toMatch(/stdout: \/.*\/sub\n/);
    const step = fe.entriesFor(42).find((e) => e.key === 'step.docker.first')!;
    expect(step.exitCode).toBe(0);
    expect(step.command?.[0]).toBe('/bin/sh');
    // The files request used the job's token.
    const fileReq = fe.requests.find((r) => r.path === '/.executors/files/batch-changes/spec/file1')!;
    expect(fileReq.headers.authorization).toBe('Bearer job-token');
    expect(fileReq.headers['x-sourcegraph-job-id']).toBe('42');
    expect((await readdir(ws.dir)).filter((n) => n.startsWith('workspace-'))).toEqual([]);
  });

  it('a failing step ends the job: markErrored with the exit code; later steps do not run', async () => {
    const job = decodeJob({
      id: 43,
      dockerSteps: [
        { key: 'bad', image: 'x', commands: ['echo before', 'exit 3'], dir: '', env: [] },
        { key: 'never', image: 'x', commands: ['echo never'], dir: '', env: [] },
      ],
    });
    const outcome = await handleJob(job, deps);
    expect(outcome).toEqual({
      mark: 'errored',
      message: 'running command "step.docker.bad": command failed with exit code 3',
    });
    expect(fe.marks[0]).toMatchObject({
      route: 'markErrored',
      jobId: 43,
      errorMessage: outcome.mark === 'errored' ? outcome.message : '',
    });
    expect(fe.entriesFor(43).map((e) => e.key)).not.toContain('step.docker.never');
    expect(fe.entriesFor(43).find((e) => e.key === 'step.docker.bad')?.exitCode).toBe(3);
    expect(fe.entriesFor(43).map((e) => e.key)).toContain('teardown.fs');
  });

  it('skip.json after a .pre step skips to the named step', async () => {
    const job = decodeJob({
      id: 44,
      dockerSteps: [
        {
          key: 'step.0.pre',
          image: 'x',
          commands: ['echo \'{"nextStep":"step.2.run"}\' > skip.json'],
          dir: '',
          env: [],
        },
        { key: 'step.1.run', image: 'x', commands: ['echo skipped'], dir: '', env: [] },
        { key: 'step.2.run', image: 'x', commands: ['test ! -e skip.json && echo ran'], dir: '', env: [] },
      ],
    });
    expect(await handleJob(job, deps)).toEqual({ mark: 'complete' });
    const keys = fe.entriesFor(44).map((e) => e.key);
    expect(keys).toContain('step.docker.step.0.pre');
    expect(keys).not.toContain('step.docker.step.1.run');
    expect(outOf(44, 'step.docker.step.2.run')).toContain('stdout: ran');
  });

  it('redacts the executor password and the job redactedValues in commands and output', async () => {
    const job = decodeJob({
      id: 45,
      redactedValues: { 's3cr3t-value': '${{ secrets.X }}' },
      dockerSteps: [{ image: 'x', commands: ['echo "pw=hunter2 s=s3cr3t-value"'], dir: '', env: [] }],
    });
    await handleJob(job, deps);
    const all = fe
      .entriesFor(45)
      .map((e) => `${e.command?.join(' ')} ${e.out}`)
      .join('\n');
    expect(all).toContain('pw=SECRET_REMOVED s=${{ secrets.X }}');
    expect(all).not.toContain('hunter2');
    expect(all).not.toContain('s3cr3t-value');
  });

  it('cli steps need src on PATH: a clear error, markErrored', async () => {
    const job = decodeJob({ id: 46, cliSteps: [{ command: ['batch', 'exec'], dir: '', env: [] }] });
    const outcome = await handleJob(job, { ...deps, findSrc: async () => undefined });
    expect(outcome.mark).toBe('errored');
    expect(fe.marks[0]?.errorMessage).toContain('`src` is not on PATH');
  });

  it('a failed final log upload turns success into markErrored', async () => {
    fe.failLogUpdates = true;
    const job = decodeJob({ id: 47, dockerSteps: [{ image: 'x', commands: ['echo hi'], dir: '', env: [] }] });
    const outcome = await handleJob(job, deps);
    expect(outcome.mark).toBe('errored');
    expect(fe.marks[0]).toMatchObject({ route: 'markErrored', jobId: 47 });
    expect(fe.marks[0]?.errorMessage).toContain('uploading logs');
  });
});
