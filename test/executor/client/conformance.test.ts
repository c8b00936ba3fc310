/**
 * Conformance of our /.executors clients with Sourcegraph's client tests
 * (`apiclient/queue/client_test.go`, `apiclient/files/client_test.go`, `run/validate_test.go`):
 * every row is replayed against a fake frontend on loopback, asserting method, path, auth token,
 * job headers and the JSON-normalised body. Retries are off, as in Sourcegraph's test builds.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { HttpRetryConfig } from '../../../src/config/executor.js';
import { AUTHORIZATION_FAILED, createAuthClient } from '../../../src/executor/client/auth-client.js';
import { createFilesClient } from '../../../src/executor/client/files-client.js';
import { createQueueClient, type QueueClient } from '../../../src/executor/client/queue-client.js';
import { LONG_POLL_HEADER } from '../../../src/protocol/capabilities.js';
import { decodeJob, type Job } from '../../../src/protocol/job.js';
import {
  type FakeFrontend,
  normalizeJson,
  type RecordedRequest,
  startFakeSourcegraphFrontend,
} from '../fake-sourcegraph-frontend.js';

const NO_RETRY: HttpRetryConfig = {
  maxAttempts: 1,
  delayBaseMs: 1,
  delayMaxMs: 1,
  retryAfterMaxMs: 3000,
  timeoutMs: 0,
};
const VERSION = '0.1.0+executor';
const telemetry = {
  os: 'test-os',
  architecture: 'test-architecture',
  dockerVersion: 'test-docker-version',
  executorVersion: 'test-executor-version',
  gitVersion: 'test-git-version',
  igniteVersion: 'test-ignite-version',
  srcCliVersion: 'test-src-cli-version',
};

let fe: FakeFrontend;
beforeAll(async () => {
  fe = await startFakeSourcegraphFrontend();
});
afterAll(() => fe.close());
beforeEach(() => {
  fe.requests.length = 0;
  fe.script.length = 0;
  fe.capabilities = '';
});

function single(prometheusMetrics: () => string = () => ''): QueueClient {
  return createQueueClient({
    frontendUrl: fe.url,
    password: 'hunter2',
    executorName: 'deadbeef',
    queueName: 'test_queue',
    version: VERSION,
    telemetry: () => telemetry,
    prometheusMetrics,
    retry: NO_RETRY,
  });
}
function multi(): QueueClient {
  return createQueueClient({
    frontendUrl: fe.url,
    password: 'hunter2',
    executorName: 'deadbeef',
    // Given out of order on purpose: the wire order is alphabetical.
    queueNames: ['test_queue_two', 'test_queue_one'],
    version: VERSION,
    telemetry: () => telemetry,
    prometheusMetrics: () => '',
    retry: NO_RETRY,
  });
}

/** Sourcegraph's assertions: method, path, Authorization part 2, job headers (''=absent), body. */
function expectRequest(
  r: RecordedRequest | undefined,
  want: { method: string; path: string; token: string; jobId?: string; executor?: string; body?: unknown },
) {
  expect(r).toBeDefined();
  expect(r!.method).toBe(want.method);
  expect(r!.path).toBe(want.path);
  const parts = String(r!.headers.authorization ?? '').split(' ');
  expect(parts).toHaveLength(2);
  expect(parts[1]).toBe(want.token);
  expect(r!.headers['x-sourcegraph-job-id'] ?? '').toBe(want.jobId ?? '');
  expect(r!.headers['x-sourcegraph-executor-name'] ?? '').toBe(want.executor ?? '');
  expect(r!.headers['content-type']).toBe('application/json');
  if (want.body !== undefined) expect(normalizeJson(r!.json)).toEqual(normalizeJson(want.body));
}

const job = (extra: Record<string, unknown> = {}): Job => decodeJob({ id: 42, ...extra });

