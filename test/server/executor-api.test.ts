import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeJob } from '../../src/protocol/job.js';
import { EXECUTOR_TOKEN, type Harness, startHarness } from './harness.js';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

const Q = '/.executors/queue';

describe('shared executor token (queue routes)', () => {
  it('GET /.executors/test/auth answers 200 ok', async () => {
    const res = await h.exec('/.executors/test/auth');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
    expect(res.headers.get('x-executor-capabilities')).toBe('long-poll, log-append, log-append-bytes');
  });

  it.each([
    [
      undefined,
      401,
      `HTTP Authorization request header value must be of the following form: 'token-executor "TOKEN"'\n`,
    ],
    [
      'token-executor a b',
      401,
      `HTTP Authorization request header value must be of the following form: 'token-executor "TOKEN"'\n`,
    ],
    [
      'Bearer abc',
      401,
      'unrecognized HTTP Authorization request header scheme (supported values: "token-executor")\n',
    ],
    // "token-executor " (empty token) cannot be sent: HTTP strips trailing header whitespace, so it
    // arrives as one part and gets the form message, as it would in Go.
    [
      'token-executor ',
      401,
      `HTTP Authorization request header value must be of the following form: 'token-executor "TOKEN"'\n`,
    ],
    ['token-executor wrong-token-wrong-token', 401, ''],
  ])('Authorization %j -> %i %j', async (auth, status, text) => {
    const headers: Record<string, string> = {};
    if (auth !== undefined) headers.authorization = auth;
    const res = await fetch(`${h.url}${Q}/default/dequeue`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ executorName: 'e1', version: '5.3.0' }),
    });
    expect(res.status).toBe(status);
    expect(await res.text()).toBe(text);
  });
});

describe('dequeue', () => {
  it('answers 204 with an empty body when nothing is queued', async () => {
    const res = await h.exec(`${Q}/default/dequeue`, { executorName: 'e1', version: '5.3.0' });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
  });

  it('answers 500 worker hostname cannot be empty', async () => {
    const res = await h.exec(`${Q}/default/dequeue`, { version: '5.3.0' });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: 'worker hostname cannot be empty' });
  });

  it('answers 400 text on a body that is not JSON or has wrong types', async () => {
    let res = await h.exec(`${Q}/default/dequeue`, '{not json');
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/^Failed to unmarshal payload: /);
    res = await h.exec(`${Q}/default/dequeue`, { executorName: 42 });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/^Failed to unmarshal payload: .*executorName/);
  });

  it('answers 500 for a version that is not semver, before claiming anything', async () => {
    await h.submit({});
    const res = await h.exec(`${Q}/default/dequeue`, { executorName: 'e1', version: 'banana' });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: 'failed to check version "banana": Invalid Semantic Version' });
    const list = (await (await h.api('GET', '/jobs?state=queued')).json()) as { total: number };
    expect(list.total).toBe(1);
  });

  it('sends payload v1 to old executors and v2 to new ones', async () => {
    await h.submit({ files: { 'a.txt': 'hello' } });
    await h.submit({ files: { 'a.txt': 'hello' } });
    const old = await h.dequeue('default', 'e-old', '4.2.0');
    expect(old.version).toBeUndefined();
    expect(old.dockerAuthConfig).toBeUndefined();
    expect((old.files as Record<string, { content: string }>)['a.txt']!.content).toBe('hello');
    const neu = await h.dequeue('default', 'e-new', '5.3.0');
    expect(neu.version).toBe(2);
    expect(neu.dockerAuthConfig).toEqual({});
    expect((neu.files as Record<string, { content: string }>)['a.txt']!.content).toBe(
      Buffer.from('hello').toString('base64'),
    );
    expect(old.id).not.toBe(neu.id);
  });

  it('builds the Job from the spec: steps, env with secrets, redacted values, repository fields, token, attempt', async () => {
    const id = await h.submit({
      queue: 'batches',
      steps: [
        { key: 'build', image: 'alpine:3', run: 'make', dir: 'sub', env: { A: '1' } },
        { image: 'busybox', run: ['echo a', 'echo b'] },
      ],
      secrets: { API_KEY: 'sekrit-value-1' },
      files: { 'bin/data': { base64: Buffer.from([0, 1, 2, 255]).toString('base64') } },
    });
    const wire = await h.dequeue('batches', 'e1', '5.3.0');
    const job = decodeJob(wire);
    expect(job.id).toBe(id);
    expect(job.token).toMatch(/^[0-9a-f]{40}$/);
    expect(job.attempt).toBe(1);
    expect(job.dockerSteps).toEqual([
      {
        key: 'build',
        image: 'alpine:3',
        commands: ['make'],
        dir: 'sub',
        env: ['A=1', 'API_KEY=sekrit-value-1'],
      },
      { image: 'busybox', commands: ['echo a', 'echo b'], dir: '', env: ['API_KEY=sekrit-value-1'] },
    ]);
    expect(job.redactedValues).toEqual({ 'sekrit-value-1': '${{ secrets.API_KEY }}' });
    expect([...job.files['bin/data']!.content!]).toEqual([0, 1, 2, 255]);
    expect(job.repositoryName).toBe('');
    expect(wire.queue).toBeUndefined();
  });
});

