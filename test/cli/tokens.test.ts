/**
 * `executor tokens create|list|revoke` as a user runs them (the real CLI in a child process) against
 * a real server on SQLite, and what a read token can and cannot do through the other commands.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli } from '../helpers/spawn-cli.js';
import { API_TOKEN, type Harness, startHarness } from '../server/harness.js';

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

describe('executor tokens', { timeout: 120_000 }, () => {
  let h: Harness;
  let env: Record<string, string>;
  const cli = async (...args: string[]) => {
    const p = spawnCli(args, env);
    const code = await p.exited;
    return { code, out: plain(p.output()) };
  };

  beforeAll(async () => {
    h = await startHarness();
    // The server's fake clock at the real time, so that "ago" columns read as they would live.
    h.clock.set(Date.now());
    env = { EXECUTOR_SERVER_URL: h.url, EXECUTOR_SERVER_API_TOKEN: API_TOKEN };
  });
  afterAll(async () => {
    await h?.close();
  });

  it('creates a read token shown once, lists it without its value, and revokes it', async () => {
    const made = await cli('tokens', 'create', '--name', 'ci-reader', '--scope', 'read', '--expires', '30d');
    expect(made.code, made.out).toBe(0);
    const token = /^(exu_\S+)$/m.exec(made.out)?.[1];
    expect(token, made.out).toBeDefined();
    expect(made.out).toContain('only time its value is shown');

    const jobs = await cli('jobs', '--token', token!);
    expect(jobs.code, jobs.out).toBe(0);

    const file = join(h.dir, 'job.yaml');
    writeFileSync(file, 'queue: default\nsteps:\n  - image: alpine\n    run: "true"\n');
    const refused = await cli('submit', file, '--token', token!);
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(
      /needs a token with the submit scope; "ci-reader" has the read scope\. \(FORBIDDEN\); use a token with that scope/,
    );

    const list = await cli('tokens', 'list');
    expect(list.code, list.out).toBe(0);
    expect(list.out).toMatch(/NAME\s+SCOPE\s+STATE\s+CREATED\s+LAST USED\s+EXPIRES/);
    expect(list.out).toMatch(/ci-reader\s+read\s+active\s+\S+ ago\s+\S+ ago\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC/);
    expect(list.out).not.toContain(token!);

    const revoked = await cli('tokens', 'revoke', 'ci-reader');
    expect(revoked.code, revoked.out).toBe(0);
    expect(revoked.out).toContain('revoked token "ci-reader" (read)');
    const after = await cli('jobs', '--token', token!);
    expect(after.code).toBe(1);
    expect(after.out).toContain('The API token was revoked. (UNAUTHENTICATED)');
    expect((await cli('tokens', 'list')).out).toMatch(/ci-reader\s+read\s+revoked/);
  });

  it('says clearly what is wrong with a request', async () => {
    const scope = await cli('tokens', 'create', '--name', 'x', '--scope', 'root');
    expect(scope.code).toBe(2);
    expect(scope.out).toContain('--scope must be one of read, submit, admin, not "root"');
    const missing = await cli('tokens', 'create', '--scope', 'read');
    expect(missing.code).not.toBe(0);
    expect(missing.out).toContain("required option '--name <name>' not specified");
    const expires = await cli('tokens', 'create', '--name', 'x', '--scope', 'read', '--expires', 'soon');
    expect(expires.code).toBe(1);
    expect(expires.out).toMatch(/expires: must be a lifetime such as "30d"/);
    const unknown = await cli('tokens', 'revoke', 'nobody');
    expect(unknown.code).toBe(1);
    expect(unknown.out).toContain('list tokens with `executor tokens list`');
  });
});
