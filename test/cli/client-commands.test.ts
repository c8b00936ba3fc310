import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { createLogger } from '../../src/lib/logger.js';
import { waitFor } from '../helpers/env.js';
import { makeDemoRepo } from '../helpers/repos.js';
import { spawnCli } from '../helpers/spawn-cli.js';

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

describe('client commands against a running server', { timeout: 240_000 }, () => {
  let cluster: LocalCluster;
  let dir: string;
  let env: Record<string, string>;

  const cli = async (...args: string[]) => {
    const p = spawnCli(args, env);
    const code = await p.exited;
    return { code, out: plain(p.output()) };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'client-'));
    makeDemoRepo(join(dir, 'data', 'repos'));
    cluster = await startLocalCluster({
      dataDir: join(dir, 'data'),
      runtime: 'shell',
      logger: createLogger({ level: 'error' }),
    });
    env = { EXECUTOR_SERVER_URL: cluster.url, EXECUTOR_SERVER_API_TOKEN: cluster.apiToken };
  });

  afterAll(async () => {
    await cluster?.stop({ force: true });
  });

  it('submit --follow streams the log and exits 0 on completion; show, logs and jobs describe it', async () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(
      file,
      'queue: default\nrepository:\n  name: demo/hello\n  commit: main\nsecrets:\n  PASS: sup3r-secret-value\nsteps:\n  - key: hello\n    image: x\n    run: cat VERSION; echo "pass=$PASS"\n',
    );
    const sub = await cli('submit', file, '--follow');
    expect(sub.code, sub.out).toBe(0);
    expect(sub.out).toMatch(/submitted job (\d+)/);
    expect(sub.out).toContain('stdout: two');
    expect(sub.out).toContain('pass=${{ secrets.PASS }}');
    expect(sub.out).not.toContain('sup3r-secret-value');
    const id = /submitted job (\d+)/.exec(sub.out)![1]!;

    const show = await cli('show', id);
    expect(show.code).toBe(0);
    expect(show.out).toContain(`Job ${id}`);
    expect(show.out).toContain('completed');
    expect(show.out).toContain('step.docker.hello');
    expect(show.out).toMatch(/History\n {2}\S+Z {2}submitted {2}by bootstrap\n/);
    expect(show.out).toContain('PASS');
    expect(show.out).not.toContain('sup3r-secret-value');

    const logs = await cli('logs', id);
    expect(logs.out).toContain('==> step.docker.hello');
    expect(logs.out).toContain('<== step.docker.hello: ok');

    const jobs = await cli('jobs', '--state', 'completed', '--json');
    const page = JSON.parse(jobs.out);
    expect(page.jobs.map((j: { id: number }) => j.id)).toContain(Number(id));
    const table = await cli('jobs');
    expect(table.out).toMatch(/^ID\s+STATE\s+QUEUE/m);
  });

  it('submit --follow exits 1 when the job fails', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'queue: default\nsteps:\n  - image: x\n    run: exit 9\n');
    const sub = await cli('submit', file, '--follow');
    expect(sub.code).toBe(1);
    expect(sub.out).toContain('exit code 9');
  });

  it('cancel stops a running job; retry queues it again', async () => {
    const file = join(dir, 'slow.yaml');
    writeFileSync(file, 'queue: default\nsteps:\n  - image: x\n    run: echo started; sleep 30\n');
    const sub = await cli('submit', file, '--json');
    const id = JSON.parse(sub.out.slice(sub.out.indexOf('{'))).id as number;
    await waitFor(async () => (await cluster.api.getJob(id)).state === 'processing', { what: 'processing' });
    const cancel = await cli('cancel', String(id));
    expect(cancel.code).toBe(0);
    await waitFor(async () => (await cluster.api.getJob(id)).state === 'canceled', { what: 'canceled' });
    const retry = await cli('retry', String(id), '--json');
    expect(JSON.parse(retry.out).state).toBe('queued');
    await cluster.api.cancel(id);
  });

  it('executors and queues list what the server knows', async () => {
    const ex = await cli('executors');
    expect(ex.out).toMatch(/NAME\s+QUEUES\s+VERSION/);
    expect(ex.out).toContain('+executor');
    const q = await cli('queues', '--json');
    const listed = JSON.parse(q.out) as { queues: { queue: string; pollers: number }[] };
    expect(listed.queues.find((x) => x.queue === 'default')?.pollers).toBe(1);
    // The table: the cluster's one executor polls default.
    const human = await cli('queues');
    expect(human.out).toMatch(/^QUEUE\s+QUEUED\s+PROCESSING\s+OLDEST WAITING\s+POLLED BY$/m);
    expect(human.out).toMatch(/^default\s+\d+\s+\d+\s+\S+\s+1$/m);
  });

  it('executors --limit and --after page through them by name', async () => {
    // A second executor, seen by its heartbeat: "0-extra" sorts before the cluster's own.
    const hb = await fetch(`${cluster.url}/.executors/queue/default/heartbeat`, {
      method: 'POST',
      headers: {
        authorization: `token-executor ${cluster.executorsAccessToken}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ executorName: '0-extra', jobIds: [], os: 'linux', architecture: 'amd64' }),
    });
    expect(hb.status).toBe(200);
    const first = await cli('executors', '--limit', '1');
    expect(first.code, first.out).toBe(0);
    expect(first.out).toContain('0-extra');
    const next = /next page: --after (\S+)/.exec(first.out);
    expect(next?.[1]).toBe('0-extra');
    expect(first.out).toMatch(/2 in all, 2 active/);
    const second = await cli('executors', '--limit', '1', '--after', '0-extra', '--json');
    const page = JSON.parse(second.out) as {
      executors: { name: string }[];
      total: number;
      nextAfter: string | null;
    };
    expect(page.executors.map((e) => e.name)).not.toContain('0-extra');
    expect(page.executors).toHaveLength(1);
    expect(page.total).toBe(2);
    const all = await cli('executors');
    expect(all.out).toContain('0-extra');
    expect(all.out).not.toContain('next page');
    for (const bad of [
      ['--limit', '0'],
      ['--limit', 'x'],
      ['--after', '0-extra'],
    ]) {
      const r = await cli('executors', ...bad);
      expect(r.code, bad.join(' ')).toBe(2);
      expect(r.out).toMatch(/--limit|--after/);
    }
  });

  it('bad input gets a one-line error that says what to do, and a non-zero exit', async () => {
    const missing = await cli('submit', join(dir, 'nope.yaml'));
    expect(missing.code).toBe(2);
    expect(missing.out).toContain('cannot read it: no such file');
    const yamlFile = join(dir, 'broken.yaml');
    writeFileSync(yamlFile, 'queue: [default\nsteps: {\n');
    const broken = await cli('submit', yamlFile);
    expect(broken.code).toBe(2);
    expect(broken.out).toMatch(/line \d+, column \d+/);
    const unknown = await cli('show', '999999');
    expect(unknown.code).toBe(1);
    expect(unknown.out).toContain('No such job');
    expect(unknown.out).toContain('executor jobs');
    const notId = await cli('logs', 'abc');
    expect(notId.code).toBe(2);
    expect(notId.out).toContain('"abc" is not a job id');
    const wrongToken = spawnCli(['jobs'], { ...env, EXECUTOR_SERVER_API_TOKEN: 'y'.repeat(40) });
    expect(await wrongToken.exited).toBe(1);
    expect(wrongToken.output()).toContain('EXECUTOR_SERVER_API_TOKEN');
    const down = spawnCli(['jobs'], { ...env, EXECUTOR_SERVER_URL: 'http://127.0.0.1:9' });
    expect(await down.exited).toBe(3);
    expect(down.output()).toContain('cannot reach the server at http://127.0.0.1:9');
    for (const r of [missing, unknown, notId]) expect(r.out.trim().split('\n')).toHaveLength(1);
  });

  it('reports a missing token and a bad file clearly', async () => {
    const p = spawnCli(['jobs'], { EXECUTOR_SERVER_URL: cluster.url, EXECUTOR_SERVER_API_TOKEN: '' });
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain('no API token');
    const file = join(dir, 'invalid.yaml');
    writeFileSync(file, 'queue: default\nsteps: []\n');
    const bad = await cli('submit', file);
    expect(bad.code).toBe(2);
    expect(bad.out).toContain('steps: must list at least one step');
    expect(bad.out.trim().split('\n')).toHaveLength(1);
    const wrong = spawnCli(['jobs'], { ...env, EXECUTOR_SERVER_API_TOKEN: 'x'.repeat(40) });
    expect(await wrong.exited).toBe(1);
  });

  it('submit resolves secrets from the environment and files, and submits nothing when one is missing', async () => {
    const secretFile = join(dir, 'token.txt');
    writeFileSync(secretFile, 'file-s3cret-value\n');
    const flagFile = join(dir, 'flag.txt');
    writeFileSync(flagFile, 'flag-s3cret-value');
    const file = join(dir, 'secrets.yaml');
    writeFileSync(
      file,
      'queue: default\nsecrets:\n  FROM_ENV: { fromEnv: JOB_SECRET_SOURCE }\n  FROM_FILE: { fromFile: token.txt }\nsteps:\n  - image: x\n    run: echo "env=$FROM_ENV file=$FROM_FILE flag=$FLAG"\n',
    );
    const p = spawnCli(['submit', file, '--follow', '--secret', `FLAG@${flagFile}`], {
      ...env,
      JOB_SECRET_SOURCE: 'env-s3cret-value',
    });
    expect(await p.exited, p.output()).toBe(0);
    const out = plain(p.output());
    expect(out).toContain(
      'env=${{ secrets.FROM_ENV }} file=${{ secrets.FROM_FILE }} flag=${{ secrets.FLAG }}',
    );
    expect(out).not.toMatch(/s3cret-value/);

    const before = (await cluster.api.listJobs({ limit: 1 })).total;
    const missing = await cli('submit', file, '--secret', 'OTHER=NOT_SET_ANYWHERE');
    expect(missing.code).toBe(2);
    expect(missing.out).toContain('secrets.FROM_ENV: environment variable JOB_SECRET_SOURCE is not set');
    expect(missing.out).toContain('secrets.OTHER: environment variable NOT_SET_ANYWHERE is not set');
    expect((await cluster.api.listJobs({ limit: 1 })).total).toBe(before);
  });

  it('usage mistakes exit 2 and say what to write instead', async () => {
    const noScheme = await cli('jobs', '--server', '127.0.0.1:3080');
    expect(noScheme.code).toBe(2);
    expect(noScheme.out).toContain(
      '--server "127.0.0.1:3080" is not a server URL: it needs http:// or https://, for example http://127.0.0.1:3080',
    );
    const envNoScheme = spawnCli(['jobs'], { ...env, EXECUTOR_SERVER_URL: 'localhost:3080' });
    expect(await envNoScheme.exited).toBe(2);
    expect(envNoScheme.output()).toContain('EXECUTOR_SERVER_URL "localhost:3080" is not a server URL');
    const state = await cli('jobs', '--state', 'bogus');
    expect(state.code).toBe(2);
    expect(state.out).toContain(
      '--state must be one of queued, processing, completed, errored, failed, canceled',
    );
    const badFlag = await cli('submit', join(dir, 'secrets.yaml'), '--secret', 'no-dashes');
    expect(badFlag.code).toBe(2);
    expect(badFlag.out).toContain('NAME=ENVVAR or NAME@FILE');
  });

  it('a rejected token is reported as rejected, by which server, with what to check', async () => {
    const p = spawnCli(['jobs'], { ...env, EXECUTOR_SERVER_API_TOKEN: 'z'.repeat(40) });
    expect(await p.exited).toBe(1);
    const out = p.output();
    expect(out).toContain(`the server at ${cluster.url} rejected the API token`);
    expect(out).toContain('(UNAUTHENTICATED)');
    expect(out).toContain('`executor tokens create`');
  });
});
