/**
 * deploy/compose/compose.yaml brought up for real with Debian's docker-compose (1.29) and the images
 * `npm run images` builds: the server (SQLite), two executors (docker runtime, host network, the
 * isolated job network), a git repository, one job submitted through the user API, completed, its
 * log read back; then `down`, after which nothing of the project is left. The same again with
 * compose.postgres.yaml layered on: the server on PostgreSQL 15 (Debian's package, built locally
 * on the same base), and the job found in its tables.
 *
 * Everything is named per test process (Compose project, job network and subnet, published port,
 * directories), so runs side by side on one Docker daemon do not meet. Needs root: the repository
 * is handed to the server's uid 10001, and the job network's firewall chains are removed afterwards.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiClient, createApiClient } from '../../src/cli/api-client.js';
import { loadExecutorConfig } from '../../src/config/executor.js';
import { removeIsolation } from '../../src/executor/network/job-isolation.js';
import { bridgeName } from '../../src/executor/network/job-network.js';
import { isolationOptions } from '../../src/executor/network/job-network-guards.js';
import { haveDockerAndImage, IMAGE, TERMINAL } from '../e2e/docker-e2e.js';
import { dockerUserChainWorks } from '../executor/network/netns-hosts.js';
import { commandAvailable, requireOrSkip, waitFor } from '../helpers/env.js';
import { makeDemoRepo } from '../helpers/repos.js';
import { BUILD_TIMEOUT_MS, buildImages, canBuildImages, docker, repo, version } from './images.js';

const ok =
  canBuildImages() &&
  haveDockerAndImage() &&
  requireOrSkip("Debian's docker-compose", commandAvailable('docker-compose')) &&
  requireOrSkip(
    'root and iptables with DOCKER-USER (the job network of the Compose executors)',
    process.getuid?.() === 0 && dockerUserChainWorks(),
  );

const X = 20 + (process.pid % 200);

interface Variant {
  name: 'sqlite' | 'postgres';
  files: string[];
  /** Third octet offset of the job subnet: the variants run one after the other, each its own. */
  net: number;
}
const VARIANTS: Variant[] = [
  { name: 'sqlite', files: ['compose.yaml'], net: 0 },
  { name: 'postgres', files: ['compose.yaml', 'compose.postgres.yaml'], net: 1 },
];

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