describe('queue client: Dequeue (client_test.go TestDequeue)', () => {
  const body = { executorName: 'deadbeef', version: VERSION };
  it('Success: 200 {"id":42} -> job {id:42, files:{}}', async () => {
    fe.script.push({ status: 200, body: '{"id": 42}' });
    const got = await single().dequeue();
    expectRequest(fe.requests[0], {
      method: 'POST',
      path: '/.executors/queue/test_queue/dequeue',
      token: 'hunter2',
      body,
    });
    expect(got?.id).toBe(42);
    expect(got?.files).toEqual({});
    expect(got?.queue).toBeUndefined();
  });
  it('No record: 204 -> null, no error', async () => {
    fe.script.push({ status: 204 });
    expect(await single().dequeue()).toBeNull();
    expectRequest(fe.requests[0], {
      method: 'POST',
      path: '/.executors/queue/test_queue/dequeue',
      token: 'hunter2',
      body,
    });
  });
  it('Bad Response: 500 -> unexpected status code 500', async () => {
    fe.script.push({ status: 500 });
    await expect(single().dequeue()).rejects.toThrow('unexpected status code 500');
  });
  it('Multi-queue success: POST /.executors/queue/dequeue with sorted queues', async () => {
    fe.script.push({ status: 200, body: '{"id": 42, "queue": "test_queue_one"}' });
    const got = await multi().dequeue();
    expectRequest(fe.requests[0], {
      method: 'POST',
      path: '/.executors/queue/dequeue',
      token: 'hunter2',
      body: { ...body, queues: ['test_queue_one', 'test_queue_two'] },
    });
    expect(got).toMatchObject({ id: 42, queue: 'test_queue_one', files: {} });
  });
  it('sends resources when configured (numCPUs, memory, diskSpace)', async () => {
    const c = createQueueClient({
      frontendUrl: fe.url,
      password: 'hunter2',
      executorName: 'deadbeef',
      queueName: 'test_queue',
      version: VERSION,
      resources: { numCPUs: 4, memory: '12G', diskSpace: '20G' },
      telemetry: () => telemetry,
      retry: NO_RETRY,
    });
    fe.script.push({ status: 204 });
    await c.dequeue();
    expect(normalizeJson(fe.requests[0]!.json)).toEqual(
      normalizeJson({ ...body, numCPUs: 4, memory: '12G', diskSpace: '20G' }),
    );
  });
  it('decodes a v2 payload (base64 file content)', async () => {
    fe.script.push({
      status: 200,
      body: JSON.stringify({
        version: 2,
        id: 7,
        files: { 'a.sh': { content: 'aGVsbG8=', modifiedAt: '0001-01-01T00:00:00Z' } },
        dockerAuthConfig: {},
      }),
    });
    const got = await single().dequeue();
    expect(got?.version).toBe(2);
    expect(got?.files['a.sh']?.content?.toString()).toBe('hello');
  });
  it('decodes a v1 payload (plain file content)', async () => {
    fe.script.push({ status: 200, body: JSON.stringify({ id: 7, files: { 'a.sh': { content: 'hello' } } }) });
    const got = await single().dequeue();
    expect(got?.version).toBe(1);
    expect(got?.files['a.sh']?.content?.toString()).toBe('hello');
  });
});

type MarkCase = 'markComplete' | 'markErrored' | 'markFailed';
const doMark = (c: QueueClient, route: MarkCase, j: Job) =>
  route === 'markComplete'
    ? c.markComplete(j)
    : route === 'markErrored'
      ? c.markErrored(j, 'OH NO')
      : c.markFailed(j, 'OH NO');

