/**
 * The registry mirror path, for real and with no internet: registry A (Debian's docker-registry)
 * holds `library/<name>`; registry B runs deploy/registry-mirror/config.yml as a pull-through cache
 * of A; a second Docker daemon, started here with the daemon.json `executor install` wrote, uses B
 * as its mirror; a job whose step image is `<name>` (that is, docker.io/library/<name>) runs through
 * the executor's docker runtime on that daemon. Docker consults mirrors only for Docker Hub images
 * and Docker Hub cannot be reached here, so the step can only have run if the pull went through B.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiLogEntry } from '../../src/cli/api-client.js';
import { dockerFactsFromDaemon } from '../../src/cli/install.js';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { runValidation } from '../../src/cli/validate.js';
import { DAEMON_JSON_PATH, runInstall } from '../../src/executor/install/install.js';
import { createLogger } from '../../src/lib/logger.js';
import { commandAvailable, dockerAvailable, requireOrSkip, waitFor } from '../helpers/env.js';

const MIRROR_CONFIG = fileURLToPath(new URL('../../deploy/registry-mirror/config.yml', import.meta.url));
const REGISTRY_BIN = '/usr/bin/docker-registry';
const SOURCE_IMAGE = 'executor-test/busybox:latest';

const ready =
  requireOrSkip('docker', dockerAvailable()) &&
  requireOrSkip('docker-registry (apt-get install docker-registry)', existsSync(REGISTRY_BIN)) &&
  requireOrSkip('dockerd', commandAvailable('dockerd')) &&
  requireOrSkip(
    `image ${SOURCE_IMAGE} (scripts/build-test-images.sh)`,
    dockerAvailable() &&
      (() => {
        try {
          execFileSync('docker', ['image', 'inspect', SOURCE_IMAGE], { stdio: 'pipe' });
          return true;
        } catch {
          return false;
        }
      })(),
  );

function imageId(dockerArgs: string[], ref: string): string {
  return execFileSync('docker', [...dockerArgs, 'image', 'inspect', '--format', '{{.Id}}', ref], {
    stdio: 'pipe',
  })
    .toString()
    .trim();
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<void>;
}

function start(cmd: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  });
  child.stderr?.on('data', (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return { child, output: () => out, exited };
}

async function stop(p: Proc | undefined, timeoutMs = 20_000): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  await p.exited;
  clearTimeout(timer);
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url);
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

describe.skipIf(!ready)('registry mirror (pull-through cache) end to end', () => {
  const name = `mirrortest-${randomBytes(4).toString('hex')}`;
  let tmp: string;
  let portA: number;
  let portB: number;
  let upstream: Proc | undefined;
  let mirror: Proc | undefined;
  let dockerd: Proc | undefined;
  const bridgeName = `exm${process.pid % 100000}`;
  let socket: string;
  let cluster: LocalCluster | undefined;
  let sourceId: string;
  const savedDockerHost = process.env.DOCKER_HOST;
  const pushedTag = () => `127.0.0.1:${portA}/library/${name}:latest`;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'mirror-'));
    portA = await freePort();
    portB = await freePort();

    // Registry A: the "Docker Hub" of this test.
    const configA = path.join(tmp, 'upstream.yml');
    writeFileSync(
      configA,
      [
        'version: 0.1',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${path.join(tmp, 'upstream-data')}`,
        'http:',
        `  addr: 127.0.0.1:${portA}`,
        '',
      ].join('\n'),
    );
    upstream = start(REGISTRY_BIN, ['serve', configA]);
    await waitFor(() => answers(`http://127.0.0.1:${portA}/v2/`), {
      timeoutMs: 20_000,
      what: `registry A on ${portA}: ${upstream?.output()}`,
    });
    sourceId = imageId([], SOURCE_IMAGE);
    execFileSync('docker', ['tag', SOURCE_IMAGE, pushedTag()]);
    execFileSync('docker', ['push', pushedTag()], { stdio: 'pipe', timeout: 60_000 });

    // Registry B: the shipped mirror configuration, pointed at A through the environment.
    mirror = start(REGISTRY_BIN, ['serve', MIRROR_CONFIG], {
      REGISTRY_HTTP_ADDR: `127.0.0.1:${portB}`,
      REGISTRY_PROXY_REMOTEURL: `http://127.0.0.1:${portA}`,
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(tmp, 'mirror-data'),
    });
    await waitFor(() => answers(`http://127.0.0.1:${portB}/v2/`), {
      timeoutMs: 20_000,
      what: `registry B on ${portB}: ${mirror?.output()}`,
    });

    // The second daemon's daemon.json is the one `executor install` writes.
    const root = path.join(tmp, 'root');
    const installed = await runInstall({
      root,
      dryRun: false,
      withGvisor: false,
      registryMirrors: [`http://127.0.0.1:${portB}`],
      binPath: '/usr/local/bin/executor',
      runscPath: '/usr/bin/runsc',
      env: {},
      dockerFacts: () => dockerFactsFromDaemon(),
      reloadDocker: async () => {},
    });
    expect(installed.items.find((i) => i.path === DAEMON_JSON_PATH)?.status).toBe('create');

    // A second Docker daemon: own state and socket, its own bridge and no iptables so the host's
    // networking is left alone (steps run with network none). Not `--bridge=none`: a daemon started
    // that way deletes the host's docker0, which breaks the host daemon's bridge networking.
    execFileSync('ip', ['link', 'add', bridgeName, 'type', 'bridge'], { stdio: 'pipe' });
    const d = path.join(tmp, 'd');
    mkdirSync(d, { recursive: true });
    socket = path.join(d, 'docker.sock');
    dockerd = start('dockerd', [
      '--config-file',
      path.join(root, DAEMON_JSON_PATH),
      '--data-root',
      path.join(d, 'data'),
      '--exec-root',
      path.join(d, 'exec'),
      '--pidfile',
      path.join(d, 'docker.pid'),
      '-H',
      `unix://${socket}`,
      `--bridge=${bridgeName}`,
      '--iptables=false',
      '--ip-masq=false',
      '--storage-driver=vfs',
    ]);
    await waitFor(
      () => {
        try {
          execFileSync('docker', ['-H', `unix://${socket}`, 'version'], { stdio: 'pipe', timeout: 5_000 });
          return true;
        } catch {
          return dockerd?.child.exitCode !== null ? Promise.reject(new Error(dockerd?.output())) : false;
        }
      },
      { timeoutMs: 60_000, intervalMs: 250, what: 'the second dockerd' },
    );
    // Only the executor's Docker client is pointed at the second daemon (this worker process).
    process.env.DOCKER_HOST = `unix://${socket}`;
  }, 180_000);

  afterAll(async () => {
    await cluster?.stop({ force: true });
    if (savedDockerHost === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = savedDockerHost;
    if (dockerd && existsSync(socket)) {
      try {
        const ids = execFileSync('docker', ['-H', `unix://${socket}`, 'ps', '-aq'], { stdio: 'pipe' })
          .toString()
          .split('\n')
          .filter(Boolean);
        if (ids.length > 0)
          execFileSync('docker', ['-H', `unix://${socket}`, 'rm', '-f', ...ids], { stdio: 'pipe' });
      } catch {
        // the daemon is going away with its data root anyway
      }
    }
    await stop(dockerd, 30_000);
    try {
      execFileSync('ip', ['link', 'delete', bridgeName], { stdio: 'pipe' });
    } catch {
      // never created
    }
    await stop(mirror);
    await stop(upstream);
    if (portA) {
      try {
        execFileSync('docker', ['rmi', pushedTag()], { stdio: 'pipe' });
      } catch {
        // not tagged (setup failed before)
      }
    }
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }, 90_000);

  it('the daemon uses the mirror, and validate says so', async () => {
    const facts = await dockerFactsFromDaemon();
    expect(facts.mirrors.map((m) => m.replace(/\/$/, ''))).toEqual([`http://127.0.0.1:${portB}`]);

    const lines: string[] = [];
    await runValidation(
      {
        PATH: process.env.PATH,
        EXECUTOR_FRONTEND_URL: 'http://127.0.0.1:9',
        EXECUTOR_FRONTEND_PASSWORD: 'unused',
        EXECUTOR_QUEUE_NAME: 'q',
        EXECUTOR_DOCKER_REGISTRY_MIRROR_URL: `http://127.0.0.1:${portB}`,
        SRC_HTTP_CLI_INTERNAL_RETRY_MAX_ATTEMPTS: '1',
      },
      (l) => lines.push(l),
    );
    expect(lines).toContain(
      `✓ registry mirror: the Docker daemon uses registry mirror(s) http://127.0.0.1:${portB}`,
    );

    const wrong: string[] = [];
    await runValidation(
      {
        PATH: process.env.PATH,
        EXECUTOR_FRONTEND_URL: 'http://127.0.0.1:9',
        EXECUTOR_FRONTEND_PASSWORD: 'unused',
        EXECUTOR_QUEUE_NAME: 'q',
        EXECUTOR_DOCKER_REGISTRY_MIRROR_URL: 'http://127.0.0.1:1',
        SRC_HTTP_CLI_INTERNAL_RETRY_MAX_ATTEMPTS: '1',
      },
      (l) => wrong.push(l),
    );
    expect(wrong.find((l) => l.startsWith('✗ registry mirror: '))).toContain('names http://127.0.0.1:1');
  }, 60_000);

  it(`a job step with image "<name>" pulls docker.io/library/<name> through the mirror`, async () => {
    const dockerB = ['-H', `unix://${socket}`];
    // Not on the second daemon before the job: the job's pull is what fetches it.
    expect(() => execFileSync('docker', [...dockerB, 'image', 'inspect', name], { stdio: 'pipe' })).toThrow();

    const workspaces = path.join(tmp, 'ws');
    mkdirSync(workspaces, { recursive: true });
    cluster = await startLocalCluster({
      dataDir: path.join(tmp, 'server'),
      runtime: 'docker',
      logger: createLogger({ level: 'error' }),
      executorEnv: {
        DOCKER_HOST: `unix://${socket}`,
        EXECUTOR_JOB_NETWORK: 'none',
        EXECUTOR_JOB_NUM_CPUS: '0',
        EXECUTOR_JOB_MEMORY: '0',
        EXECUTOR_WORKSPACE_ROOT: workspaces,
        EXECUTOR_DOCKER_REGISTRY_MIRROR_URL: `http://127.0.0.1:${portB}`,
        EXECUTOR_MIN_FREE_DISK: '0',
      },
    });
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [
        { key: 'hello', image: name, run: 'echo "hello through the mirror"; cat /etc/passwd | head -1' },
      ],
    });
    const final = await cluster.api.followLogs(job.id, () => {});
    const logs = (await cluster.api.getLogs(job.id)) as { entries: ApiLogEntry[] } | ApiLogEntry[];
    const entries = Array.isArray(logs) ? logs : logs.entries;
    expect(final.state, JSON.stringify(entries)).toBe('completed');
    expect(entries.find((e) => e.key === 'step.docker.hello')?.out).toContain('hello through the mirror');

    // The image is now on the second daemon as docker.io/library/<name>, identical to the source...
    expect(imageId(dockerB, name)).toBe(sourceId);
    // ...and the mirror cached it: its catalog lists the repository, its storage holds the blobs.
    const catalog = (await (await fetch(`http://127.0.0.1:${portB}/v2/_catalog`)).json()) as {
      repositories: string[];
    };
    expect(catalog.repositories).toContain(`library/${name}`);
    expect(existsSync(path.join(tmp, 'mirror-data', 'docker/registry/v2/repositories/library', name))).toBe(
      true,
    );
  }, 180_000);
});