describe.skipIf(!ok).each(VARIANTS)(
  'deploy/compose with docker-compose ($name): server, two executors, one job',
  (variant) => {
    const PROJECT = `executor-compose-test-${process.pid}-${variant.name}`;
    const NET = `exj-cmp${process.pid % 100000}${variant.name[0]}`;
    const SUBNET = `10.95.${(X * 2 + variant.net) % 250}.0/24`;
    const fileArgs = variant.files.flatMap((f) => ['-f', path.join(repo, 'deploy/compose', f)]);
    const postgresPassword = randomBytes(20).toString('hex');
    let dir: string;
    let envFile: string;
    let api: ApiClient;
    let shas: { first: string; second: string };
    let wentDown = false;
    const apiToken = randomBytes(20).toString('hex');

    const compose = (args: string[], timeoutMs = 180_000) =>
      execFileSync('docker-compose', ['-p', PROJECT, '--env-file', envFile, ...fileArgs, ...args], {
        cwd: repo,
        stdio: 'pipe',
        timeout: timeoutMs,
      }).toString();
    const projectContainers = () =>
      docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${PROJECT}`]).trim();

    beforeAll(async () => {
      buildImages({ postgres: variant.name === 'postgres' });
      dir = mkdtempSync(path.join(tmpdir(), 'compose-e2e-'));
      shas = makeDemoRepo(path.join(dir, 'repos'));
      // The server's user must own the repositories, or git refuses them ("dubious ownership").
      execFileSync('chown', ['-R', '10001:10001', path.join(dir, 'repos')]);
      const port = await freePort();
      envFile = path.join(dir, 'compose.env');
      writeFileSync(
        envFile,
        [
          `EXECUTOR_IMAGE_TAG=${version}`,
          `EXECUTORS_ACCESS_TOKEN=${randomBytes(20).toString('hex')}`,
          `EXECUTOR_SERVER_API_TOKEN=${apiToken}`,
          `EXECUTOR_SERVER_PORT=${port}`,
          `EXECUTOR_REPOS_DIR=${path.join(dir, 'repos')}`,
          `EXECUTOR_WORKSPACES_DIR=${path.join(dir, 'workspaces')}`,
          'EXECUTOR_REPLICAS=2',
          `EXECUTOR_JOB_NETWORK_NAME=${NET}`,
          `EXECUTOR_JOB_NETWORK_SUBNET=${SUBNET}`,
          'EXECUTOR_JOB_NUM_CPUS=1',
          'EXECUTOR_JOB_MEMORY=512M',
          `POSTGRES_PASSWORD=${postgresPassword}`,
          `POSTGRES_IMAGE=executor-postgres:${version}`,
          '',
        ].join('\n'),
        { mode: 0o600 },
      );
      // --no-build: the images are the ones `npm run images` just built.
      compose(['up', '-d', '--no-build']);
      api = createApiClient({ server: `http://127.0.0.1:${port}`, token: apiToken });
    }, BUILD_TIMEOUT_MS);

    afterAll(async () => {
      try {
        if (envFile && !wentDown) compose(['down', '-v', '--timeout', '30']);
      } finally {
        const loaded = loadExecutorConfig({
          EXECUTOR_FRONTEND_URL: 'http://127.0.0.1:1',
          EXECUTOR_FRONTEND_PASSWORD: 'cleanup-only-password',
          EXECUTOR_QUEUE_NAME: 'default',
          EXECUTOR_JOB_NETWORK: 'isolated',
          EXECUTOR_JOB_NETWORK_NAME: NET,
          EXECUTOR_JOB_NETWORK_SUBNET: SUBNET,
        });
        if (loaded.ok) await removeIsolation(isolationOptions(loaded.config), bridgeName(NET));
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
    }, 120_000);

    it('starts the server (healthy) and two executors that register with it', async () => {
      const server = compose(['ps', '-q', 'server']).trim();
      expect(docker(['inspect', '-f', '{{.State.Health.Status}}', server]).trim()).toBe('healthy');
      expect(compose(['ps', '-q', 'executor']).trim().split('\n')).toHaveLength(2);
      const executors = await waitFor(
        async () => {
          const list = (await api.executors()).executors.filter((e) => e.active);
          return list.length === 2 ? list : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500, what: 'two executors to register' },
      );
      expect(new Set(executors.map((e) => e.name)).size).toBe(2);
    }, 90_000);

    it('runs a job submitted through the user API in a step container and serves its log', async () => {
      const job = await api.submit({
        queue: 'default',
        repository: { name: 'demo/hello', commit: shas.first },
        steps: [{ key: 'show', image: IMAGE, run: ['cat VERSION', 'echo ran in compose'] }],
      });
      // Generous: under load an executor may also be waiting out the job network's 30 s check cache.
      const final = await waitFor(
        async () => {
          const j = await api.getJob(job.id);
          return TERMINAL.has(j.state) ? j : undefined;
        },
        { timeoutMs: 150_000, intervalMs: 500, what: `job ${job.id} to end` },
      );
      expect(final.failureMessage).toBeNull();
      expect(final.state).toBe('completed');
      const names = (await api.executors()).executors.map((e) => e.name);
      expect(names).toContain(final.executor);

      const logs = await api.getLogs(job.id);
      const entries = Array.isArray(logs) ? logs : logs.entries;
      expect(entries.map((e) => e.key)).toEqual(
        expect.arrayContaining(['setup.git.fetch', 'setup.git.checkout', 'step.docker.show']),
      );
      const show = entries.find((e) => e.key === 'step.docker.show');
      expect(show?.exitCode).toBe(0);
      // The first commit's VERSION: the repository was cloned at the requested commit.
      expect(show?.out).toContain('stdout: one\n');
      expect(show?.out).toContain('stdout: ran in compose\n');

      if (variant.name === 'postgres') {
        // The server keeps its jobs in PostgreSQL, not in a SQLite file of its volume.
        const pg = compose(['ps', '-q', 'postgres']).trim();
        const row = docker([
          'exec',
          pg,
          'psql',
          '-U',
          'executor',
          '-d',
          'executor',
          '-tAc',
          `SELECT state FROM jobs WHERE id = ${job.id}`,
        ]);
        expect(row.trim()).toBe('completed');
        const server = compose(['ps', '-q', 'server']).trim();
        expect(docker(['exec', server, 'ls', '/var/lib/executor-server'])).not.toMatch(/executor\.db/);
      }
    }, 180_000);

    it('down removes every container, the network and the volume of the project', () => {
      const label = `label=com.docker.compose.project=${PROJECT}`;
      const networks = () => docker(['network', 'ls', '-q', '--filter', label]).trim();
      const volumes = () => docker(['volume', 'ls', '-q', '--filter', label]).trim();
      // The filters find the project's things while it is up (so the empty answers below mean gone).
      expect(projectContainers().split('\n')).toHaveLength(variant.name === 'postgres' ? 4 : 3);
      expect(networks()).not.toBe('');
      expect(volumes().split('\n')).toHaveLength(variant.name === 'postgres' ? 2 : 1);

      compose(['down', '-v', '--timeout', '30'], 120_000);
      wentDown = true;
      expect(projectContainers()).toBe('');
      expect(networks()).toBe('');
      expect(volumes()).toBe('');
      // No step container outlives the job either.
      expect(
        docker(['ps', '-aq', '--filter', 'label=executor.job', '--filter', `network=${NET}`]).trim(),
      ).toBe('');
    }, 150_000);
  },
);
