/**
 * Unprivileged steps, end to end: a second Docker daemon started here with
 * `--userns-remap=default` (the setting `executor install --userns-remap` writes), the test image
 * loaded into it, and a real job run by our server and executor on that daemon. Root inside the step
 * must be an unprivileged uid on the host: the file the step writes into the workspace is owned by
 * the remapped uid, while the step itself sees uid 0; the job still clones, writes and completes,
 * and the workspace is removed afterwards.
 *
 * Machine change: the first run on a host makes dockerd create the `dockremap` user and its
 * /etc/subuid and /etc/subgid ranges (with useradd and usermod), exactly as it does for
 * `executor install --userns-remap`. The host's own daemon and /etc/docker/daemon.json are not
 * touched.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerFactsFromDaemon } from '../../src/cli/install.js';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { remappedCheck } from '../../src/executor/install/userns-remap.js';
import { detectUsernsRemap, type RemappedRoot } from '../../src/executor/runtimes/docker/userns.js';
import { validateDocker } from '../../src/executor/runtimes/docker/validate.js';
import { IMAGE_SUFFIX, releaseDiskImage } from '../../src/executor/workspace/disk-image.js';
import { createLogger } from '../../src/lib/logger.js';
import { commandAvailable, requireOrSkip } from '../helpers/env.js';
import { makeDemoRepo } from '../helpers/repos.js';
import { type SecondDockerd, startSecondDockerd } from '../helpers/second-dockerd.js';
import { apiEntries, entry, haveDockerAndImage, IMAGE, waitForEnd } from './docker-e2e.js';

const ready =
  haveDockerAndImage() &&
  requireOrSkip('root (a second dockerd)', process.getuid?.() === 0) &&
  requireOrSkip('dockerd', commandAvailable('dockerd'));

describe.skipIf(!ready)('steps under Docker user-namespace remapping', () => {
  let daemon: SecondDockerd | undefined;
  let cluster: LocalCluster | undefined;
  let root: RemappedRoot;
  let workspaces: string;
  let shas: { first: string; second: string };
  const savedDockerHost = process.env.DOCKER_HOST;

  beforeAll(async () => {
    daemon = await startSecondDockerd(['--userns-remap=default'], 'userns');
    // The remapped daemon has its own image store: load the test image into it.
    const saved = execFileSync('docker', ['save', IMAGE], { maxBuffer: 256 * 1024 * 1024 });
    daemon.docker(['load'], saved);

    const remap = await detectUsernsRemap(new Dockerode({ socketPath: daemon.host.slice('unix://'.length) }));
    if (!remap.remapped) throw new Error(`the second daemon does not remap:\n${daemon.output()}`);
    root = remap.root;

    const data = path.join(daemon.dir, 'cluster');
    shas = makeDemoRepo(path.join(data, 'repos'));
    workspaces = path.join(daemon.dir, 'workspaces');
    mkdirSync(workspaces, { recursive: true });
    // The executor's Docker client (dockerode reads DOCKER_HOST) talks to the second daemon; the
    // variable is this worker process's own.
    process.env.DOCKER_HOST = daemon.host;
    cluster = await startLocalCluster({
      dataDir: data,
      runtime: 'docker',
      logger: createLogger({ level: 'error' }),
      executorEnv: {
        DOCKER_HOST: daemon.host,
        // The clone runs on the host (git through the executor's proxy); the step needs no network.
        EXECUTOR_JOB_NETWORK: 'none',
        EXECUTOR_JOB_NUM_CPUS: '0',
        EXECUTOR_JOB_MEMORY: '0',
        EXECUTOR_WORKSPACE_ROOT: workspaces,
        EXECUTOR_KEEP_WORKSPACES: 'true',
        EXECUTOR_MIN_FREE_DISK: '0',
      },
    });
  }, 180_000);

  afterAll(async () => {
    await cluster?.stop({ force: true });
    // The kept workspace is still its mounted disk image (EXECUTOR_JOB_DISK_SPACE).
    for (const n of workspaces ? readdirSync(workspaces) : []) {
      if (n.endsWith(IMAGE_SUFFIX))
        await releaseDiskImage(path.join(workspaces, n.slice(0, -IMAGE_SUFFIX.length)));
    }
    if (savedDockerHost === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = savedDockerHost;
    await daemon?.stop();
  }, 120_000);

  it('detects the remapped root; validate and install report it', async () => {
    expect(root.uid).toBeGreaterThan(0);
    expect(root.gid).toBeGreaterThan(0);
    // dockerd took its ids from the remap user's subordinate ranges (created on first use).
    const sub = execFileSync('getent', ['passwd', 'dockremap']).toString();
    expect(sub).toMatch(/^dockremap:/);
    const checks = await validateDocker(new Dockerode(), 'docker');
    expect(checks).toContainEqual({
      name: 'user namespaces',
      ok: true,
      detail: `remapped, root in steps is uid ${root.uid} on the host (gid ${root.gid}); workspaces are given to it`,
    });
    // What `executor install --userns-remap` reads after its restart.
    const facts = await dockerFactsFromDaemon(new Dockerode());
    expect(facts.rootDir).toMatch(new RegExp(`/${root.uid}\\.${root.gid}$`));
    expect(remappedCheck(facts)).toMatchObject({ ok: true });
    expect(remappedCheck(facts).detail).toContain(`root in steps is uid ${root.uid} on the host`);
  });

  it('root in a step is the remapped uid on the host; the job clones, writes and completes', async () => {
    if (!cluster) throw new Error('no cluster');
    const job = await cluster.api.submit({
      queue: 'default',
      repository: { name: 'demo/hello', commit: shas.first },
      files: { 'in/data.txt': 'from a file\n' },
      steps: [
        {
          key: 'write',
          image: IMAGE,
          run: [
            'echo "uid=$(id -u) gid=$(id -g)"',
            'cat VERSION',
            'cat in/data.txt',
            'echo written-by-step > out.txt',
            'mkdir -p made/by/step && touch made/by/step/f',
            'git status >/dev/null 2>&1 || true',
          ],
        },
        { key: 'read', image: IMAGE, run: 'cat out.txt; rm in/data.txt; echo removed' },
      ],
    });
    const final = await waitForEnd(cluster, job.id);
    const entries = await apiEntries(cluster, job.id);
    expect(final.state, JSON.stringify(entries, null, 1)).toBe('completed');
    const write = entry(entries, 'step.docker.write');
    expect(write.out).toContain('uid=0 gid=0');
    expect(write.out).toContain('from a file');
    expect(entry(entries, 'step.docker.read').out).toContain('written-by-step');
    expect(entry(entries, 'step.docker.read').out).toContain('removed');
    expect(entry(entries, 'setup.git.checkout').exitCode).toBe(0);

    // The kept workspace: what the step made belongs to the remapped root, and so does what the
    // executor cloned and wrote (it was handed over before the first step ran).
    const kept = readdirSync(workspaces).filter(
      (n) => n.startsWith(`workspace-${job.id}-`) && !n.endsWith('.json') && !n.endsWith(IMAGE_SUFFIX),
    );
    expect(kept).toHaveLength(1);
    const ws = path.join(workspaces, kept[0]!);
    for (const p of [
      '',
      'out.txt',
      'made/by/step/f',
      'VERSION',
      '.git',
      '.git/HEAD',
      '.sourcegraph-executor',
    ]) {
      const st = statSync(path.join(ws, p));
      expect([p, st.uid, st.gid]).toEqual([p, root.uid, root.gid]);
    }
    expect(existsSync(path.join(ws, 'in/data.txt'))).toBe(false);
  }, 180_000);

  it('removes the workspace after the job when it is not kept', async () => {
    if (!cluster || !daemon) throw new Error('no cluster');
    // A second executor on the same server and daemon, with the default (remove) policy.
    await cluster.stop({ force: true });
    const removeRoot = path.join(daemon.dir, 'workspaces-removed');
    mkdirSync(removeRoot, { recursive: true });
    cluster = await startLocalCluster({
      dataDir: path.join(daemon.dir, 'cluster2'),
      runtime: 'docker',
      logger: createLogger({ level: 'error' }),
      executorEnv: {
        DOCKER_HOST: daemon.host,
        EXECUTOR_JOB_NETWORK: 'none',
        EXECUTOR_JOB_NUM_CPUS: '0',
        EXECUTOR_JOB_MEMORY: '0',
        EXECUTOR_WORKSPACE_ROOT: removeRoot,
        EXECUTOR_MIN_FREE_DISK: '0',
      },
    });
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [{ key: 'deep', image: IMAGE, run: 'mkdir -p a/b/c && echo x > a/b/c/f && chmod 500 a/b/c' }],
    });
    const final = await waitForEnd(cluster, job.id);
    expect(final.state).toBe('completed');
    const teardown = entry(await apiEntries(cluster, job.id), 'teardown.fs');
    expect(teardown.out).not.toContain('Operation failed');
    expect(readdirSync(removeRoot)).toEqual([]);
  }, 180_000);
});