for (const route of ['markComplete', 'markErrored', 'markFailed'] as const) {
  describe(`queue client: ${route} (client_test.go)`, () => {
    const body =
      route === 'markComplete'
        ? { executorName: 'deadbeef', jobId: 42 }
        : { executorName: 'deadbeef', jobId: 42, errorMessage: 'OH NO' };
    const path = `/.executors/queue/test_queue/${route}`;
    it('Success (job token)', async () => {
      fe.script.push({ status: 204 });
      await doMark(single(), route, job({ token: 'job-token' }));
      expectRequest(fe.requests[0], {
        method: 'POST',
        path,
        token: 'job-token',
        jobId: '42',
        executor: 'deadbeef',
        body,
      });
      expect(fe.requests[0]!.headers.authorization).toBe('Bearer job-token');
    });
    it('Success general access token (job without token)', async () => {
      fe.script.push({ status: 204 });
      await doMark(single(), route, job());
      expectRequest(fe.requests[0], {
        method: 'POST',
        path,
        token: 'hunter2',
        jobId: '42',
        executor: 'deadbeef',
        body,
      });
      expect(fe.requests[0]!.headers.authorization).toBe('token-executor hunter2');
    });
    it('Bad Response: 500', async () => {
      fe.script.push({ status: 500 });
      await expect(doMark(single(), route, job({ token: 'job-token' }))).rejects.toThrow(
        'unexpected status code 500',
      );
      expectRequest(fe.requests[0], {
        method: 'POST',
        path,
        token: 'job-token',
        jobId: '42',
        executor: 'deadbeef',
        body,
      });
    });
    it('Multi-queue Success: the queue comes from the job', async () => {
      fe.script.push({ status: 204 });
      await doMark(multi(), route, job({ token: 'job-token', queue: 'test_queue' }));
      expectRequest(fe.requests[0], {
        method: 'POST',
        path,
        token: 'job-token',
        jobId: '42',
        executor: 'deadbeef',
        body,
      });
    });
  });
}

describe('queue client: heartbeat metrics size', () => {
  it('leaves out metrics over 256 KiB (more than a default server keeps), sends smaller ones', async () => {
    let metrics = `big_total 1\n${'#'.repeat(256 * 1024)}\n`;
    const client = single(() => metrics);
    fe.script.push({ status: 200, body: '{"knownIds": [], "cancelIds": []}' });
    await client.heartbeat([]);
    expect((fe.requests[0]!.json as { prometheusMetrics: string }).prometheusMetrics).toBe('');
    metrics = 'small_total 1\n';
    fe.script.push({ status: 200, body: '{"knownIds": [], "cancelIds": []}' });
    await client.heartbeat([]);
    expect((fe.requests[1]!.json as { prometheusMetrics: string }).prometheusMetrics).toBe(metrics);
  });
});

