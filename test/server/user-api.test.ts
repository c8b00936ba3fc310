import http from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { packageVersion } from '../../src/lib/version.js';
import { createRepo, type Harness, startHarness } from './harness.js';

let h: Harness;
let sha: string;
beforeEach(async () => {
  h = await startHarness();
  sha = createRepo(h.reposDir, 'org/repo');
});
afterEach(async () => {
  await h.close();
});

const Q = '/.executors/queue';
type ApiError = {
  error: { code: string; message: string; details?: { path: string; message: string }[]; requestId: string };
};

describe('auth and errors', () => {
  it('401 UNAUTHENTICATED without the API token; executor token is not an API token', async () => {
    for (const auth of [undefined, 'Bearer wrong', `token-executor ${h.config.executorsAccessToken}`]) {
      const res = await fetch(`${h.url}/api/v1/jobs`, { headers: auth ? { authorization: auth } : {} });
      expect(res.status).toBe(401);
      const body = (await res.json()) as ApiError;
      expect(body.error.code).toBe('UNAUTHENTICATED');
      expect(body.error.requestId).toMatch(/^[0-9a-f]{16}$/);
    }
  });

  it('404 and 405 in the error envelope', async () => {
    let res = await h.api('GET', '/nothing');
    expect(res.status).toBe(404);
    expect(((await res.json()) as ApiError).error.code).toBe('NOT_FOUND');
    res = await h.api('DELETE', '/jobs');
    expect(res.status).toBe(405);
    expect(((await res.json()) as ApiError).error.code).toBe('METHOD_NOT_ALLOWED');
    res = await h.api('GET', '/jobs/12345');
    expect(res.status).toBe(404);
  });

  it('413 PAYLOAD_TOO_LARGE over the API body limit, 400 BAD_REQUEST on broken JSON', async () => {
    const big = 'x'.repeat(h.config.apiBodyLimitBytes + 1);
    let res = await h.api('POST', '/jobs', { queue: 'default', steps: [{ image: 'a', run: big }] });
    expect(res.status).toBe(413);
    expect(((await res.json()) as ApiError).error.code).toBe('PAYLOAD_TOO_LARGE');
    res = await fetch(`${h.url}/api/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${h.config.apiToken}`, 'content-type': 'application/json' },
      body: '{"queue":',
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as ApiError).error.code).toBe('BAD_REQUEST');
  });

  it('413 also when the body is streamed without a length', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${h.url}/api/v1/jobs`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${h.config.apiToken}`,
          'content-type': 'application/json',
          'transfer-encoding': 'chunked',
        },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(64 * 1024, 'x');
      let sent = 0;
      const pump = () => {
        while (sent <= h.config.apiBodyLimitBytes) {
          sent += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    expect(status).toBe(413);
  });
});