describe('heartbeat', () => {
  it('returns known and cancel ids as strings, and registers the executor', async () => {
    const a = await h.submit({});
    const b = await h.submit({});
    await h.dequeue('default', 'e1');
    await h.dequeue('default', 'e1');
    expect((await h.api('POST', `/jobs/${b}/cancel`)).status).toBe(200);
    const res = await h.exec(`${Q}/default/heartbeat`, {
      version: 'V2',
      executorName: 'e1',
      jobIds: [a, String(b), 999],
      os: 'linux',
      executorVersion: '5.3.0',
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-executor-capabilities')).toBe('long-poll, log-append, log-append-bytes');
    expect(await res.json()).toEqual({ knownIds: [String(a), String(b)], cancelIds: [String(b)] });
    const other = await h.exec(`${Q}/default/heartbeat`, { executorName: 'e2', jobIds: [a] });
    expect(await other.json()).toEqual({ knownIds: [], cancelIds: [] });
    const executors = (await (await h.api('GET', '/executors')).json()) as {
      executors: { name: string; os: string }[];
    };
    expect(executors.executors.find((e) => e.name === 'e1')?.os).toBe('linux');
  });

  it('answers 500 when the executor name is empty', async () => {
    const res = await h.exec(`${Q}/default/heartbeat`, { jobIds: [] });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: 'worker hostname cannot be empty' });
  });
});

describe('multi-queue', () => {
  it('dequeues only from non-empty queues, sets job.queue and suffixes heartbeat ids', async () => {
    const id = await h.submit({ queue: 'codeintel' });
    await h.exec(`${Q}/heartbeat`, { executorName: 'm1', queueNames: ['batches', 'codeintel'] });
    const res = await h.exec(`${Q}/dequeue`, {
      executorName: 'm1',
      version: '5.3.0',
      queues: ['batches', 'codeintel'],
    });
    expect(res.status).toBe(200);
    const job = (await res.json()) as { id: number; queue: string; token: string };
    expect(job).toMatchObject({ id, queue: 'codeintel' });
    await h.api('POST', `/jobs/${id}/cancel`);
    const hb = await h.exec(`${Q}/heartbeat`, {
      executorName: 'm1',
      queueNames: ['batches', 'codeintel'],
      jobIdsByQueue: [{ queueName: 'codeintel', jobIds: [String(id)] }],
    });
    expect(await hb.json()).toEqual({ knownIds: [`${id}-codeintel`], cancelIds: [`${id}-codeintel`] });
    // Job routes go to the job's queue.
    const mark = await h.job(`${Q}/codeintel/markFailed`, job, 'm1', {
      executorName: 'm1',
      jobId: id,
      errorMessage: 'x',
    });
    expect(mark.status).toBe(204);
    const after = (await (await h.api('GET', `/jobs/${id}`)).json()) as { state: string };
    expect(after.state).toBe('canceled');
  });

  it('answers 204 for no queues and when all are empty', async () => {
    expect((await h.exec(`${Q}/dequeue`, { executorName: 'm1', version: '5.3.0', queues: [] })).status).toBe(
      204,
    );
    expect(
      (await h.exec(`${Q}/dequeue`, { executorName: 'm1', version: '5.3.0', queues: ['x', 'y'] })).status,
    ).toBe(204);
  });

  it('picks among non-empty queues by weight', async () => {
    await h.close();
    let r = 0.99;
    h = await startHarness({ env: { EXECUTOR_SERVER_QUEUE_WEIGHTS: 'a=1,b=3' }, random: () => r });
    for (let i = 0; i < 2; i++) {
      await h.submit({ queue: 'a' });
      await h.submit({ queue: 'b' });
    }
    const pick = async () => {
      const res = await h.exec(`${Q}/dequeue`, { executorName: 'm1', version: '5.3.0', queues: ['a', 'b'] });
      return ((await res.json()) as { queue: string }).queue;
    };
    // Weights 1:3 split [0, 1) at 0.25.
    r = 0.2;
    expect(await pick()).toBe('a');
    r = 0.3;
    expect(await pick()).toBe('b');
    r = 0.1;
    expect(await pick()).toBe('a');
    // Queue a is empty now: whatever the draw, b is picked.
    r = 0.01;
    expect(await pick()).toBe('b');
  });

  it('refuses a heartbeat without queueNames or with a foreign queue', async () => {
    let res = await h.exec(`${Q}/heartbeat`, { executorName: 'm1' });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: 'queueNames must be set for multi-queue heartbeats' });
    res = await h.exec(`${Q}/heartbeat`, {
      executorName: 'm1',
      queueNames: ['a', 'b'],
      jobIdsByQueue: [{ queueName: 'c', jobIds: ['1'] }],
    });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({
      error:
        "unsupported queue name(s) 'c' submitted in queueJobIds, executor is configured for queues 'a, b'",
    });
  });
});