describe('queue client: heartbeat (client_test.go)', () => {
  const v1Body = {
    version: 'V2',
    executorName: 'deadbeef',
    jobIds: [1, 2, 3],
    ...telemetry,
    prometheusMetrics: '',
  };
  it('TestHeartbeat: integer jobIds, knownIDs/cancelIDs spelling', async () => {
    fe.script.push({ status: 200, body: '{"knownIDs": ["1"], "cancelIDs": ["1"]}' });
    const got = await single().heartbeat(['1', '2', '3']);
    expectRequest(fe.requests[0], {
      method: 'POST',
      path: '/.executors/queue/test_queue/heartbeat',
      token: 'hunter2',
      body: v1Body,
    });
    expect(got).toEqual({ knownIds: ['1'], cancelIds: ['1'] });
  });
  it('accepts the knownIds/cancelIds spelling and numeric ids', async () => {
    fe.script.push({ status: 200, body: '{"knownIds": [1, "2"], "cancelIds": null}' });
    expect(await single().heartbeat(['1', '2'])).toEqual({ knownIds: ['1', '2'], cancelIds: [] });
  });
  it('sends jobIds:null when nothing runs', async () => {
    fe.script.push({ status: 200, body: '{"knownIds": [], "cancelIds": []}' });
    await single().heartbeat([]);
    expect(fe.requests[0]!.json).toHaveProperty('jobIds', null);
  });
  it('TestHeartbeatBadResponse', async () => {
    fe.script.push({ status: 500 });
    await expect(single().heartbeat(['1', '2', '3'])).rejects.toThrow('unexpected status code 500');
  });
  it('TestMultiQueueHeartbeat: jobIdsByQueue, sorted queueNames, version ""', async () => {
    fe.script.push({
      status: 200,
      body: '{"knownIDs": ["1-test_queue_one"], "cancelIDs": ["2-test_queue_two"]}',
    });
    const got = await multi().heartbeat(['1-test_queue_one', '2-test_queue_two', '3-test_queue_one']);
    expectRequest(fe.requests[0], {
      method: 'POST',
      path: '/.executors/queue/heartbeat',
      token: 'hunter2',
      body: {
        executorName: 'deadbeef',
        jobIdsByQueue: [
          { queueName: 'test_queue_one', jobIds: ['1', '3'] },
          { queueName: 'test_queue_two', jobIds: ['2'] },
        ],
        queueNames: ['test_queue_one', 'test_queue_two'],
        ...telemetry,
        prometheusMetrics: '',
        version: '',
      },
    });
    expect(got).toEqual({ knownIds: ['1-test_queue_one'], cancelIds: ['2-test_queue_two'] });
  });
  it('TestMultiQueueHeartbeatBadResponse', async () => {
    fe.script.push({ status: 500 });
    await expect(multi().heartbeat(['1-test_queue_one'])).rejects.toThrow('unexpected status code 500');
  });
  it('multi-queue ids without a queue: no request is sent', async () => {
    await expect(multi().heartbeat(['1+foo', '3baz'])).rejects.toThrow(
      'failed to parse one or more unexpected job ID formats: 1+foo, 3baz',
    );
    expect(fe.requests).toHaveLength(0);
  });
  it('ping: a heartbeat body with only executorName (and queueNames in multi mode)', async () => {
    await single().ping();
    await multi().ping();
    expect(fe.requests.map((r) => r.path)).toEqual([
      '/.executors/queue/test_queue/heartbeat',
      '/.executors/queue/heartbeat',
    ]);
    const emptyTelemetry = Object.fromEntries(Object.keys(telemetry).map((k) => [k, '']));
    expect(normalizeJson(fe.requests[0]!.json)).toEqual(
      normalizeJson({ version: '', executorName: 'deadbeef', ...emptyTelemetry, prometheusMetrics: '' }),
    );
    expect(normalizeJson(fe.requests[1]!.json)).toEqual(
      normalizeJson({
        version: '',
        executorName: 'deadbeef',
        queueNames: ['test_queue_one', 'test_queue_two'],
        ...emptyTelemetry,
        prometheusMetrics: '',
      }),
    );
  });
});

describe('queue client: log entries (client_test.go)', () => {
  const entry = {
    key: 'foo',
    command: ['ls', '-a'],
    startTime: '2020-04-20T15:29:17Z',
    exitCode: 123,
    out: '<log payload>',
    durationMs: 23123,
  };
  const body = { executorName: 'deadbeef', jobId: 42, ...entry };
  const hdr = { token: 'job-token', jobId: '42', executor: 'deadbeef' };
  it('TestAddExecutionLogEntry: 200 99 -> 99', async () => {
    fe.script.push({ status: 200, body: '99' });
    expect(
      await single()
        .logSink(job({ token: 'job-token' }))
        .add(entry),
    ).toBe(99);
    expectRequest(fe.requests[0], {
      method: 'POST',
      path: '/.executors/queue/test_queue/addExecutionLogEntry',
      ...hdr,
      body,
    });
  });
  it('TestAddExecutionLogEntryBadResponse', async () => {
    fe.script.push({ status: 500 });
    await expect(
      single()
        .logSink(job({ token: 'job-token' }))
        .add(entry),
    ).rejects.toThrow('unexpected status code 500');
  });
  it('TestUpdateExecutionLogEntry: the same body plus entryId', async () => {
    fe.script.push({ status: 204 });
    await single()
      .logSink(job({ token: 'job-token' }))
      .update(99, entry);
    expectRequest(fe.requests[0], {
      method: 'POST',
      path: '/.executors/queue/test_queue/updateExecutionLogEntry',
      ...hdr,
      body: { ...body, entryId: 99 },
    });
  });
  it('TestUpdateExecutionLogEntryBadResponse', async () => {
    fe.script.push({ status: 500 });
    await expect(
      single()
        .logSink(job({ token: 'job-token' }))
        .update(99, entry),
    ).rejects.toThrow('unexpected status code 500');
  });
  it('omitempty: an open entry has no exitCode, out or durationMs; command may be null', async () => {
    fe.script.push({ status: 200, body: '1' });
    await single()
      .logSink(job({ token: 'job-token' }))
      .add({ key: 'teardown.fs', command: null, startTime: entry.startTime });
    expect(fe.requests[0]!.json).toEqual({
      executorName: 'deadbeef',
      jobId: 42,
      key: 'teardown.fs',
      command: null,
      startTime: entry.startTime,
    });
  });
});

