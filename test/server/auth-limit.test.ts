/**
 * Authentication failures over HTTP: a peer that sent too many wrong tokens gets 429 on both APIs
 * (its next token unchecked) until the window passes; other peers (another loopback address) and
 * successful requests are unaffected; /metrics counts the refusals.
 */
import http from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { API_TOKEN, EXECUTOR_TOKEN, type Harness, startHarness } from './harness.js';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * A request from a chosen loopback source address (127.0.0.0/8 all reach the server on 127.0.0.1):
 * GET, or POST with an empty JSON object on /.executors routes.
 */
function get(path: string, authorization: string | undefined, from = '127.0.0.1'): Promise<Answer> {
  const post = path.startsWith('/.executors/');
  return new Promise((resolve, reject) => {
    const req = http.request(`${h.url}${path}`, {
      method: post ? 'POST' : 'GET',
      localAddress: from,
      headers: authorization ? { authorization } : {},
      agent: false,
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on('error', reject);
    req.end(post ? '{}' : undefined);
  });
}

const refusals = async (api: string, reason: string): Promise<number> => {
  const text = (await get('/metrics', undefined)).body;
  const m = new RegExp(
    `^src_executor_server_auth_refusals_total\\{api="${api}",reason="${reason}"\\} (\\d+)$`,
    'm',
  ).exec(text);
  if (!m) throw new Error(`no refusal counter for ${api}/${reason} in /metrics`);
  return Number(m[1]);
};

describe('authentication failure limit (default 10 per minute)', () => {
  it('the 11th bad attempt from one peer gets 429 with Retry-After; another peer with a good token still works', async () => {
    for (let i = 1; i <= 10; i++) {
      const res = await get('/api/v1/jobs', `Bearer wrong-guess-${i}`, '127.0.0.2');
      expect([i, res.status]).toEqual([i, 401]);
    }
    const limited = await get('/api/v1/jobs', 'Bearer wrong-guess-11', '127.0.0.2');
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('60');
    expect(JSON.parse(limited.body).error.code).toBe('RATE_LIMITED');
    // The right token from the limited peer is not even checked.
    expect((await get('/api/v1/jobs', `Bearer ${API_TOKEN}`, '127.0.0.2')).status).toBe(429);
    // Another peer is unaffected.
    expect((await get('/api/v1/jobs', `Bearer ${API_TOKEN}`, '127.0.0.3')).status).toBe(200);
    // The table is shared: the limited peer is refused on /.executors too.
    const exec = await get(
      '/.executors/queue/default/dequeue',
      `token-executor ${EXECUTOR_TOKEN}`,
      '127.0.0.2',
    );
    expect(exec.status).toBe(429);
    expect(Number(exec.headers['retry-after'])).toBeGreaterThan(0);

    expect(await refusals('user', 'unauthenticated')).toBe(10);
    expect(await refusals('user', 'rate_limited')).toBe(2);
    expect(await refusals('executor', 'rate_limited')).toBe(1);

    // Once the window has passed, the peer's good token works again.
    h.clock.advance(59_000);
    expect((await get('/api/v1/jobs', `Bearer ${API_TOKEN}`, '127.0.0.2')).headers['retry-after']).toBe('1');
    h.clock.advance(1000);
    expect((await get('/api/v1/jobs', `Bearer ${API_TOKEN}`, '127.0.0.2')).status).toBe(200);
  });

  it('successful requests never count toward the limit', async () => {
    for (let i = 0; i < 9; i++)
      expect((await get('/api/v1/jobs', 'Bearer wrong', '127.0.0.4')).status).toBe(401);
    for (let i = 0; i < 30; i++)
      expect((await get('/api/v1/jobs', `Bearer ${API_TOKEN}`, '127.0.0.4')).status).toBe(200);
    // Ninth failure so far; the tenth is still answered 401, then the peer is limited.
    expect((await get('/api/v1/jobs', 'Bearer wrong', '127.0.0.4')).status).toBe(401);
    expect((await get('/api/v1/jobs', 'Bearer wrong', '127.0.0.4')).status).toBe(429);
  });

  it('a wrong shared executor token counts on /.executors; the log never holds the token sent', async () => {
    const guess = 'token-executor guessed-shared-secret-XYZ';
    for (let i = 0; i < 10; i++) {
      const res = await get('/.executors/queue/default/dequeue', guess, '127.0.0.5');
      expect(res.status).toBe(401);
    }
    const res = await get('/.executors/queue/default/dequeue', guess, '127.0.0.5');
    expect(res.status).toBe(429);
    expect(res.headers['retry-after']).toBe('60');
    expect(await refusals('executor', 'unauthenticated')).toBe(10);
    expect(await refusals('executor', 'rate_limited')).toBe(1);
    expect(h.logs.join('\n')).not.toContain('guessed-shared-secret');
  });
});

describe('job tokens', () => {
  it('wrong job tokens are refused and counted on /metrics, but do not limit the peer', async () => {
    const jobId = await h.submit({});
    const job = await h.dequeue('default', 'exec-1');
    expect(job.id).toBe(jobId);
    for (let i = 0; i < 15; i++) {
      const res = await h.job(
        `/.executors/queue/default/addExecutionLogEntry`,
        { id: job.id, token: 'ab'.repeat(20) },
        'exec-1',
        {
          executorName: 'exec-1',
          jobId: job.id,
          key: 'k',
          command: ['true'],
          startTime: new Date().toISOString(),
        },
      );
      expect([i, res.status]).toEqual([i, 401]);
    }
    expect(await refusals('executor', 'unauthenticated')).toBe(15);
    expect(await refusals('executor', 'rate_limited')).toBe(0);
    // The executor's real token still works from the same peer.
    const ok = await h.job(`/.executors/queue/default/markComplete`, job, 'exec-1', {
      executorName: 'exec-1',
      jobId: job.id,
    });
    expect(ok.status).toBe(204);
  });
});

describe('the metrics token', () => {
  it('wrong metrics tokens count against the peer like API tokens; the right one from another peer works', async () => {
    const m = await startHarness({ env: { EXECUTOR_SERVER_METRICS_TOKEN: 'metrics-secret-123456' } });
    const scrape = (authorization: string | undefined, from: string) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(`${m.url}/metrics`, {
          localAddress: from,
          headers: authorization ? { authorization } : {},
          agent: false,
        });
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      for (let i = 1; i <= 10; i++)
        expect([i, await scrape(`Bearer guess-${i}`, '127.0.0.7')]).toEqual([i, 401]);
      expect(await scrape('Bearer metrics-secret-123456', '127.0.0.7')).toBe(429);
      expect(await scrape('Bearer metrics-secret-123456', '127.0.0.8')).toBe(200);
    } finally {
      await m.close();
    }
  });
});

describe('configured limit', () => {
  it('EXECUTOR_SERVER_AUTH_FAILURE_LIMIT and _WINDOW set the bound and the Retry-After', async () => {
    await h.close();
    h = await startHarness({
      env: { EXECUTOR_SERVER_AUTH_FAILURE_LIMIT: '2', EXECUTOR_SERVER_AUTH_FAILURE_WINDOW: '5m' },
    });
    expect((await get('/api/v1/jobs', 'Bearer x', '127.0.0.6')).status).toBe(401);
    expect((await get('/api/v1/jobs', 'Bearer x', '127.0.0.6')).status).toBe(401);
    const res = await get('/api/v1/jobs', 'Bearer x', '127.0.0.6');
    expect(res.status).toBe(429);
    expect(res.headers['retry-after']).toBe('300');
  });
});
