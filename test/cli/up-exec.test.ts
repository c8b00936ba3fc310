import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnCli } from '../helpers/spawn-cli.js';

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

describe('executor up (shell runtime)', { timeout: 240_000 }, () => {
  it('starts a server and an executor, runs the demo job live with its secret redacted, exits with its outcome', async () => {
    const data = join(mkdtempSync(join(tmpdir(), 'up-')), 'data');
    const p = spawnCli([
      'up',
      '--runtime',
      'shell',
      '--exit-after-demo',
      '--listen',
      '127.0.0.1:0',
      '--data',
      data,
    ]);
    const code = await p.exited;
    const out = plain(p.output());
    expect(code, out).toBe(0);
    expect(out).toContain('executor is up');
    expect(out).toContain('NOT ISOLATED');
    expect(out).toMatch(/==> setup\.git\.fetch/);
    expect(out).toMatch(/==> step\.docker\.build/);
    expect(out).toContain('Hello from v1.0.0');
    expect(out).toContain('1 test passed');
    expect(out).toContain('publishing with token ${{ secrets.DEMO_TOKEN }}');
    expect(out).not.toContain('demo-secret-4f7a1c2e9b');
    expect(out).toMatch(/Job \d+ completed/);
    const creds = JSON.parse(readFileSync(join(data, 'credentials.json'), 'utf8'));
    expect(out).toContain(creds.apiToken);
    expect(statSync(join(data, 'credentials.json')).mode & 0o777).toBe(0o600);
  });
});

describe('executor exec', { timeout: 240_000 }, () => {
  function repo(): { dir: string; sha: string } {
    const dir = mkdtempSync(join(tmpdir(), 'exec-repo-'));
    const env = {
      ...process.env,
      GIT_AUTHOR_NAME: 'a',
      GIT_AUTHOR_EMAIL: 'a@b',
      GIT_COMMITTER_NAME: 'a',
      GIT_COMMITTER_EMAIL: 'a@b',
    };
    const git = (...a: string[]) =>
      execFileSync('git', ['-C', dir, ...a], { env })
        .toString()
        .trim();
    git('init', '-q', '-b', 'main');
    writeFileSync(join(dir, 'hello.txt'), 'hello from the local repository\n');
    git('add', '.');
    git('commit', '-qm', 'init');
    return { dir, sha: git('rev-parse', 'HEAD') };
  }

  it('runs a job against a local repository with no server and exits 0 when it completes', async () => {
    const { dir } = repo();
    const jobFile = join(dir, 'job.yaml');
    writeFileSync(
      jobFile,
      'queue: local\nrepository:\n  name: me/project\n  commit: main\nsteps:\n  - key: read\n    image: unused\n    run: cat hello.txt\n',
    );
    const p = spawnCli(['exec', jobFile, '--repo', dir, '--runtime', 'shell']);
    const code = await p.exited;
    const out = plain(p.output());
    expect(code, out).toBe(0);
    expect(out).toContain('==> step.docker.read');
    expect(out).toContain('hello from the local repository');
  });

  it('exits non-zero with the failing step when the job fails', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'exec-fail-'));
    const jobFile = join(dir, 'job.yaml');
    writeFileSync(
      jobFile,
      'queue: local\nsteps:\n  - key: boom\n    image: unused\n    run: echo about to fail; exit 4\n',
    );
    const p = spawnCli(['exec', jobFile, '--runtime', 'shell']);
    expect(await p.exited).toBe(1);
    expect(plain(p.output())).toContain('exit code 4');
  });

  it('refuses an invalid job file with exit code 2 and names the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'exec-bad-'));
    const jobFile = join(dir, 'job.yaml');
    writeFileSync(jobFile, 'queue: local\nsteps:\n  - run: true\n');
    const p = spawnCli(['exec', jobFile, '--runtime', 'shell']);
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain('steps[0].image');
  });
});