describe('files client (files/client_test.go)', () => {
  const files = () =>
    createFilesClient({
      frontendUrl: fe.url,
      password: 'hunter2',
      executorName: 'test-executor',
      retry: NO_RETRY,
    });
  const hdr = (token: string) => ({ token, jobId: '42', executor: 'test-executor' });
  const path = '/.executors/files/some-bucket/foo/bar';
  it('TestNew: an invalid URL is refused like Go url.Parse', () => {
    expect(() => createFilesClient({ frontendUrl: ':foo', password: 'x', executorName: 'e' })).toThrow(
      'parse ":foo": missing protocol scheme',
    );
    expect(() =>
      createFilesClient({ frontendUrl: 'http://some-url.foo', password: 'x', executorName: 'e' }),
    ).not.toThrow();
  });
  it('Exists: file exists (token-executor)', async () => {
    fe.script.push({ status: 200 });
    expect(await files().exists({ id: 42, token: '' }, 'some-bucket', 'foo/bar')).toBe(true);
    expectRequest(fe.requests[0], { method: 'HEAD', path, ...hdr('hunter2') });
    expect(fe.requests[0]!.headers.authorization).toBe('token-executor hunter2');
  });
  it('Exists: file exists with job token', async () => {
    fe.script.push({ status: 200 });
    expect(await files().exists({ id: 42, token: 'sometoken' }, 'some-bucket', 'foo/bar')).toBe(true);
    expect(fe.requests[0]!.headers.authorization).toBe('Bearer sometoken');
    expectRequest(fe.requests[0], { method: 'HEAD', path, ...hdr('sometoken') });
  });
  it('Exists: 404 -> false, no error', async () => {
    fe.script.push({ status: 404 });
    expect(await files().exists({ id: 42, token: '' }, 'some-bucket', 'foo/bar')).toBe(false);
  });
  it('Exists: 500 -> unexpected status code 500', async () => {
    fe.script.push({ status: 500 });
    await expect(files().exists({ id: 42, token: '' }, 'some-bucket', 'foo/bar')).rejects.toThrow(
      'unexpected status code 500',
    );
  });
  it('Get: content (token-executor)', async () => {
    fe.script.push({ status: 200, body: 'hello world!' });
    expect((await files().get({ id: 42, token: '' }, 'some-bucket', 'foo/bar')).toString()).toBe(
      'hello world!',
    );
    expectRequest(fe.requests[0], { method: 'GET', path, ...hdr('hunter2') });
  });
  it('Get: content with job token', async () => {
    fe.script.push({ status: 200, body: 'hello world!' });
    expect(
      (await files().forJob({ id: 42, token: 'sometoken' }).get('some-bucket', 'foo/bar')).toString(),
    ).toBe('hello world!');
    expectRequest(fe.requests[0], { method: 'GET', path, ...hdr('sometoken') });
  });
  it('Get: 500 -> unexpected status code 500', async () => {
    fe.script.push({ status: 500 });
    await expect(files().get({ id: 42, token: '' }, 'some-bucket', 'foo/bar')).rejects.toThrow(
      'unexpected status code 500',
    );
  });
});

