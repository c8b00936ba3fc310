import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRepo, type Harness, startHarness } from './harness.js';

let h: Harness;
let work: string;
let sha: string;
beforeEach(async () => {
  h = await startHarness();
  sha = createRepo(h.reposDir, 'org/repo');
  createRepo(h.reposDir, 'org/other', 'other\n');
  work = mkdtempSync(path.join(os.tmpdir(), 'executor-clone-'));
});
afterEach(async () => {
  await h.close();
  rmSync(work, { recursive: true, force: true });
});

/** Clones through the proxy the way the executor does: credentials only in extra headers. */
function clone(repo: string, job: { id: number; token: string }, executor: string, dest: string) {
  return new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(
      'git',
      [
        '-c',
        `http.extraHeader=Authorization: Bearer ${job.token}`,
        '-c',
        `http.extraHeader=X-Sourcegraph-Job-ID: ${job.id}`,
        '-c',
        `http.extraHeader=X-Sourcegraph-Executor-Name: ${executor}`,
        'clone',
        '-q',
        `${h.url}/.executors/git/${repo}`,
        path.join(work, dest),
      ],
      {
        env: { PATH: process.env.PATH, HOME: work, GIT_CONFIG_NOSYSTEM: '1', GIT_TERMINAL_PROMPT: '0' },
        timeout: 30_000,
      },
      (err, _stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
    );
  });
}

describe('git through /.executors/git', () => {
  it('clones the job repository with the job token, at the resolved commit', async () => {
    const id = await h.submit({ repository: { name: 'org/repo', commit: 'main' } });
    const job = await h.dequeue('default', 'e1');
    expect(job).toMatchObject({ id, repositoryName: 'org/repo', commit: sha });
    const r = await clone('org/repo', job, 'e1', 'ok');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readFileSync(path.join(work, 'ok', 'README.md'), 'utf8')).toBe('hello\n');
  });

  it('is refused with another job token, for another repository, and once the token ended', async () => {
    await h.submit({ repository: { name: 'org/repo', commit: 'v1' } });
    await h.submit({ repository: { name: 'org/other', commit: 'main' } });
    const mine = await h.dequeue('default', 'e1');
    const theirs = await h.dequeue('default', 'e2');
    // Another job's token with my job id: 403.
    let r = await clone('org/repo', { id: mine.id, token: theirs.token }, 'e1', 'a');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/403/);
    // My token for another repository: 403.
    r = await clone('org/other', mine, 'e1', 'b');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/403/);
    // My token after my attempt ended: 401.
    await h.job('/.executors/queue/default/markComplete', mine, 'e1', { executorName: 'e1', jobId: mine.id });
    r = await clone('org/repo', mine, 'e1', 'c');
    expect(r.code).not.toBe(0);
    expect(existsSync(path.join(work, 'c', 'README.md'))).toBe(false);
    const res = await fetch(`${h.url}/.executors/git/org/repo/info/refs?service=git-upload-pack`, {
      headers: {
        authorization: `Bearer ${mine.token}`,
        'x-sourcegraph-job-id': String(mine.id),
        'x-sourcegraph-executor-name': 'e1',
      },
    });
    expect(res.status).toBe(401);
    expect(await res.text()).toBe('invalid token\n');
  });

  it('serves upload-pack only', async () => {
    await h.submit({ repository: { name: 'org/repo', commit: 'main' } });
    const job = await h.dequeue('default', 'e1');
    const headers = {
      authorization: `Bearer ${job.token}`,
      'x-sourcegraph-job-id': String(job.id),
      'x-sourcegraph-executor-name': 'e1',
    };
    let res = await fetch(`${h.url}/.executors/git/org/repo/info/refs?service=git-receive-pack`, { headers });
    expect(res.status).toBe(403);
    res = await fetch(`${h.url}/.executors/git/org/repo/git-receive-pack`, { method: 'POST', headers });
    expect(res.status).toBe(404);
    res = await fetch(`${h.url}/.executors/git/org/repo/info/refs?service=git-upload-pack`, { headers });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-git-upload-pack-advertisement');
  });

  it('passes a gzip-encoded upload-pack request to git', async () => {
    await h.submit({ repository: { name: 'org/repo', commit: 'main' } });
    const job = await h.dequeue('default', 'e1');
    const body = gzipSync(Buffer.from(`0032want ${sha}\n00000009done\n`));
    const res = await fetch(`${h.url}/.executors/git/org/repo/git-upload-pack`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${job.token}`,
        'x-sourcegraph-job-id': String(job.id),
        'x-sourcegraph-executor-name': 'e1',
        'content-type': 'application/x-git-upload-pack-request',
        'content-encoding': 'gzip',
      },
      body,
    });
    expect(res.status).toBe(200);
    const out = Buffer.from(await res.arrayBuffer());
    expect(out.subarray(0, 8).toString()).toBe('0008NAK\n');
    expect(out.includes(Buffer.from('PACK'))).toBe(true);
  });
});
