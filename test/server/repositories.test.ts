/**
 * Mirrored repositories against a real code host on loopback (git http-backend behind basic auth)
 * and a real server (SQLite): registration with a credential from the environment, fetch at
 * submit of a branch, a tag and a sha the mirror lacks, the periodic sync, one fetch for two
 * racing submits, and each bad input's single clear error with nothing left behind.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RepositoryListView, RepositoryView } from '../../src/protocol/user-api.js';
import { type CodeHost, git, startCodeHost } from '../helpers/code-host.js';
import { type Harness, startHarness } from './harness.js';

const PASSWORD = 'code-host-password-3f9a1c';
const WRONG = 'not-the-password-77e2b0';
type ApiError = { error: { code: string; message: string; details?: { path: string; message: string }[] } };

let host: CodeHost;
let h: Harness;

beforeAll(async () => {
  process.env.TEST_CODE_HOST_PASSWORD = PASSWORD;
  process.env.TEST_CODE_HOST_WRONG = WRONG;
  host = await startCodeHost({ username: 'ci', password: PASSWORD });
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
  await host?.close();
});

const credential = { username: 'ci', passwordEnv: 'TEST_CODE_HOST_PASSWORD' };

async function register(name: string, repo: string, cred: unknown = credential) {
  return h.api('POST', '/repositories', { name, url: `${host.url}/${repo}`, credential: cred });
}

async function submitAt(name: string, commit: string): Promise<Response> {
  return h.api('POST', '/jobs', {
    queue: 'default',
    repository: { name, commit },
    steps: [{ image: 'alpine', run: 'true' }],
  });
}

/** A port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${h.url}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`${name}{`) && labels.split(',').every((x) => l.includes(x)));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('registration', () => {
  it('mirrors a repository from the code host with a credential from the environment', async () => {
    const first = host.createRepo('org/app.git');
    const res = await register('org/app', 'org/app.git');
    expect(res.status).toBe(201);
    const text = await res.text();
    expect(text).not.toContain(PASSWORD);
    const r = JSON.parse(text) as RepositoryView;
    expect(r).toMatchObject({
      name: 'org/app',
      url: `${host.url}/org/app.git`,
      credential,
      source: 'api',
      state: 'ready',
      lastError: null,
      defaultBranch: 'main',
    });
    expect(r.sizeBytes).toBeGreaterThan(0);
    expect(r.lastSyncAt).not.toBeNull();
    const mirror = path.join(h.reposDir, 'org/app.git');
    expect(git(mirror, 'rev-parse', 'main')).toBe(first);
    expect(git(mirror, 'rev-parse', 'v1^{commit}')).toBe(first);
    // The credential reached git without landing in the mirror's configuration.
    const config = readFileSync(path.join(mirror, 'config'), 'utf8');
    expect(config).not.toContain(PASSWORD);
    expect(config).not.toMatch(/extraheader|authorization/i);
    expect(h.logs.join('\n')).not.toContain(PASSWORD);

    const list = (await (await h.api('GET', '/repositories')).json()) as RepositoryListView;
    expect(list.repositories.map((x) => x.name)).toContain('org/app');
    const one = (await (await h.api('GET', '/repositories/org/app')).json()) as RepositoryView;
    expect(one.name).toBe('org/app');
  });

  it('answers 200 with the existing repository for the same URL, 409 for another', async () => {
    const same = await register('org/app', 'org/app.git');
    expect(same.status).toBe(200);
    const other = await register('org/app', 'org/other.git');
    expect(other.status).toBe(409);
    expect(((await other.json()) as ApiError).error.code).toBe('CONFLICT');
  });

  it('refuses a wrong password with one clear error, keeping nothing', async () => {
    host.createRepo('org/locked.git');
    const refusedBefore = host.refused();
    const res = await register('org/locked', 'org/locked.git', {
      username: 'ci',
      passwordEnv: 'TEST_CODE_HOST_WRONG',
    });
    expect(res.status).toBe(502);
    const text = await res.text();
    expect(text).not.toContain(WRONG);
    const e = JSON.parse(text) as ApiError;
    expect(e.error.code).toBe('REPOSITORY_AUTH_FAILED');
    expect(e.error.message).toMatch(/authentication refused/);
    expect(host.refused()).toBeGreaterThan(refusedBefore);
    expect((await h.api('GET', '/repositories/org/locked')).status).toBe(404);
    expect(existsSync(path.join(h.reposDir, 'org/locked.git'))).toBe(false);
    expect(h.logs.join('\n')).not.toContain(WRONG);
  });

  it('fails fast without a credential, and names a missing variable', async () => {
    const none = await register('org/nocred', 'org/locked.git', null);
    expect(((await none.json()) as ApiError).error.code).toBe('REPOSITORY_AUTH_FAILED');
    const unset = await register('org/unset', 'org/locked.git', {
      passwordEnv: 'TEST_CODE_HOST_UNSET_VARIABLE',
    });
    const e = (await unset.json()) as ApiError;
    expect(e.error.code).toBe('REPOSITORY_AUTH_FAILED');
    expect(e.error.message).toMatch(/TEST_CODE_HOST_UNSET_VARIABLE .*not set/);
  });

  it('says when the host is down', async () => {
    const port = await closedPort();
    const res = await h.api('POST', '/repositories', {
      name: 'org/down',
      url: `http://127.0.0.1:${port}/org/app.git`,
      credential,
    });
    expect(res.status).toBe(502);
    expect(((await res.json()) as ApiError).error.code).toBe('REPOSITORY_UNREACHABLE');
    expect((await h.api('GET', '/repositories/org/down')).status).toBe(404);
    // A failing remote does not make the server unhealthy.
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
  });

  it('refuses file://, local paths, ext:: and credentials in the URL without fetching', async () => {
    const cases: [string, RegExp][] = [
      [`file://${host.root}/org/app.git`, /--allow-local-repositories/],
      [path.join(host.root, 'org/app.git'), /--allow-local-repositories/],
      ['ext::sh -c touch% /tmp/pwned', /remote helpers/],
      [`http://ci:${PASSWORD}@127.0.0.1/org/app.git`, /must not contain credentials/],
      ['ftp://example.com/app.git', /not supported/],
    ];
    for (const [url, message] of cases) {
      const res = await h.api('POST', '/repositories', { name: 'org/local', url });
      expect(res.status, url).toBe(400);
      const e = (await res.json()) as ApiError;
      expect(e.error.code).toBe('VALIDATION');
      expect(e.error.details?.[0]?.path).toBe('url');
      expect(e.error.details?.[0]?.message).toMatch(message);
      expect(JSON.stringify(e)).not.toContain(PASSWORD);
    }
  });

  it('refuses invalid names and credentials naming the server settings', async () => {
    for (const name of ['', '../etc', 'org/.hidden', 'org/app.git', 'a b']) {
      const res = await h.api('POST', '/repositories', { name, url: `${host.url}/org/app.git` });
      expect(res.status, name).toBe(400);
      expect(((await res.json()) as ApiError).error.details?.[0]?.path).toBe('name');
    }
    const res = await register('org/steal', 'org/app.git', { passwordEnv: 'EXECUTOR_SERVER_API_TOKEN' });
    expect(res.status).toBe(400);
    const res2 = await register('org/steal', 'org/app.git', { passwordFile: '/etc/passwd' });
    expect(((await res2.json()) as ApiError).error.details?.[0]?.message).toMatch(/repositories file/);
  });
});

describe('fetch at submit', () => {
  it('fetches a branch, a tag and a sha the mirror does not have yet', async () => {
    const branchSha = host.commit('org/app.git', 'feature');
    let res = await submitAt('org/app', 'feature');
    expect(res.status).toBe(201);
    expect(((await res.json()) as { commit: string }).commit).toBe(branchSha);

    host.tag('org/app.git', 'v2', branchSha);
    res = await submitAt('org/app', 'v2');
    expect(res.status).toBe(201);
    expect(((await res.json()) as { commit: string }).commit).toBe(branchSha);

    const mainSha = host.commit('org/app.git', 'main');
    res = await submitAt('org/app', mainSha);
    expect(res.status).toBe(201);
    expect(((await res.json()) as { commit: string }).commit).toBe(mainSha);
    expect(git(path.join(h.reposDir, 'org/app.git'), 'rev-parse', 'main')).toBe(mainSha);
  });

  it('answers UNKNOWN_REVISION for a ref the host does not have either', async () => {
    const before = host.fetches('org/app.git');
    const res = await submitAt('org/app', 'no-such-branch');
    expect(res.status).toBe(400);
    const e = (await res.json()) as ApiError;
    expect(e.error.code).toBe('UNKNOWN_REVISION');
    expect(e.error.message).toMatch(/even after fetching/);
    expect(host.fetches('org/app.git')).toBe(before + 1);
  });

  it('runs one fetch for two submits racing on one missing commit', async () => {
    const sha = host.commit('org/app.git', 'main');
    const before = host.fetches('org/app.git');
    const submitsBefore = await metric(
      'src_executor_server_repository_syncs_total',
      'repository="org/app",reason="submit",outcome="success"',
    );
    const [a, b] = await Promise.all([submitAt('org/app', sha), submitAt('org/app', sha)]);
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(host.fetches('org/app.git') - before).toBe(1);
    const submitsAfter = await metric(
      'src_executor_server_repository_syncs_total',
      'repository="org/app",reason="submit",outcome="success"',
    );
    expect(submitsAfter - submitsBefore).toBe(1);
  });

  it('does not fetch when the mirror has the commit', async () => {
    const before = host.fetches('org/app.git');
    expect((await submitAt('org/app', 'v1')).status).toBe(201);
    expect(host.fetches('org/app.git')).toBe(before);
  });
});

describe('sync', () => {
  it('fetches on demand and every interval, recording the outcome', async () => {
    const sha = host.commit('org/app.git', 'main');
    const res = await h.api('POST', '/repositories/org/app/sync', {});
    expect(res.status).toBe(200);
    const r = (await res.json()) as RepositoryView;
    expect(r.state).toBe('ready');
    expect(git(path.join(h.reposDir, 'org/app.git'), 'rev-parse', 'main')).toBe(sha);

    // Not due yet: the pass fetches nothing.
    expect(await h.app.loops.repoSync.runOnce(h.clock.now())).toBe(0);
    const next = host.commit('org/app.git', 'main');
    h.clock.advance(11 * 60_000);
    expect(await h.app.loops.repoSync.runOnce(h.clock.now())).toBeGreaterThanOrEqual(1);
    expect(git(path.join(h.reposDir, 'org/app.git'), 'rev-parse', 'main')).toBe(next);
    expect(
      await metric(
        'src_executor_server_repository_syncs_total',
        'repository="org/app",reason="interval",outcome="success"',
      ),
    ).toBeGreaterThanOrEqual(1);
  });

  it('records a failed sync and keeps serving the mirror', async () => {
    // The code host moves: the registration now points at a closed port.
    const port = await closedPort();
    await h.store.addRepository(
      { name: 'org/app', url: `http://127.0.0.1:${port}/org/app.git`, credential, source: 'api' },
      h.clock.now(),
      { replace: true },
    );
    const res = await h.api('POST', '/repositories/org/app/sync', {});
    expect(res.status).toBe(502);
    expect(((await res.json()) as ApiError).error.code).toBe('REPOSITORY_UNREACHABLE');
    const r = (await (await h.api('GET', '/repositories/org/app')).json()) as RepositoryView;
    expect(r.state).toBe('failed');
    expect(r.lastError).toMatch(/cannot be reached/);
    expect((await submitAt('org/app', 'v1')).status).toBe(201);
    expect(
      await metric(
        'src_executor_server_repository_syncs_total',
        'repository="org/app",reason="manual",outcome="failure"',
      ),
    ).toBe(1);
    await h.store.addRepository(
      { name: 'org/app', url: `${host.url}/org/app.git`, credential, source: 'api' },
      h.clock.now(),
      { replace: true },
    );
  });

  it('repairs a mirror whose fetch was cut short by a restart', async () => {
    const mirror = path.join(h.reposDir, 'org/app.git');
    // What a killed fetch leaves: a ref lock, a temporary pack, and an unfinished first fetch.
    writeFileSync(path.join(mirror, 'refs/heads/main.lock'), 'x');
    writeFileSync(path.join(mirror, 'objects/pack/tmp_pack_cut'), 'partial');
    mkdirSync(path.join(h.reposDir, '.executor-tmp/org--half-0000.git'), { recursive: true });
    // Still usable meanwhile.
    expect((await submitAt('org/app', 'v1')).status).toBe(201);
    const sha = host.commit('org/app.git', 'main');
    expect((await submitAt('org/app', sha)).status).toBe(201);
    expect(existsSync(path.join(mirror, 'refs/heads/main.lock'))).toBe(false);
  });

  it('removes the registration and the mirror', async () => {
    host.createRepo('org/gone.git');
    expect((await register('org/gone', 'org/gone.git')).status).toBe(201);
    expect(existsSync(path.join(h.reposDir, 'org/gone.git'))).toBe(true);
    expect((await h.api('DELETE', '/repositories/org/gone')).status).toBe(204);
    expect(existsSync(path.join(h.reposDir, 'org/gone.git'))).toBe(false);
    expect((await h.api('DELETE', '/repositories/org/gone')).status).toBe(404);
    const e = (await (await submitAt('org/gone', 'main')).json()) as ApiError;
    expect(e.error.code).toBe('UNKNOWN_REPOSITORY');
  });
});

describe('limits and the repositories file', () => {
  it('refuses a repository larger than EXECUTOR_SERVER_REPO_MAX_SIZE, keeping nothing', async () => {
    host.createRepo('org/big.git');
    const small = await startHarness({ env: { EXECUTOR_SERVER_REPO_MAX_SIZE: '1Ki' } });
    try {
      const res = await small.api('POST', '/repositories', {
        name: 'org/big',
        url: `${host.url}/org/big.git`,
        credential,
      });
      expect(res.status).toBe(400);
      const e = (await res.json()) as ApiError;
      expect(e.error.code).toBe('REPOSITORY_TOO_LARGE');
      expect(e.error.message).toMatch(/EXECUTOR_SERVER_REPO_MAX_SIZE/);
      expect(existsSync(path.join(small.reposDir, 'org/big.git'))).toBe(false);
      expect((await small.api('GET', '/repositories')).status).toBe(200);
      expect(
        ((await (await small.api('GET', '/repositories')).json()) as RepositoryListView).repositories,
      ).toEqual([]);
    } finally {
      await small.close();
    }
  });

  it('registers, syncs and unregisters the entries of the repositories file', async () => {
    host.createRepo('team/svc.git');
    const file = path.join(h.dir, 'repositories.yaml');
    const entry = `- name: team/svc\n  url: ${host.url}/team/svc.git\n  credential:\n    username: ci\n    passwordEnv: TEST_CODE_HOST_PASSWORD\n`;
    writeFileSync(file, entry);
    const fh = await startHarness({ env: { EXECUTOR_SERVER_REPOSITORIES: file } });
    try {
      expect(await fh.app.loops.repoSync.runOnce(fh.clock.now())).toBe(1);
      const r = (await (await fh.api('GET', '/repositories/team/svc')).json()) as RepositoryView;
      expect(r).toMatchObject({ source: 'file', state: 'ready', defaultBranch: 'main' });
      const del = await fh.api('DELETE', '/repositories/team/svc');
      expect(del.status).toBe(409);
      expect(((await del.json()) as ApiError).error.message).toMatch(/repositories file/);
      writeFileSync(file, '[]\n');
      await fh.app.loops.repoSync.runOnce(fh.clock.now());
      expect((await fh.api('GET', '/repositories/team/svc')).status).toBe(404);
      expect(existsSync(path.join(fh.reposDir, 'team/svc.git'))).toBe(false);
    } finally {
      await fh.close();
    }
  });
});