describe('POST /jobs', () => {
  it('lists every validation problem with its path', async () => {
    const res = await h.api('POST', '/jobs', { queue: 'bad queue!', steps: [{ run: '' }], extra: 1 });
    expect(res.status).toBe(400);
    const body = (await res.json()) as ApiError;
    expect(body.error.code).toBe('VALIDATION');
    const paths = body.error.details!.map((d) => d.path);
    expect(paths).toEqual(expect.arrayContaining(['queue', 'steps[0].image', 'steps[0].run', 'extra']));
    expect(body.error.details!.find((d) => d.path === 'extra')!.message).toContain('unknown field');
  });

  it('resolves a ref to the full sha; unknown repository and revision are 400 with their codes', async () => {
    const res = await h.api('POST', '/jobs', {
      queue: 'default',
      repository: { name: 'org/repo', commit: 'v1' },
      steps: [{ image: 'alpine', run: 'ls' }],
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toMatch(/^\/api\/v1\/jobs\/\d+$/);
    const job = (await res.json()) as { commit: string; repositoryName: string; state: string };
    expect(job).toMatchObject({ commit: sha, repositoryName: 'org/repo', state: 'queued' });
    const short = await h.api('POST', '/jobs', {
      queue: 'default',
      repository: { name: 'org/repo', commit: sha.slice(0, 10) },
      steps: [{ image: 'alpine', run: 'ls' }],
    });
    expect(((await short.json()) as { commit: string }).commit).toBe(sha);
    for (const [repository, code] of [
      [{ name: 'org/nope', commit: 'main' }, 'UNKNOWN_REPOSITORY'],
      [{ name: 'org/repo', commit: 'no-such-branch' }, 'UNKNOWN_REVISION'],
      [{ name: 'org/repo', commit: '--output=/tmp/x' }, 'UNKNOWN_REVISION'],
    ] as const) {
      const r = await h.api('POST', '/jobs', {
        queue: 'default',
        repository,
        steps: [{ image: 'a', run: 'b' }],
      });
      expect(r.status).toBe(400);
      const text = await r.text();
      expect(JSON.parse(text).error.code).toBe(code);
      expect(text).not.toContain(h.reposDir);
    }
  });

  it('never shows secret values: names only, in every response', async () => {
    const res = await h.api('POST', '/jobs', {
      queue: 'default',
      steps: [{ image: 'alpine', run: 'true' }],
      secrets: { TOKEN: 'top-secret-value', OTHER: 'another-secret' },
    });
    const text = await res.text();
    expect(text).not.toContain('top-secret-value');
    const job = JSON.parse(text) as { id: number; spec: { secrets: string[] } };
    expect(job.spec.secrets).toEqual(['TOKEN', 'OTHER']);
    for (const p of [`/jobs/${job.id}`, `/jobs/${job.id}/logs`, '/jobs', `/jobs?queue=default`]) {
      const t = await (await h.api('GET', p)).text();
      expect(t).not.toContain('top-secret-value');
      expect(t).not.toContain('another-secret');
    }
    const canceled = await (await h.api('POST', `/jobs/${job.id}/cancel`)).text();
    expect(canceled).not.toContain('top-secret-value');
  });
});

describe('GET /jobs', () => {
  it('pages newest first with nextBefore and filters by state and queue', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push(await h.submit({ queue: i % 2 ? 'odd' : 'even' }));
    type Page = { jobs: { id: number }[]; total: number; nextBefore: number | null };
    const p1 = (await (await h.api('GET', '/jobs?limit=2')).json()) as Page;
    expect(p1.jobs.map((j) => j.id)).toEqual([ids[4], ids[3]]);
    expect(p1.total).toBe(5);
    const p2 = (await (await h.api('GET', `/jobs?limit=2&before=${p1.nextBefore}`)).json()) as Page;
    expect(p2.jobs.map((j) => j.id)).toEqual([ids[2], ids[1]]);
    const p3 = (await (await h.api('GET', `/jobs?limit=2&before=${p2.nextBefore}`)).json()) as Page;
    expect(p3.jobs.map((j) => j.id)).toEqual([ids[0]]);
    expect(p3.nextBefore).toBeNull();
    const odd = (await (await h.api('GET', '/jobs?queue=odd')).json()) as Page;
    expect(odd.jobs.map((j) => j.id)).toEqual([ids[3], ids[1]]);
    await h.dequeue('even', 'e1');
    const processing = (await (await h.api('GET', '/jobs?state=processing')).json()) as Page;
    expect(processing.jobs.map((j) => j.id)).toEqual([ids[0]]);
  });

  it('400 VALIDATION on bad query parameters, listing each', async () => {
    const res = await h.api('GET', '/jobs?state=nope&limit=0&before=x');
    expect(res.status).toBe(400);
    const body = (await res.json()) as ApiError;
    expect(body.error.details!.map((d) => d.path).sort()).toEqual(['before', 'limit', 'state']);
  });
});

describe('logs', () => {
  it('GET /jobs/:id shows entries without output; /logs with output, per attempt', async () => {
    const id = await h.submit({ maxAttempts: 2 });
    const job = await h.dequeue('default', 'e1');
    const base = { executorName: 'e1', jobId: id };
    await h.job(`${Q}/default/addExecutionLogEntry`, job, 'e1', {
      ...base,
      key: 'a',
      command: ['x'],
      startTime: 't',
      out: 'first',
    });
    await h.job(`${Q}/default/markErrored`, job, 'e1', { ...base, errorMessage: 'e' });
    h.clock.advance(h.config.retryBackoffMaxMs + 1);
    const second = await h.dequeue('default', 'e1');
    await h.job(`${Q}/default/addExecutionLogEntry`, second, 'e1', {
      ...base,
      key: 'b',
      command: null,
      startTime: 't',
      out: 'second',
    });
    const detail = (await (await h.api('GET', `/jobs/${id}`)).json()) as {
      attempts: number;
      logEntries: Record<string, unknown>[];
    };
    expect(detail.attempts).toBe(2);
    expect(detail.logEntries).toEqual([expect.objectContaining({ key: 'b', outLength: 6 })]);
    expect(detail.logEntries[0]).not.toHaveProperty('out');
    const latest = (await (await h.api('GET', `/jobs/${id}/logs`)).json()) as { entries: { out: string }[] };
    expect(latest.entries.map((e) => e.out)).toEqual(['second']);
    const first = (await (await h.api('GET', `/jobs/${id}/logs?attempt=1`)).json()) as {
      entries: { out: string }[];
    };
    expect(first.entries.map((e) => e.out)).toEqual(['first']);
  });

  it('follow=1 streams entry, output and end events until the job ends', async () => {
    const id = await h.submit({});
    const job = await h.dequeue('default', 'e1');
    const base = { executorName: 'e1', jobId: id };
    const res = await h.api('GET', `/jobs/${id}/logs?follow=1`);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    const events: { event: string; data: Record<string, unknown> }[] = [];
    let buf = '';
    const next = async (): Promise<{ event: string; data: Record<string, unknown> }> => {
      for (;;) {
        const i = buf.indexOf('\n\n');
        if (i >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (block.startsWith(':')) continue;
          const event = /^event: (.*)$/m.exec(block)![1]!;
          const data = JSON.parse(/^data: (.*)$/m.exec(block)![1]!);
          events.push({ event, data });
          return { event, data };
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        buf += Buffer.from(value).toString('utf8');
      }
    };
    await h.job(`${Q}/default/addExecutionLogEntry`, job, 'e1', {
      ...base,
      key: 'k',
      command: ['sh'],
      startTime: 't',
      out: 'hello ',
    });
    expect(await next()).toMatchObject({ event: 'entry', data: { entryId: 1, key: 'k' } });
    expect(await next()).toEqual({ event: 'output', data: { attempt: 1, entryId: 1, data: 'hello ' } });
    await h.job(`${Q}/default/updateExecutionLogEntry`, job, 'e1', {
      ...base,
      entryId: 1,
      key: 'k',
      command: ['sh'],
      startTime: 't',
      out: 'hello world',
      exitCode: 0,
    });
    const seen: string[] = [];
    let output = 'hello ';
    for (;;) {
      const e = await next();
      seen.push(e.event);
      if (e.event === 'output') output += e.data.data as string;
      if (e.event === 'entry') expect(e.data.exitCode).toBe(0);
      if (seen.includes('entry') && output === 'hello world') break;
    }
    await h.job(`${Q}/default/markComplete`, job, 'e1', base);
    const end = await next();
    expect(end.event).toBe('end');
    expect(end.data).toMatchObject({ id, state: 'completed' });
    const { done } = await reader.read();
    expect(done).toBe(true);
  });
});

describe('executors, queues, health, metrics', () => {
  it('GET /executors reports activity and compatibility', async () => {
    await h.exec(`${Q}/default/heartbeat`, { executorName: 'sg-old', executorVersion: '5.0.0' });
    await h.exec(`${Q}/default/heartbeat`, { executorName: 'sg-same', executorVersion: '5.6.1' });
    await h.exec(`${Q}/default/heartbeat`, { executorName: 'sg-5.3', executorVersion: '5.3.1' });
    await h.exec(`${Q}/default/heartbeat`, { executorName: 'ours', executorVersion: '0.1.0+executor' });
    // Ours as it reports itself now: judged by its own version (build metadata) against this server's.
    await h.exec(`${Q}/default/heartbeat`, {
      executorName: 'ours-now',
      executorVersion: `5.6.0+executor.${packageVersion()}`,
    });
    await h.exec(`${Q}/default/heartbeat`, {
      executorName: 'ours-ahead',
      executorVersion: '5.6.0+executor.99.0.0',
    });
    type E = { name: string; active: boolean; compatibility: string | null };
    let list = ((await (await h.api('GET', '/executors')).json()) as { executors: E[] }).executors;
    const by = (n: string) => list.find((e) => e.name === n)!;
    expect(by('sg-old')).toMatchObject({ active: true, compatibility: 'OUTDATED' });
    expect(by('sg-same')).toMatchObject({ active: true, compatibility: 'UP_TO_DATE' });
    // The default EXECUTOR_SERVER_SOURCEGRAPH_VERSION is the release whose protocol we implement (5.6).
    expect(by('sg-5.3')).toMatchObject({ active: true, compatibility: 'OUTDATED' });
    expect(by('ours')).toMatchObject({ active: true, compatibility: 'UP_TO_DATE' });
    expect(by('ours-now')).toMatchObject({ active: true, compatibility: 'UP_TO_DATE' });
    expect(by('ours-ahead')).toMatchObject({ active: true, compatibility: 'VERSION_AHEAD' });
    h.clock.advance(15_001);
    list = ((await (await h.api('GET', '/executors')).json()) as { executors: E[] }).executors;
    expect(by('ours')).toMatchObject({ active: false, compatibility: null });
  });

  it('GET /executors pages by name with ?limit and ?after, and counts all and the active', async () => {
    for (const name of ['c', 'a', 'b']) await h.exec(`${Q}/default/heartbeat`, { executorName: name });
    h.clock.advance(15_001);
    await h.exec(`${Q}/default/heartbeat`, { executorName: 'd' });
    type L = {
      executors: { name: string; active: boolean }[];
      total: number;
      active: number;
      nextAfter: string | null;
    };
    const get = async (qs: string) => (await (await h.api('GET', `/executors${qs}`)).json()) as L;
    const names = (l: L) => l.executors.map((e) => e.name);
    const all = await get('');
    expect(names(all)).toEqual(['a', 'b', 'c', 'd']);
    expect(all).toMatchObject({ total: 4, active: 1, nextAfter: null });
    const first = await get('?limit=3');
    expect(names(first)).toEqual(['a', 'b', 'c']);
    expect(first).toMatchObject({ total: 4, active: 1, nextAfter: 'c' });
    const second = await get(`?limit=3&after=${first.nextAfter}`);
    expect(names(second)).toEqual(['d']);
    expect(second).toMatchObject({ total: 4, active: 1, nextAfter: null });
    // A full last page says there may be more; the page after it is empty.
    const full = await get('?limit=2&after=b');
    expect(full.nextAfter).toBe('d');
    expect(names(await get('?limit=2&after=d'))).toEqual([]);
    for (const bad of ['?limit=0', '?limit=1001', '?limit=x', '?after=b']) {
      const r = await h.api('GET', `/executors${bad}`);
      expect(r.status, bad).toBe(400);
      expect(((await r.json()) as ApiError).error.code).toBe('VALIDATION');
    }
  });

  it('GET /queues reports depth, processing and the oldest age', async () => {
    await h.submit({ queue: 'q1' });
    h.clock.advance(5_000);
    await h.submit({ queue: 'q1' });
    await h.submit({ queue: 'q2' });
    await h.dequeue('q2', 'e1');
    const body = (await (await h.api('GET', '/queues')).json()) as {
      queues: { queue: string; depth: number; processing: number; oldestAgeSeconds: number | null }[];
    };
    const q1 = body.queues.find((q) => q.queue === 'q1')!;
    const q2 = body.queues.find((q) => q.queue === 'q2')!;
    expect(q1).toMatchObject({ depth: 2, processing: 0, oldestAgeSeconds: 5 });
    expect(q2).toMatchObject({ depth: 0, processing: 1 });
  });

  it('GET /queues counts the active executors polling each queue, and lists a polled queue with no jobs', async () => {
    await h.submit({ queue: 'waiting' });
    await h.exec(`${Q}/idle/heartbeat`, { executorName: 'one' });
    await h.exec(`${Q}/heartbeat`, { executorName: 'two', queueNames: ['idle', 'waiting'] });
    type Listed = { queue: string; depth: number; pollers: number }[];
    const queues = async () => ((await (await h.api('GET', '/queues')).json()) as { queues: Listed }).queues;
    expect(await queues()).toMatchObject([
      { queue: 'idle', depth: 0, processing: 0, pollers: 2, oldestQueuedAt: null },
      { queue: 'waiting', depth: 1, pollers: 1 },
    ]);
    // Executors not seen for more than 15 s poll nothing; an empty queue nobody polls is not listed.
    h.clock.advance(15_001);
    expect(await queues()).toMatchObject([{ queue: 'waiting', depth: 1, pollers: 0 }]);
    expect(await queues()).toHaveLength(1);
  });

  it('GET /healthz is 200 ok, and 503 once the store fails', async () => {
    let res = await fetch(`${h.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('ok');
    await h.store.close();
    res = await fetch(`${h.url}/healthz`);
    expect(res.status).toBe(503);
    // Any other route with a failed store answers a generic 500 with a request id, no driver text.
    const r = await h.api('GET', '/jobs');
    expect(r.status).toBe(500);
    const body = (await r.json()) as ApiError;
    expect(body.error.code).toBe('INTERNAL');
    expect(body.error.message).toContain(body.error.requestId);
    expect(JSON.stringify(body)).not.toMatch(/sqlite|database|\/tmp|at .*\.ts/i);
    h.store.close = async () => {};
  });

  it('GET /metrics: queue gauges, request counters, executors metrics relabelled', async () => {
    await h.submit({ queue: 'q1' });
    await h.exec(`${Q}/q1/heartbeat`, {
      executorName: 'exec-a',
      prometheusMetrics:
        '# HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total{queue="q1"} 3\nup 1\n',
    });
    await h.exec(`${Q}/q1/heartbeat`, {
      executorName: 'exec-b',
      prometheusMetrics: 'jobs_total{queue="q1"} 4\n',
    });
    let text = await (await fetch(`${h.url}/metrics`)).text();
    expect(text).toContain('src_executor_total{queue="q1"} 1');
    expect(text).toContain('src_executor_processing{queue="q1"} 0');
    expect(text).toContain('src_executor_queued_duration_seconds_total{queue="q1"} 0');
    expect(text).toContain('jobs_total{queue="q1",sg_instance="exec-a",sg_job="sourcegraph-executors"} 3');
    expect(text).toContain('jobs_total{queue="q1",sg_instance="exec-b",sg_job="sourcegraph-executors"} 4');
    expect(text).toContain('up{sg_instance="exec-a",sg_job="sourcegraph-executors"} 1');
    expect(text.match(/# TYPE jobs_total counter/g)).toHaveLength(1);
    expect(text).toMatch(
      /src_executor_server_http_requests_total\{route="\/\.executors\/queue\/:queue\/heartbeat",method="POST",code="200"\} 2/,
    );
    h.clock.advance(31_000);
    text = await (await fetch(`${h.url}/metrics`)).text();
    expect(text).not.toContain('exec-a');
  });

  it('GET /metrics: pollers per queue, 0 for a queue whose jobs nobody polls', async () => {
    await h.submit({ queue: 'stuck' });
    await h.exec(`${Q}/idle/heartbeat`, { executorName: 'exec-a' });
    await h.exec(`${Q}/heartbeat`, { executorName: 'exec-b', queueNames: ['idle', 'other'] });
    const text = await (await fetch(`${h.url}/metrics`)).text();
    expect(text).toContain('# TYPE src_executor_queue_pollers gauge');
    const series = text.split('\n').filter((l) => l.startsWith('src_executor_queue_pollers{'));
    expect(series).toEqual([
      'src_executor_queue_pollers{queue="idle"} 2',
      'src_executor_queue_pollers{queue="other"} 1',
      'src_executor_queue_pollers{queue="stuck"} 0',
    ]);
  });
});