describe('job routes', () => {
  it('marks complete once: 204, then 404 null, and the token dies', async () => {
    const id = await h.submit({});
    const job = await h.dequeue('default', 'e1');
    const ok = await h.job(`${Q}/default/markComplete`, job, 'e1', { executorName: 'e1', jobId: id });
    expect(ok.status).toBe(204);
    expect(await ok.text()).toBe('');
    const again = await h.job(`${Q}/default/markComplete`, job, 'e1', { executorName: 'e1', jobId: id });
    expect(again.status).toBe(401);
    expect(await again.text()).toBe('invalid token\n');
  });

  it('answers 404 null when marking a job that is not processing (shared-token path)', async () => {
    const id = await h.submit({});
    await h.ping('default', 'e1');
    const res = await h.exec(
      `${Q}/default/markComplete`,
      { executorName: 'e1', jobId: id },
      {
        'x-sourcegraph-job-id': String(id),
        'x-sourcegraph-executor-name': 'e1',
      },
    );
    expect(res.status).toBe(404);
    expect(await res.text()).toBe('null\n');
  });

  it('add returns the entry id; update stores the new suffix; refused writes are 500 unknown job', async () => {
    const id = await h.submit({});
    const job = await h.dequeue('default', 'e1');
    const entry = { key: 'step.docker.0', command: ['sh', '-c', 'x'], startTime: '2026-01-01T00:00:00Z' };
    const add = await h.job(`${Q}/default/addExecutionLogEntry`, job, 'e1', {
      executorName: 'e1',
      jobId: id,
      ...entry,
      out: 'one\n',
    });
    expect(add.status).toBe(200);
    expect(await add.json()).toBe(1);
    const upd = await h.job(`${Q}/default/updateExecutionLogEntry`, job, 'e1', {
      executorName: 'e1',
      jobId: id,
      entryId: 1,
      ...entry,
      out: 'one\ntwo\n',
      exitCode: 0,
      durationMs: 5,
    });
    expect(upd.status).toBe(204);
    const missing = await h.job(`${Q}/default/updateExecutionLogEntry`, job, 'e1', {
      executorName: 'e1',
      jobId: id,
      entryId: 7,
      ...entry,
    });
    expect(missing.status).toBe(500);
    expect(await missing.json()).toEqual({ error: 'unknown job' });
    const logs = (await (await h.api('GET', `/jobs/${id}/logs`)).json()) as {
      entries: { out: string; exitCode: number }[];
    };
    expect(logs.entries).toEqual([
      expect.objectContaining({ out: 'one\ntwo\n', exitCode: 0, key: 'step.docker.0' }),
    ]);
  });

  it('appendExecutionLogEntry: 200 with the length, idempotent, 409 on a gap, 500 when fenced out', async () => {
    const id = await h.submit({});
    const job = await h.dequeue('default', 'e1');
    const base = { executorName: 'e1', jobId: id };
    await h.job(`${Q}/default/addExecutionLogEntry`, job, 'e1', {
      ...base,
      key: 'k',
      command: null,
      startTime: 't',
    });
    const append = (offset: number, out: string) =>
      h.job(`${Q}/default/appendExecutionLogEntry`, job, 'e1', { ...base, entryId: 1, offset, out });
    let res = await append(0, 'héllo ');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ length: 7 });
    res = await append(0, 'héllo ');
    expect(await res.json()).toEqual({ length: 7 });
    res = await append(20, 'x');
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({ length: 7 });
    res = await append(7, 'world');
    expect(await res.json()).toEqual({ length: 12 });
    await h.job(`${Q}/default/markComplete`, job, 'e1', base);
    await h.ping('default', 'e1');
    res = await h.exec(
      `${Q}/default/appendExecutionLogEntry`,
      { ...base, entryId: 1, offset: 12, out: '!' },
      {
        'x-sourcegraph-job-id': String(id),
        'x-sourcegraph-executor-name': 'e1',
      },
    );
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: 'unknown job' });
  });

  it('masks secret values that reach the server in log output and failure messages', async () => {
    const id = await h.submit({ secrets: { TOKEN: 'hunter2hunter2' } });
    const job = await h.dequeue('default', 'e1');
    const base = { executorName: 'e1', jobId: id };
    await h.job(`${Q}/default/addExecutionLogEntry`, job, 'e1', {
      ...base,
      key: 'k',
      command: ['echo', 'hunter2hunter2'],
      startTime: 't',
      out: 'leak: hunter2hunter2\n',
    });
    await h.job(`${Q}/default/markFailed`, job, 'e1', {
      ...base,
      errorMessage: 'failed with hunter2hunter2',
    });
    for (const p of [`/jobs/${id}`, `/jobs/${id}/logs`, '/jobs']) {
      const text = await (await h.api('GET', p)).text();
      expect(text).not.toContain('hunter2hunter2');
    }
    const logs = (await (await h.api('GET', `/jobs/${id}/logs`)).json()) as { entries: { out: string }[] };
    expect(logs.entries[0]!.out).toBe('leak: **************\n');
  });
});

