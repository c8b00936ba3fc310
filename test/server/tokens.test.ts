/**
 * Scoped API tokens against a real server (SQLite): the scope matrix (every user-API route x no
 * token, the bootstrap token, read, submit and admin tokens, a revoked and an expired one) with the
 * statuses each must get, and the /api/v1/tokens and /api/v1/whoami routes themselves.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiTokenCreatedView, ApiTokenListView, TokenScope } from '../../src/protocol/user-api.js';
import { ROUTE_SCOPES, type UserRoute } from '../../src/server/user-api/scopes.js';
import { API_TOKEN, createRepo, type Harness, startHarness } from './harness.js';

const HOUR = 3_600_000;
type ApiError = { error: { code: string; message: string; details?: { path: string }[] } };

let h: Harness;
let seq = 0;

/** A request as `token` (none when undefined). */
function call(method: string, p: string, token: string | undefined, body?: unknown): Promise<Response> {
  return fetch(`${h.url}/api/v1${p}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      'content-type': 'application/json',
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

async function createToken(name: string, scope: TokenScope, expires?: string): Promise<ApiTokenCreatedView> {
  const res = await call('POST', '/tokens', API_TOKEN, { name, scope, ...(expires ? { expires } : {}) });
  expect(res.status).toBe(201);
  return (await res.json()) as ApiTokenCreatedView;
}

/**
 * For each route: the scope it must need (the issue's words: read sees, submit also submits,
 * cancels and retries, admin also manages tokens), what to send, and the status it answers when
 * allowed. `prepare` makes a fresh object for requests that use one up (a job to cancel, a token
 * to revoke). The Record type makes
 * the compiler insist on an entry for every route of ROUTE_SCOPES.
 */
const ROUTES: Record<
  UserRoute,
  { needs: TokenScope; ok: number; prepare: () => Promise<{ path: string; body?: unknown }> }
> = {
  'GET /api/v1/whoami': {
    needs: 'read',
    ok: 200,
    prepare: async () => ({ path: '/whoami' }),
  },
  'GET /api/v1/jobs': {
    needs: 'read',
    ok: 200,
    prepare: async () => ({ path: '/jobs' }),
  },
  'GET /api/v1/jobs/:id': {
    needs: 'read',
    ok: 200,
    prepare: async () => ({ path: `/jobs/${await h.submit({})}` }),
  },
  'GET /api/v1/jobs/:id/logs': {
    needs: 'read',
    ok: 200,
    prepare: async () => ({ path: `/jobs/${await h.submit({})}/logs` }),
  },
  'GET /api/v1/executors': {
    needs: 'read',
    ok: 200,
    prepare: async () => ({ path: '/executors' }),
  },
  'GET /api/v1/executors/history': {
    needs: 'read',
    ok: 200,
    prepare: async () => ({ path: '/executors/history' }),
  },
  'GET /api/v1/queues': {
    needs: 'read',
    ok: 200,
    prepare: async () => ({ path: '/queues' }),
  },
  'GET /api/v1/queues/history': {
    needs: 'read',
    ok: 200,
    prepare: async () => ({ path: '/queues/history' }),
  },
  'POST /api/v1/jobs': {
    needs: 'submit',
    ok: 201,
    prepare: async () => ({
      path: '/jobs',
      body: { queue: 'default', steps: [{ image: 'alpine', run: 'true' }] },
    }),
  },
  'POST /api/v1/jobs/:id/cancel': {
    needs: 'submit',
    ok: 200,
    prepare: async () => ({ path: `/jobs/${await h.submit({})}/cancel`, body: {} }),
  },
  'POST /api/v1/jobs/:id/retry': {
    needs: 'submit',
    ok: 200,
    prepare: async () => {
      const id = await h.submit({});
      expect((await h.api('POST', `/jobs/${id}/cancel`, {})).status).toBe(200);
      return { path: `/jobs/${id}/retry`, body: {} };
    },
  },
  'GET /api/v1/tokens': {
    needs: 'admin',
    ok: 200,
    prepare: async () => ({ path: '/tokens' }),
  },
  'POST /api/v1/tokens': {
    needs: 'admin',
    ok: 201,
    prepare: async () => ({ path: '/tokens', body: { name: `made-${++seq}`, scope: 'read' } }),
  },
  'DELETE /api/v1/tokens/:name': {
    needs: 'admin',
    ok: 200,
    prepare: async () => ({ path: `/tokens/${(await createToken(`victim-${++seq}`, 'read')).name}` }),
  },
  'GET /api/v1/repositories': {
    needs: 'read',
    ok: 200,
    prepare: async () => ({ path: '/repositories' }),
  },
  'GET /api/v1/repositories/*name': {
    needs: 'read',
    ok: 200,
    prepare: async () => ({ path: `/repositories/${await seedRepository()}` }),
  },
  'POST /api/v1/repositories': {
    needs: 'admin',
    ok: 201,
    prepare: async () => ({ path: '/repositories', body: { name: `mirror/r${++seq}`, url: sourceRepo } }),
  },
  'POST /api/v1/repositories/*name/sync': {
    needs: 'submit',
    ok: 200,
    prepare: async () => ({ path: `/repositories/${await seedRepository()}/sync`, body: {} }),
  },
  'DELETE /api/v1/repositories/*name': {
    needs: 'admin',
    ok: 204,
    prepare: async () => ({ path: `/repositories/${await seedRepository()}` }),
  },
};

/** A local repository the repository routes mirror (local URLs are allowed in this suite). */
let sourceRepo = '';

/** Registers a repository straight in the store (the matrix tests scopes, not fetches). */
async function seedRepository(): Promise<string> {
  const name = `seeded/r${++seq}`;
  await h.store.addRepository({ name, url: sourceRepo, credential: null, source: 'api' }, h.clock.now());
  return name;
}

/** Who calls, and what they get on a route needing `needs`: a status, and for 401s the message. */
interface Caller {
  who: string;
  token: () => string | undefined;
  expect: (needs: TokenScope) => { status: number; message?: RegExp };
}

const RANK: Record<TokenScope, number> = { read: 0, submit: 1, admin: 2 };
const tokens: Record<string, string> = {};

const scoped = (scope: TokenScope): Caller => ({
  who: `${scope} token`,
  token: () => tokens[scope],
  expect: (needs) =>
    RANK[scope] >= RANK[needs]
      ? { status: 0 }
      : { status: 403, message: new RegExp(`needs a token with the ${needs} scope; "${scope}-token" has`) },
});

const CALLERS: Caller[] = [
  {
    who: 'no token',
    token: () => undefined,
    expect: () => ({ status: 401, message: /Authorization: Bearer/ }),
  },
  {
    who: 'a wrong token',
    token: () => 'exu_not-a-token',
    expect: () => ({ status: 401, message: /not valid/ }),
  },
  { who: 'the bootstrap token', token: () => API_TOKEN, expect: () => ({ status: 0 }) },
  scoped('read'),
  scoped('submit'),
  scoped('admin'),
  {
    who: 'a revoked admin token',
    token: () => tokens.revoked,
    expect: () => ({ status: 401, message: /revoked/ }),
  },
  {
    who: 'an expired admin token',
    token: () => tokens.expired,
    expect: () => ({ status: 401, message: /expired/ }),
  },
];

beforeAll(async () => {
  // The matrix sends dozens of refused credentials from one address: it tests the scopes, not the
  // failure limit (auth-limit.test.ts does), so the limit is set out of its way.
  h = await startHarness({
    env: { EXECUTOR_SERVER_AUTH_FAILURE_LIMIT: '1000000', EXECUTOR_SERVER_ALLOW_LOCAL_REPOSITORIES: 'true' },
  });
  sourceRepo = path.join(h.dir, 'sources', 'app.git');
  createRepo(path.join(h.dir, 'sources'), 'app');
  for (const scope of ['read', 'submit', 'admin'] as const) {
    tokens[scope] = (await createToken(`${scope}-token`, scope)).token;
  }
  tokens.revoked = (await createToken('revoked-token', 'admin')).token;
  expect((await call('DELETE', '/tokens/revoked-token', API_TOKEN)).status).toBe(200);
  tokens.expired = (await createToken('expired-token', 'admin', '1h')).token;
  // Live until its expiry, refused from then on.
  expect((await call('GET', '/whoami', tokens.expired)).status).toBe(200);
  h.clock.advance(HOUR);
});
afterAll(async () => {
  await h?.close();
});

describe('scope matrix', () => {
  it('covers every route of the scope table', () => {
    expect(Object.keys(ROUTES).sort()).toEqual(Object.keys(ROUTE_SCOPES).sort());
  });

  for (const route of Object.keys(ROUTE_SCOPES) as UserRoute[]) {
    const needs = ROUTES[route].needs;
    it(`${route} (needs ${needs})`, async () => {
      expect(ROUTE_SCOPES[route]).toBe(needs);
      const method = route.split(' ')[0]!;
      const rows: string[] = [];
      const want: string[] = [];
      for (const c of CALLERS) {
        const { path, body } = await ROUTES[route].prepare();
        const res = await call(method, path, c.token(), body);
        const e = c.expect(needs);
        const status = e.status === 0 ? ROUTES[route].ok : e.status;
        want.push(`${c.who}: ${status}`);
        rows.push(`${c.who}: ${res.status}`);
        if (res.status >= 400) {
          const err = (await res.json()) as ApiError;
          expect(err.error.code).toBe(res.status === 401 ? 'UNAUTHENTICATED' : 'FORBIDDEN');
          if (e.message) expect(err.error.message).toMatch(e.message);
        } else await res.arrayBuffer();
      }
      expect(rows).toEqual(want);
    });
  }
});

describe('tokens and whoami', () => {
  it('whoami names the principal: bootstrap, or the token with its scope', async () => {
    expect(await (await call('GET', '/whoami', API_TOKEN)).json()).toEqual({
      name: 'bootstrap',
      scope: 'admin',
    });
    expect(await (await call('GET', '/whoami', tokens.read)).json()).toEqual({
      name: 'read-token',
      scope: 'read',
    });
  });

  it('shows a value once: the list has names, scopes and times, never values or hashes', async () => {
    const made = await createToken('listed', 'submit', '30d');
    expect(made.token).toMatch(/^exu_[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(made.expiresAt!) - Date.parse(made.createdAt)).toBe(30 * 24 * HOUR);
    const res = await call('GET', '/tokens', tokens.admin);
    const text = await res.text();
    expect(text).not.toContain(made.token);
    expect(text).not.toMatch(/[0-9a-f]{64}/);
    const list = (JSON.parse(text) as ApiTokenListView).tokens;
    const byName = new Map(list.map((t) => [t.name, t]));
    expect(byName.get('listed')).toEqual({
      name: 'listed',
      scope: 'submit',
      state: 'active',
      createdAt: made.createdAt,
      lastUsedAt: null,
      expiresAt: made.expiresAt,
      revokedAt: null,
    });
    expect(byName.get('revoked-token')?.state).toBe('revoked');
    expect(byName.get('expired-token')?.state).toBe('expired');
    expect(byName.get('read-token')?.lastUsedAt).not.toBeNull();
    for (const t of list)
      expect(Object.keys(t).sort()).toEqual(
        Object.keys(made)
          .filter((k) => k !== 'token')
          .sort(),
      );
  });

  it('refuses bad names, scopes and lifetimes, all at once, and a second live token of one name', async () => {
    const res = await call('POST', '/tokens', API_TOKEN, {
      name: '-x',
      scope: 'root',
      expires: '30 days',
      extra: 1,
    });
    expect(res.status).toBe(400);
    const err = (await res.json()) as ApiError;
    expect(err.error.code).toBe('VALIDATION');
    expect(err.error.details?.map((d) => d.path).sort()).toEqual(['expires', 'extra', 'name', 'scope']);
    for (const name of ['bootstrap', 'local']) {
      expect((await call('POST', '/tokens', API_TOKEN, { name, scope: 'read' })).status).toBe(400);
    }
    const dup = await call('POST', '/tokens', API_TOKEN, { name: 'read-token', scope: 'admin' });
    expect(dup.status).toBe(409);
    expect(((await dup.json()) as ApiError).error.code).toBe('CONFLICT');
    expect((await call('DELETE', '/tokens/no-such-token', API_TOKEN)).status).toBe(404);
  });

  it('a revoked name can be given to a new token, and the old value stays refused', async () => {
    const first = await createToken('rotated', 'read');
    expect((await call('DELETE', '/tokens/rotated', API_TOKEN)).status).toBe(200);
    const second = await createToken('rotated', 'submit');
    expect((await call('GET', '/whoami', first.token)).status).toBe(401);
    expect(await (await call('GET', '/whoami', second.token)).json()).toEqual({
      name: 'rotated',
      scope: 'submit',
    });
  });

  it('a token revoked with itself is refused from the next request on', async () => {
    const self = await createToken('self', 'admin');
    expect((await call('DELETE', '/tokens/self', self.token)).status).toBe(200);
    const res = await call('GET', '/jobs', self.token);
    expect(res.status).toBe(401);
    expect(((await res.json()) as ApiError).error.message).toBe('The API token was revoked.');
  });
});

describe('the loopback-open dashboard', () => {
  it('is the admin principal "local"', async () => {
    const local = await startHarness({ env: { EXECUTOR_SERVER_DASHBOARD_LOOPBACK_OPEN: 'true' } });
    try {
      const res = await fetch(`${local.url}/api/v1/whoami`, { headers: { 'x-executor-dashboard': '1' } });
      expect(await res.json()).toEqual({ name: 'local', scope: 'admin' });
    } finally {
      await local.close();
    }
  });
});
