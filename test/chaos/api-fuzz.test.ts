/**
 * API robustness and the authorisation matrix, against a real server over loopback HTTP.
 *
 * Fuzz: at least 10,000 malformed requests spread over every route of /.executors and /api/v1
 * (bad JSON, wrong types, huge numbers, 10 MiB bodies, broken auth headers, odd unicode, unknown
 * fields, bad ids in paths and headers), with and without valid credentials. Pass: no status
 * >= 500 except the few 500s that Sourcegraph's contract itself prescribes (EXPECTED_500), no body
 * that shows internals (stack frames, source paths, SQL or driver text), no unexpected-error log
 * line, and the server still healthy afterwards.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeDemoRepo } from '../helpers/repos.js';
import { type ChaosServer, countingJob, startChaosServer } from './harness.js';
import { CHAOS_SEED, createRandom, publish, scaled } from './scale.js';

const REQUESTS = scaled(10_000, 30_000);
const BIG_BODIES = scaled(12, 40);
const RAW_REQUESTS = scaled(300, 3000);

/** The 500 answers Sourcegraph's handlers give and ours copy (docs/protocol.md). */
const EXPECTED_500 = [
  /^\{"error":"worker hostname cannot be empty"\}$/,
  /^\{"error":"unknown job"\}$/,
  /^\{"error":"failed to check version .*"\}$/,
  /^\{"error":"queueNames must be set for multi-queue heartbeats"\}$/,
  /^\{"error":"unsupported queue name\(s\) .*"\}$/,
];
const INTERNALS =
  /\bat [\w$.<>]+ \(|node_modules|\/src\/|\.ts:\d|\.js:\d|SQLITE_|better-sqlite3|sqlite3?\b|syntax error at|duplicate key|relation "|ECONNREFUSED|TypeError|ReferenceError|Cannot read propert|undefined is not/i;

interface Res {
  status: number;
  body: string;
}

const agent = new http.Agent({ keepAlive: false, maxSockets: 8 });

function request(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Buffer | string,
): Promise<Res> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers, agent }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    // An explicit length: Node's client sends a DELETE (or GET/HEAD) body with neither
    // Content-Length nor chunked framing, which the server rightly reads as the start of the next
    // request; ill-framed HTTP is exercised on its own below (rawFraming).
    if (body !== undefined) req.setHeader('content-length', String(Buffer.byteLength(body)));
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