describe('job token matrix', () => {
  let id: number;
  let job: { id: number; token: string };
  beforeEach(async () => {
    id = await h.submit({});
    job = await h.dequeue('default', 'e1');
  });
  const call = (headers: Record<string, string>, body: unknown = { executorName: 'e1', jobId: id }) =>
    fetch(`${h.url}${Q}/default/markComplete`, { method: 'POST', headers, body: JSON.stringify(body) });
  const full = () => ({
    authorization: `Bearer ${job.token}`,
    'x-sourcegraph-job-id': String(id),
    'x-sourcegraph-executor-name': 'e1',
  });

  it.each([
    [
      { authorization: '' },
      401,
      `HTTP Authorization request header value must be of the following form: 'Bearer "TOKEN"' or 'token-executor TOKEN'\n`,
    ],
    [
      { authorization: 'Basic abc' },
      401,
      'unrecognized HTTP Authorization request header scheme (supported values: "Bearer", "token-executor")\n',
    ],
    [{ authorization: 'token-executor nope' }, 403, ''],
    [{ 'x-sourcegraph-job-id': '' }, 400, "job ID not provided in header 'X-Sourcegraph-Job-ID'\n"],
    [
      { 'x-sourcegraph-job-id': 'abc' },
      400,
      'failed to parse Job ID: strconv.Atoi: parsing "abc": invalid syntax\n',
    ],
    [{ 'x-sourcegraph-executor-name': '' }, 400, 'worker hostname cannot be empty\n'],
    [{ authorization: 'Bearer zz-not-hex' }, 401, 'invalid token\n'],
    [{ authorization: `Bearer ${'ab'.repeat(20)}` }, 401, 'invalid token\n'],
  ])('headers %j -> %i', async (override, status, text) => {
    const headers = { ...full(), ...override };
    for (const [k, v] of Object.entries(override))
      if (v === '' && k !== 'authorization') delete (headers as Record<string, string>)[k];
    const res = await call(headers);
    expect(res.status).toBe(status);
    expect(await res.text()).toBe(text);
  });

  it('refuses a token used for another job id, queue or executor (403)', async () => {
    const other = await h.submit({});
    let res = await call(
      { ...full(), 'x-sourcegraph-job-id': String(other) },
      { executorName: 'e1', jobId: other },
    );
    expect(res.status).toBe(403);
    expect(await res.text()).toBe('invalid token\n');
    res = await fetch(`${h.url}${Q}/otherqueue/markComplete`, {
      method: 'POST',
      headers: full(),
      body: JSON.stringify({ executorName: 'e1', jobId: id }),
    });
    expect(res.status).toBe(403);
    await h.ping('default', 'e2');
    res = await call({ ...full(), 'x-sourcegraph-executor-name': 'e2' }, { executorName: 'e2', jobId: id });
    expect(res.status).toBe(403);
  });

  it('refuses a body that disagrees with the headers (403)', async () => {
    let res = await call(full(), { executorName: 'e2', jobId: id });
    expect(res.status).toBe(403);
    res = await call(full(), { executorName: 'e1', jobId: id + 1 });
    expect(res.status).toBe(403);
    // The shared-token path too.
    res = await call(
      {
        authorization: `token-executor ${EXECUTOR_TOKEN}`,
        'x-sourcegraph-job-id': String(id),
        'x-sourcegraph-executor-name': 'e1',
      },
      { executorName: 'e1', jobId: id + 1 },
    );
    expect(res.status).toBe(403);
    // Nothing was marked.
    expect((await call(full())).status).toBe(204);
  });

  it('refuses an executor name never seen in a heartbeat (401)', async () => {
    await h.store.deleteExecutorsSeenBefore(h.clock.now() + 1);
    const res = await call(full());
    expect(res.status).toBe(401);
    expect(await res.text()).toBe('invalid token\n');
  });

  it('accepts the shared token for backward compatibility', async () => {
    const res = await call({
      authorization: `token-executor ${EXECUTOR_TOKEN}`,
      'x-sourcegraph-job-id': String(id),
      'x-sourcegraph-executor-name': 'e1',
    });
    expect(res.status).toBe(204);
  });
});