describe('auth test (run/validate_test.go)', () => {
  const auth = () =>
    createAuthClient({ frontendUrl: fe.url, password: 'hunter2hunter2', executorName: 'x', retry: NO_RETRY });
  it('200 -> ok', async () => {
    fe.script.push({ status: 200, body: 'ok' });
    await expect(auth().testAuth()).resolves.toEqual({ serverVersion: undefined });
    expectRequest(fe.requests[0], { method: 'GET', path: '/.executors/test/auth', token: 'hunter2hunter2' });
  });
  it('401 -> the site-config message', async () => {
    fe.script.push({ status: 401 });
    await expect(auth().testAuth()).rejects.toThrow(AUTHORIZATION_FAILED);
  });
  it('500 -> failed to validate authorization token: unexpected status code 500', async () => {
    fe.script.push({ status: 500 });
    await expect(auth().testAuth()).rejects.toThrow(
      'failed to validate authorization token: unexpected status code 500',
    );
  });
});

describe('capabilities are negotiated, never assumed', () => {
  function lp(retry: HttpRetryConfig = NO_RETRY): QueueClient {
    return createQueueClient({
      frontendUrl: fe.url,
      password: 'hunter2',
      executorName: 'deadbeef',
      queueName: 'test_queue',
      version: VERSION,
      telemetry: () => telemetry,
      longPollMs: 10_000,
      retry,
    });
  }
  it('a server without the header: no long-poll header, no append', async () => {
    const c = lp();
    await c.ping();
    await c.heartbeat([]);
    fe.script.push({ status: 204 });
    await c.dequeue();
    const deq = fe.requests.find((r) => r.path.endsWith('/dequeue'))!;
    expect(deq.headers[LONG_POLL_HEADER]).toBeUndefined();
    expect(c.logSink(job({ token: 't' })).append).toBeUndefined();
  });
  it('a server advertising long-poll and log-append: both are used', async () => {
    fe.capabilities = 'long-poll, log-append';
    const c = lp();
    await c.ping();
    fe.script.push({ status: 204 });
    await c.dequeue();
    const deq = fe.requests.find((r) => r.path.endsWith('/dequeue'))!;
    expect(deq.headers[LONG_POLL_HEADER]).toBe('10000');
    const sink = c.logSink(job({ token: 't' }));
    expect(sink.append).toBeDefined();
    fe.script.push({ status: 200, body: '{"length":5}' });
    await sink.append!(3, 0, Buffer.from('hello'), { exitCode: 0, durationMs: 12 });
    const app = fe.requests.at(-1)!;
    expect(app.path).toBe('/.executors/queue/test_queue/appendExecutionLogEntry');
    expect(app.json).toEqual({
      executorName: 'deadbeef',
      jobId: 42,
      entryId: 3,
      offset: 0,
      out: 'hello',
      exitCode: 0,
      durationMs: 12,
    });
    expect(app.headers['content-type']).toBe('application/json');
  });
  it('a server advertising log-append-bytes: the output is the body, the fields the query', async () => {
    fe.capabilities = 'long-poll, log-append, log-append-bytes';
    const c = lp({ maxAttempts: 2, delayBaseMs: 1, delayMaxMs: 2, retryAfterMaxMs: 3000, timeoutMs: 0 });
    await c.ping();
    const sink = c.logSink(job({ token: 't' }));
    // The first attempt fails: the retry, after the logger reused its buffer, sends the same bytes.
    fe.script.push({ status: 503 }, { status: 200, body: '{"length":9}' });
    const out = Buffer.from('héllo "\n\u0001');
    const sent = sink.append!(3, 7, out, { exitCode: 0, durationMs: 12 });
    out.fill(0); // the logger reuses its buffer once append returns its promise
    await sent;
    expect(fe.requests.at(-2)!.raw).toBe(fe.requests.at(-1)!.raw);
    const app = fe.requests.at(-1)!;
    expect(app.path).toBe('/.executors/queue/test_queue/appendExecutionLogEntry');
    expect(app.headers['content-type']).toBe('application/octet-stream');
    expect(app.query).toEqual({
      executorName: 'deadbeef',
      jobId: '42',
      entryId: '3',
      offset: '7',
      exitCode: '0',
      durationMs: '12',
    });
    expect(app.raw).toBe('héllo "\n\u0001');
    fe.script.push({ status: 200, body: '{"length":12}' });
    await sink.append!(3, 9, Buffer.from('abc'), {});
    expect(fe.requests.at(-1)!.query).toEqual({
      executorName: 'deadbeef',
      jobId: '42',
      entryId: '3',
      offset: '9',
    });
  });
});

