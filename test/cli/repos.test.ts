/**
 * `executor repos add|list|show|sync|remove` as a user runs them (the real CLI in a child process)
 * against a real server on SQLite, mirroring from a loopback code host with basic auth: the
 * credential is named by `--credential-env` and read from the server's environment.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CodeHost, git, startCodeHost } from '../helpers/code-host.js';
import { spawnCli } from '../helpers/spawn-cli.js';
import { API_TOKEN, type Harness, startHarness } from '../server/harness.js';

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');
const PASSWORD = 'cli-code-host-password-81d2';

describe('executor repos', { timeout: 120_000 }, () => {
  let h: Harness;
  let host: CodeHost;
  let env: Record<string, string>;
  const cli = async (...args: string[]) => {
    const p = spawnCli(args, env);
    const code = await p.exited;
    return { code, out: plain(p.output()) };
  };

  beforeAll(async () => {
    // The server runs in this process: its environment holds the credential.
    process.env.TEST_CLI_GIT_TOKEN = PASSWORD;
    host = await startCodeHost({ username: 'bot', password: PASSWORD });
    host.createRepo('org/app.git');
    h = await startHarness();
    h.clock.set(Date.now());
    env = { EXECUTOR_SERVER_URL: h.url, EXECUTOR_SERVER_API_TOKEN: API_TOKEN };
  });
  afterAll(async () => {
    await h?.close();
    await host?.close();
  });

  it('adds, lists, shows, syncs and removes a repository', async () => {
    const url = `${host.url}/org/app.git`;
    const added = await cli(
      'repos',
      'add',
      'org/app',
      url,
      '--username',
      'bot',
      '--credential-env',
      'TEST_CLI_GIT_TOKEN',
    );
    expect(added.code, added.out).toBe(0);
    expect(added.out).toMatch(/state:\s+ready/);
    expect(added.out).toMatch(/credential:\s+username=bot passwordEnv=TEST_CLI_GIT_TOKEN/);
    expect(added.out).not.toContain(PASSWORD);

    const list = await cli('repos', 'list');
    expect(list.code, list.out).toBe(0);
    expect(list.out).toMatch(/NAME\s+STATE\s+LAST SYNC\s+SIZE\s+URL/);
    expect(list.out).toMatch(/org\/app\s+ready\s+\S+ ago\s+[\d.]+ KiB/);

    const json = await cli('repos', 'show', 'org/app', '--json');
    expect(JSON.parse(json.out)).toMatchObject({ name: 'org/app', defaultBranch: 'main', url });

    const sha = host.commit('org/app.git', 'main');
    const synced = await cli('repos', 'sync', 'org/app');
    expect(synced.code, synced.out).toBe(0);
    expect(git(path.join(h.reposDir, 'org/app.git'), 'rev-parse', 'main')).toBe(sha);

    const removed = await cli('repos', 'remove', 'org/app');
    expect(removed.code, removed.out).toBe(0);
    const gone = await cli('repos', 'show', 'org/app');
    expect(gone.code).toBe(1);
    expect(gone.out).toMatch(/No repository "org\/app" is registered\. \(NOT_FOUND\); list repositories/);
  });

  it('prints one clear error for a refused credential and a refused URL', async () => {
    process.env.TEST_CLI_GIT_WRONG = 'wrong-password-for-cli';
    const auth = await cli(
      'repos',
      'add',
      'org/bad',
      `${host.url}/org/app.git`,
      '--credential-env',
      'TEST_CLI_GIT_WRONG',
    );
    expect(auth.code).toBe(1);
    expect(auth.out).toMatch(
      /authentication refused by the host; check the credential\.? \(REPOSITORY_AUTH_FAILED\)/,
    );
    expect(auth.out).not.toContain('wrong-password-for-cli');
    const local = await cli('repos', 'add', 'org/local', 'file:///srv/git/app.git');
    expect(local.code).toBe(1);
    expect(local.out).toMatch(/url: file:\/\/ URLs and local paths are refused/);
  });
});