describe('files', () => {
  it('references large files and serves them only to the job', async () => {
    await h.close();
    h = await startHarness({ env: { EXECUTOR_SERVER_FILE_INLINE_LIMIT: '16' } });
    const big = 'x'.repeat(100);
    const id = await h.submit({ files: { 'small.txt': 'tiny', 'big.txt': big } });
    const other = await h.submit({});
    const job = await h.dequeue('default', 'e1');
    const otherJob = await h.dequeue('default', 'e2');
    const files = job.files as Record<string, { content?: string; bucket?: string; key?: string }>;
    expect(files['small.txt']!.content).toBe(Buffer.from('tiny').toString('base64'));
    expect(files['big.txt']).toMatchObject({ bucket: 'job-files', key: `${id}/1` });
    expect(files['big.txt']!.content).toBeUndefined();
    const get = (method: string, key: string, j: { id: number; token: string }, executor: string) =>
      fetch(`${h.url}/.executors/files/job-files/${key}`, {
        method,
        headers: {
          authorization: `Bearer ${j.token}`,
          'x-sourcegraph-job-id': String(j.id),
          'x-sourcegraph-executor-name': executor,
        },
      });
    let res = await get('GET', `${id}/1`, job, 'e1');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(big);
    res = await get('HEAD', `${id}/1`, job, 'e1');
    expect(res.status).toBe(200);
    res = await get('HEAD', `${id}/9`, job, 'e1');
    expect(res.status).toBe(404);
    res = await get('GET', `${id}/1`, otherJob, 'e2');
    expect(res.status).toBe(403);
    expect(other).toBe(otherJob.id);
    await h.job(`${Q}/default/markComplete`, job, 'e1', { executorName: 'e1', jobId: id });
    res = await get('GET', `${id}/1`, job, 'e1');
    expect(res.status).toBe(401);
  });
});

describe('bad input', () => {
  it('413 on an executor body over the limit', async () => {
    await h.close();
    h = await startHarness({ env: { EXECUTOR_SERVER_EXECUTOR_BODY_LIMIT: '2Ki' } });
    const res = await h.exec(`${Q}/default/heartbeat`, {
      executorName: 'e1',
      prometheusMetrics: 'x'.repeat(5000),
    });
    expect(res.status).toBe(413);
  });

  it('405 on a wrong method and 404 on an unknown route', async () => {
    let res = await fetch(`${h.url}${Q}/default/dequeue`, { method: 'GET' });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    res = await fetch(`${h.url}/.executors/nothing`);
    expect(res.status).toBe(404);
  });
});