describe('retries (httpcli table)', () => {
  const withRetry = (maxAttempts: number) =>
    createQueueClient({
      frontendUrl: fe.url,
      password: 'hunter2',
      executorName: 'deadbeef',
      queueName: 'test_queue',
      version: VERSION,
      telemetry: () => telemetry,
      retry: { maxAttempts, delayBaseMs: 1, delayMaxMs: 2, retryAfterMaxMs: 3000, timeoutMs: 0 },
    });
  it('retries 500, 502 and 429, then succeeds', async () => {
    fe.script.push({ status: 500 }, { status: 502 }, { status: 429 }, { status: 204 });
    expect(await withRetry(20).dequeue()).toBeNull();
    expect(fe.requests).toHaveLength(4);
  });
  it('does not retry 501 or 4xx', async () => {
    fe.script.push({ status: 501 });
    await expect(withRetry(20).dequeue()).rejects.toThrow('unexpected status code 501');
    fe.script.push({ status: 400 });
    await expect(withRetry(20).dequeue()).rejects.toThrow('unexpected status code 400');
    expect(fe.requests).toHaveLength(2);
  });
  it('gives up after maxAttempts', async () => {
    fe.script.push({ status: 503 }, { status: 503 }, { status: 503 });
    await expect(withRetry(3).dequeue()).rejects.toThrow('unexpected status code 503');
    expect(fe.requests).toHaveLength(3);
  });
  it('a Retry-After over 3s is not waited for', async () => {
    fe.script.push({ status: 503, headers: { 'retry-after': '10' } });
    await expect(withRetry(20).dequeue()).rejects.toThrow('unexpected status code 503');
    expect(fe.requests).toHaveLength(1);
  });
  it('retries transport errors (connection refused)', async () => {
    let calls = 0;
    const counting: typeof fetch = (input, init) => {
      calls++;
      return fetch(input, init);
    };
    const c2 = createQueueClient({
      frontendUrl: 'http://127.0.0.1:1',
      password: 'x',
      executorName: 'e',
      queueName: 'q',
      version: VERSION,
      telemetry: () => telemetry,
      retry: { maxAttempts: 3, delayBaseMs: 1, delayMaxMs: 1, retryAfterMaxMs: 3000, timeoutMs: 0 },
      fetch: counting,
    });
    await expect(c2.dequeue()).rejects.toThrow();
    expect(calls).toBe(3);
  });
});

describe('URL construction (path.Join of the base path)', () => {
  it('keeps a base path and cleans duplicate and trailing slashes', async () => {
    const c = createQueueClient({
      frontendUrl: `${fe.url}/sub//`,
      password: 'hunter2',
      executorName: 'deadbeef',
      queueName: 'test_queue',
      version: VERSION,
      telemetry: () => telemetry,
      retry: NO_RETRY,
    });
    fe.script.push({ status: 204 });
    await c.dequeue();
    expect(fe.requests[0]!.path).toBe('/sub/.executors/queue/test_queue/dequeue');
  });
});