describe('API fuzz and authorisation matrix', () => {
  let dir: string;
  let server: ChaosServer;
  let sha: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chaos-api-'));
    // The fuzz sends thousands of broken credentials to test the authorisation, not the
    // authentication-failure limiter (test/server/auth-limit.test.ts), so the limit is out of reach.
    server = await startChaosServer({
      dir: join(dir, 'server'),
      serverEnv: { EXECUTOR_SERVER_AUTH_FAILURE_LIMIT: '1000000' },
    });
    sha = makeDemoRepo(server.config.reposDir).first;
    const other = mkdtempSync(join(tmpdir(), 'chaos-api-repo-'));
    makeDemoRepo(other);
    renameSync(join(other, 'demo', 'hello'), join(server.config.reposDir, 'demo', 'other'));
  });
  afterAll(async () => {
    agent.destroy();
    await server?.stop();
  });

  const shared = () => ({
    authorization: `token-executor ${server.executorsAccessToken}`,
    'content-type': 'application/json',
  });
  const json = (v: unknown) => JSON.stringify(v);

  async function register(name: string, queue = 'chaos') {
    const r = await request(
      server.url,
      'POST',
      `/.executors/queue/${queue}/heartbeat`,
      shared(),
      json({ executorName: name, jobIds: [] }),
    );
    expect(r.status).toBe(200);
  }
  async function dequeue(name: string, queue = 'chaos'): Promise<{ id: number; token: string }> {
    const r = await request(
      server.url,
      'POST',
      `/.executors/queue/${queue}/dequeue`,
      shared(),
      json({ executorName: name, version: '0.0.0+executor' }),
    );
    expect(r.status).toBe(200);
    return JSON.parse(r.body) as { id: number; token: string };
  }
  const jobAuth = (token: string, jobId: number | string, executor: string) => ({
    authorization: `Bearer ${token}`,
    'x-sourcegraph-job-id': String(jobId),
    'x-sourcegraph-executor-name': executor,
    'content-type': 'application/json',
  });

  it(`${REQUESTS} malformed requests: no unexpected 5xx, no internals, server healthy`, async () => {
    const random = createRandom(CHAOS_SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    await register('fuzz-exec');
    const submitted = await server.api.submit(countingJob(3, { repoCommit: sha }));
    const { id: jobId, token } = await dequeue('fuzz-exec');
    expect(jobId).toBe(submitted.id);

    const routes: [string, string][] = [
      ['GET', '/.executors/test/auth'],
      ['POST', '/.executors/queue/chaos/dequeue'],
      ['POST', '/.executors/queue/dequeue'],
      ['POST', '/.executors/queue/chaos/heartbeat'],
      ['POST', '/.executors/queue/heartbeat'],
      ['POST', '/.executors/queue/chaos/addExecutionLogEntry'],
      ['POST', '/.executors/queue/chaos/updateExecutionLogEntry'],
      ['POST', '/.executors/queue/chaos/appendExecutionLogEntry'],
      ['POST', '/.executors/queue/chaos/markComplete'],
      ['POST', '/.executors/queue/chaos/markErrored'],
      ['POST', '/.executors/queue/chaos/markFailed'],
      ['GET', '/.executors/git/demo/hello/info/refs?service=git-upload-pack'],
      ['POST', '/.executors/git/demo/hello/git-upload-pack'],
      ['GET', `/.executors/files/job-files/${jobId}/0`],
      ['HEAD', `/.executors/files/job-files/${jobId}/0`],
      ['POST', '/api/v1/jobs'],
      ['GET', '/api/v1/jobs'],
      ['GET', `/api/v1/jobs/${jobId}`],
      ['GET', `/api/v1/jobs/${jobId}/logs`],
      ['POST', `/api/v1/jobs/${jobId}/cancel`],
      ['POST', `/api/v1/jobs/${jobId}/retry`],
      ['GET', '/api/v1/executors'],
      ['GET', '/api/v1/queues'],
      ['GET', '/healthz'],
      ['GET', '/metrics'],
    ];
    const oddPaths = [
      '/api/v1/jobs/99999999999999999999999',
      '/api/v1/jobs/-1',
      '/api/v1/jobs/1e3',
      '/api/v1/jobs/%ff%fe',
      '/api/v1/jobs/%F0%9F%92%A5/logs?attempt=-5',
      `/api/v1/jobs/${jobId}/logs?attempt=99999999999999999999&follow=0`,
      '/api/v1/jobs?limit=1e400&before=abc&state=%00',
      '/api/v1/jobs?limit=-1&queue=%ED%A0%80',
      '/.executors/queue/%00/dequeue',
      '/.executors/queue/%ff/heartbeat',
      '/.executors/queue/../../etc/passwd/markComplete',
      '/.executors/git/../../../etc/passwd/info/refs',
      '/.executors/git/demo/hello/../../other/info/refs?service=git-upload-pack',
      '/.executors/files/job-files/../../x/0',
      `/.executors/files/job-files/${jobId}/99999999999999999999`,
      '/.executors/files/other-bucket/1/0',
    ];
    const oddStrings = [
      '',
      ' ',
      '\u0000',
      '\ud800',
      '\u202e\u0041',
      '💥'.repeat(100),
      'a'.repeat(70_000),
      '%s%n',
      '${{ secrets.X }}',
      "'; DROP TABLE jobs; --",
      '../..',
      '\\u0000',
    ];
    const oddValues: unknown[] = [
      null,
      true,
      0,
      -1,
      1e308,
      -1e308,
      2 ** 53 + 1,
      1e20,
      1.5,
      [],
      {},
      [[[[[]]]]],
      ...oddStrings,
    ];
    const fieldNames = [
      'executorName',
      'version',
      'jobId',
      'jobIds',
      'queues',
      'queueNames',
      'jobIdsByQueue',
      'entryId',
      'offset',
      'out',
      'key',
      'command',
      'startTime',
      'exitCode',
      'durationMs',
      'errorMessage',
      'numCPUs',
      'memory',
      'queue',
      'steps',
      'repository',
      'secrets',
      'files',
      'timeout',
      'maxAttempts',
      'priority',
      '__proto__',
      'constructor',
    ];
    const badJson = [
      '{',
      '}',
      '[',
      '{"a":}',
      '{"executorName":"x",}',
      'nul',
      '"',
      "{'a':1}",
      '\u0000',
      '{"a":1}{"b":2}',
      '1e99999',
      '-',
      '[1,2,',
      '\ufeff{}',
      '{"a":"\\ud800"}',
      '{"jobId":1e400}',
    ];
    const authHeaders: Record<string, string>[] = [
      {},
      { authorization: '' },
      { authorization: 'Bearer' },
      { authorization: 'Bearer ' },
      { authorization: 'token-executor' },
      { authorization: 'token-executor  ' },
      { authorization: 'token-executor a b' },
      { authorization: 'Basic Zm9vOmJhcg==' },
      { authorization: `Bearer ${'f'.repeat(40)}` },
      { authorization: `Bearer ${'z'.repeat(8000)}` },
      { authorization: 'Bearer \u00ff\u00fe' },
      { authorization: `token-executor ${server.executorsAccessToken}x` },
      { authorization: `Bearer ${server.apiToken}` },
      shared(),
      jobAuth(token, jobId, 'fuzz-exec'),
      jobAuth(token, 'abc', 'fuzz-exec'),
      jobAuth(token, '99999999999999999999', 'fuzz-exec'),
      jobAuth(token, '-1', ''),
      jobAuth(token, jobId, '\u00e9\u00ff'),
      jobAuth(token.toUpperCase(), jobId, 'fuzz-exec'),
    ];
    const randomJson = (depth = 0): unknown => {
      const r = random();
      if (depth > 3 || r < 0.4) return pick(oddValues);
      if (r < 0.7) {
        const o: Record<string, unknown> = {};
        const n = Math.floor(random() * 6);
        for (let i = 0; i < n; i++) o[pick(fieldNames)] = randomJson(depth + 1);
        return o;
      }
      return Array.from({ length: Math.floor(random() * 4) }, () => randomJson(depth + 1));
    };
    const bodyFor = (i: number): string | Buffer | undefined => {
      const r = random();
      if (i < BIG_BODIES) return Buffer.alloc(10 * 1024 * 1024 + (i % 3), i % 2 ? '{' : 'a');
      if (r < 0.1) return undefined;
      if (r < 0.3) return pick(badJson);
      if (r < 0.4) return '['.repeat(5000 + Math.floor(random() * 100_000));
      return JSON.stringify(randomJson());
    };

    const statuses = new Map<number, number>();
    const failures: string[] = [];
    let expected500 = 0;
    let hangUps = 0;
    let bigBodyHangUps = 0;
    const one = async (i: number) => {
      const useOdd = random() < 0.15;
      const [method, path] = useOdd
        ? [pick(['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'PATCH']), pick(oddPaths)]
        : pick(routes);
      const headers: Record<string, string> = { ...pick(authHeaders) };
      if (random() < 0.2)
        headers['content-type'] = pick([
          'text/plain',
          'application/x-www-form-urlencoded',
          'application/json; charset=utf-16',
          '',
        ]);
      if (random() < 0.1) headers[LONG_POLL] = pick(['-1', 'abc', '1e9', '1']);
      const body = method === 'GET' || method === 'HEAD' ? undefined : bodyFor(i);
      const res = await request(server.directUrl, method, path, headers, body).catch((e: unknown) => ({
        status: -1,
        body: String(e),
      }));
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      // A connection closed without an answer is a failure, except for a 10 MiB body, which the
      // server may cut off once it has answered 413.
      if (res.status === -1) {
        if (Buffer.isBuffer(body) && body.length > 1024 * 1024) bigBodyHangUps++;
        else {
          hangUps++;
          failures.push(`${method} ${path}: connection closed without an answer: ${res.body}`);
        }
      }
      if (res.status >= 500) {
        if (res.status === 500 && EXPECTED_500.some((r) => r.test(res.body.trim()))) expected500++;
        else failures.push(`${method} ${path}: ${res.status} ${res.body.slice(0, 200)}`);
      }
      if (INTERNALS.test(res.body))
        failures.push(`${method} ${path}: internals in body: ${res.body.slice(0, 200)}`);
    };
    const LONG_POLL = 'x-executor-long-poll-ms';
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (;;) {
          const i = next++;
          if (i >= REQUESTS) return;
          await one(i);
        }
      }),
    );
    const unexpectedLogs = server.logLines.filter((l) => /handler failed|unhandled|internal error/i.test(l));
    const health = await request(server.url, 'GET', '/healthz', {});
    publish('API fuzz', {
      requests: REQUESTS,
      bigBodies: BIG_BODIES,
      statuses: Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])),
      expected500,
      hangUps,
      bigBodyHangUps,
      failures: failures.length,
      unexpectedLogLines: unexpectedLogs.length,
    });
    expect(failures.slice(0, 20)).toEqual([]);
    expect(unexpectedLogs.slice(0, 5)).toEqual([]);
    expect(health.status).toBe(200);
    expect([...statuses.keys()].some((s) => s >= 400 && s < 500)).toBe(true);
  }, 900_000);

  it(`${RAW_REQUESTS} requests with broken HTTP framing: answered below 500 or closed, server healthy`, async () => {
    const random = createRandom(CHAOS_SEED + 1);
    const auth = `authorization: token-executor ${server.executorsAccessToken}\r\n`;
    const hb = '/.executors/queue/chaos/heartbeat';
    const framings: (() => string)[] = [
      () => `DELETE /api/v1/jobs/1 HTTP/1.1\r\nhost: x\r\n\r\n{"a":1}`,
      () =>
        `POST ${hb} HTTP/1.1\r\nhost: x\r\n${auth}transfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
      () =>
        `POST ${hb} HTTP/1.1\r\nhost: x\r\n${auth}content-length: 5\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
      () => `POST ${hb} HTTP/1.1\r\nhost: x\r\n${auth}content-length: 5\r\ncontent-length: 7\r\n\r\n{"a":1}`,
      () => `POST ${hb} HTTP/1.1\r\nhost: x\r\n${auth}content-length: -1\r\n\r\n{}`,
      () => `POST ${hb} HTTP/1.1\r\nhost: x\r\n${auth}content-length: 100\r\n\r\n{"short":`,
      () =>
        `GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000 + Math.floor(random() * 50_000))}\r\n\r\n`,
      () => `GET /healthz HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n`,
      () => `GET /heal\x00thz HTTP/1.1\r\nhost: x\r\n\r\n`,
      () => `GET /healthz HTTP/9.9\r\nhost: x\r\n\r\n`,
      () => `GARBAGE\r\n\r\n`,
      () => `\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03`,
      () =>
        `GET /healthz HTTP/1.1\r\nhost: x\r\n\r\nGET /api/v1/jobs HTTP/1.1\r\nhost: x\r\n\r\nPOST ${hb} HTTP/1.1\r\n${auth}`,
      () =>
        `POST ${hb} HTTP/1.1\r\nhost: x\r\n${auth}transfer-encoding: chunked\r\n\r\n${'f'.repeat(20)}\r\n`,
      () => `GET ${'/a'.repeat(10_000)} HTTP/1.1\r\nhost: x\r\n\r\n`,
    ];
    const statuses = new Map<string, number>();
    const failures: string[] = [];
    let closedWithoutAnswer = 0;
    const port = Number(new URL(server.directUrl).port);
    const one = (payload: string) =>
      new Promise<string>((resolve) => {
        const sock = net.connect(port, '127.0.0.1');
        let data = '';
        const done = () => {
          clearTimeout(timer);
          sock.destroy();
          resolve(data);
        };
        // A server that neither answers nor closes within this is counted as an answer-less close.
        const timer = setTimeout(done, 5000);
        sock.on('data', (d: Buffer) => {
          data += d.toString('latin1');
        });
        sock.on('error', done);
        sock.on('close', done);
        sock.write(Buffer.from(payload, 'latin1'), () => sock.end());
      });
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (;;) {
          const i = next++;
          if (i >= RAW_REQUESTS) return;
          const kind = Math.floor(random() * framings.length);
          const data = await one(framings[kind]!());
          const codes = [...data.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
          if (codes.length === 0) closedWithoutAnswer++;
          for (const c of codes) {
            statuses.set(String(c), (statuses.get(String(c)) ?? 0) + 1);
            if (c >= 500) failures.push(`framing ${kind}: ${c} ${data.slice(0, 200)}`);
          }
          if (INTERNALS.test(data)) failures.push(`framing ${kind}: internals: ${data.slice(0, 200)}`);
        }
      }),
    );
    const unexpectedLogs = server.logLines.filter((l) => /handler failed|unhandled|internal error/i.test(l));
    const health = await request(server.url, 'GET', '/healthz', {});
    publish('HTTP framing fuzz', {
      requests: RAW_REQUESTS,
      statuses: Object.fromEntries([...statuses].sort()),
      closedWithoutAnswer,
      failures: failures.length,
      unexpectedLogLines: unexpectedLogs.length,
    });
    expect(failures.slice(0, 20)).toEqual([]);
    expect(unexpectedLogs.slice(0, 5)).toEqual([]);
    expect(health.status).toBe(200);
    expect(statuses.get('400') ?? 0).toBeGreaterThan(0);
  }, 300_000);

  it('authorisation matrix: a job token is refused for anything but its own live attempt', async () => {
    // Jobs left by the fuzz (its job may have been requeued by now) must not be dequeued here.
    for (const j of (await server.store.listJobs({ limit: 500 })).jobs)
      if (!['completed', 'failed', 'canceled'].includes(j.state)) await server.api.cancel(j.id);
    await register('auth-e1');
    await register('auth-e2');
    await register('auth-e1', 'other');
    const a = await server.api.submit(countingJob(3, { repoCommit: sha }));
    const b = await server.api.submit(countingJob(3, { repoCommit: sha }));
    const c = await server.api.submit({ ...countingJob(3), queue: 'other' });
    const ta = await dequeue('auth-e1');
    const tb = await dequeue('auth-e1');
    const tc = await dequeue('auth-e1', 'other');
    expect([ta.id, tb.id, tc.id]).toEqual([a.id, b.id, c.id]);
    const q = '/.executors/queue';
    const logEntry = (jobId: number, executorName: string) =>
      json({
        executorName,
        jobId,
        key: 'step.docker.x',
        command: ['x'],
        startTime: new Date().toISOString(),
        out: 'forged',
      });
    const cases: [string, Promise<Res>][] = [
      [
        'token A on job B',
        request(
          server.url,
          'POST',
          `${q}/chaos/markComplete`,
          jobAuth(ta.token, b.id, 'auth-e1'),
          json({ executorName: 'auth-e1', jobId: b.id }),
        ),
      ],
      [
        'token A, header A, body B',
        request(
          server.url,
          'POST',
          `${q}/chaos/markComplete`,
          jobAuth(ta.token, a.id, 'auth-e1'),
          json({ executorName: 'auth-e1', jobId: b.id }),
        ),
      ],
      [
        'token A on another queue',
        request(
          server.url,
          'POST',
          `${q}/other/addExecutionLogEntry`,
          jobAuth(ta.token, a.id, 'auth-e1'),
          logEntry(a.id, 'auth-e1'),
        ),
      ],
      [
        'token C (queue other) on queue chaos',
        request(
          server.url,
          'POST',
          `${q}/chaos/markComplete`,
          jobAuth(tc.token, c.id, 'auth-e1'),
          json({ executorName: 'auth-e1', jobId: c.id }),
        ),
      ],
      [
        'token A on another repository',
        request(
          server.url,
          'GET',
          '/.executors/git/demo/other/info/refs?service=git-upload-pack',
          jobAuth(ta.token, a.id, 'auth-e1'),
        ),
      ],
      [
        'token C (no repository) on a repository',
        request(
          server.url,
          'GET',
          '/.executors/git/demo/hello/info/refs?service=git-upload-pack',
          jobAuth(tc.token, c.id, 'auth-e1'),
        ),
      ],
      [
        "token A on job B's files",
        request(
          server.url,
          'GET',
          `/.executors/files/job-files/${b.id}/0`,
          jobAuth(ta.token, a.id, 'auth-e1'),
        ),
      ],
      [
        'token A from an unknown executor',
        request(
          server.url,
          'POST',
          `${q}/chaos/addExecutionLogEntry`,
          jobAuth(ta.token, a.id, 'ghost'),
          logEntry(a.id, 'ghost'),
        ),
      ],
      [
        'token A from another known executor',
        request(
          server.url,
          'POST',
          `${q}/chaos/addExecutionLogEntry`,
          jobAuth(ta.token, a.id, 'auth-e2'),
          logEntry(a.id, 'auth-e2'),
        ),
      ],
      [
        'a never-issued token',
        request(
          server.url,
          'POST',
          `${q}/chaos/markComplete`,
          jobAuth('ab'.repeat(20), a.id, 'auth-e1'),
          json({ executorName: 'auth-e1', jobId: a.id }),
        ),
      ],
      [
        'the shared token for a job owned by another executor',
        request(
          server.url,
          'POST',
          `${q}/chaos/markComplete`,
          { ...shared(), 'x-sourcegraph-job-id': String(b.id), 'x-sourcegraph-executor-name': 'auth-e2' },
          json({ executorName: 'auth-e2', jobId: b.id }),
        ),
      ],
    ];
    const results: Record<string, number> = {};
    for (const [name, p] of cases) results[name] = (await p).status;
    // The attempt ends; its token must die with it.
    const done = await request(
      server.url,
      'POST',
      `${q}/chaos/markComplete`,
      jobAuth(ta.token, a.id, 'auth-e1'),
      json({ executorName: 'auth-e1', jobId: a.id }),
    );
    expect(done.status).toBe(204);
    results['token A after its attempt ended (log)'] = (
      await request(
        server.url,
        'POST',
        `${q}/chaos/addExecutionLogEntry`,
        jobAuth(ta.token, a.id, 'auth-e1'),
        logEntry(a.id, 'auth-e1'),
      )
    ).status;
    results['token A after its attempt ended (mark)'] = (
      await request(
        server.url,
        'POST',
        `${q}/chaos/markErrored`,
        jobAuth(ta.token, a.id, 'auth-e1'),
        json({ executorName: 'auth-e1', jobId: a.id, errorMessage: 'x' }),
      )
    ).status;
    results['token A after its attempt ended (git)'] = (
      await request(
        server.url,
        'GET',
        '/.executors/git/demo/hello/info/refs?service=git-upload-pack',
        jobAuth(ta.token, a.id, 'auth-e1'),
      )
    ).status;
    const refused = Object.entries(results).filter(([, s]) => s === 401 || s === 403 || s === 404);
    publish('auth matrix', {
      cases: Object.keys(results).length,
      refused: refused.length,
      statuses: results,
    });
    for (const [name, s] of Object.entries(results))
      expect([name, [401, 403, 404].includes(s)]).toEqual([name, true]);
    // Nothing the refused requests tried took effect.
    expect((await server.store.getJob(b.id))?.state).toBe('processing');
    expect((await server.store.getJob(c.id))?.state).toBe('processing');
    expect((await server.store.getJob(a.id))?.state).toBe('completed');
    const forged = [a.id, b.id, c.id].map(
      async (id) =>
        (await server.store.getLogEntries(id, { withOutput: true })).filter((e) => e.out?.includes('forged'))
          .length,
    );
    expect(await Promise.all(forged)).toEqual([0, 0, 0]);
    execFileSync('true');
  }, 120_000);
});
