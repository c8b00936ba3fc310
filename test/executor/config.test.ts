import os from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  EXECUTOR_ENV,
  loadExecutorConfig,
  renderExecutorEnvDocs,
  renderExecutorEnvHelp,
} from '../../src/config/executor.js';

const base = {
  EXECUTOR_FRONTEND_URL: 'https://sg.example.com',
  EXECUTOR_FRONTEND_PASSWORD: 'hunter2',
  EXECUTOR_QUEUE_NAME: 'batches',
};

function ok(env: Record<string, string>) {
  const r = loadExecutorConfig(env);
  if (!r.ok) throw new Error(r.problems.join('\n'));
  return r.config;
}
function problems(env: Record<string, string>) {
  const r = loadExecutorConfig(env);
  if (r.ok) throw new Error('expected problems');
  return r.problems;
}

describe('loadExecutorConfig', () => {
  it('applies Sourcegraph defaults with normalised units', () => {
    const c = ok(base);
    expect(c).toMatchObject({
      frontendUrl: 'https://sg.example.com',
      queueName: 'batches',
      queueNames: [],
      pollIntervalMs: 1000,
      maximumNumJobs: 1,
      maximumRuntimePerJobMs: 30 * 60_000,
      jobNumCpus: 4,
      jobMemory: '12G',
      firecrackerDiskSpace: '20G',
      keepWorkspaces: false,
      numTotalJobs: 0,
      maxActiveTimeMs: 0,
      cleanupTaskIntervalMs: 60_000,
      dockerAdditionalMounts: [],
      dockerAddHostGateway: false,
      runtime: 'docker',
      jobPidsLimit: 1024,
      jobNetwork: 'isolated',
      jobNetworkName: 'executor-jobs',
      jobNetworkSubnet: { family: 4, address: '10.91.0.0', prefix: 22 },
      jobEgressAllow: [],
      maxLogBytes: 16 * 1024 * 1024,
      minFreeDiskBytes: 1024 ** 3,
      workspaceRoot: os.tmpdir(),
      httpRetry: { maxAttempts: 20, delayBaseMs: 50, delayMaxMs: 1000, retryAfterMaxMs: 3000, timeoutMs: 0 },
    });
    expect(c.metricsAddr).toBeUndefined();
    expect(c.executorName).toMatch(/^.+-[0-9a-f]{8}-[0-9a-f]{4}-/);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.httpRetry)).toBe(true);
  });

  it('reads EXECUTOR_JOB_DISK_SPACE as written and in bytes: 20G by default, 0 or at least 16M', () => {
    expect(ok(base).jobDiskSpace).toEqual({ text: '20G', bytes: 20 * 1024 ** 3 });
    expect(ok({ ...base, EXECUTOR_JOB_DISK_SPACE: '0' }).jobDiskSpace).toEqual({ text: '0', bytes: 0 });
    expect(ok({ ...base, EXECUTOR_JOB_DISK_SPACE: ' 64M ' }).jobDiskSpace).toEqual({
      text: '64M',
      bytes: 64 * 1024 ** 2,
    });
    for (const bad of ['1M', '20 apples', '-1G']) {
      expect(problems({ ...base, EXECUTOR_JOB_DISK_SPACE: bad })).toEqual([
        `EXECUTOR_JOB_DISK_SPACE: must be a size such as "20G" or "512M", at least 16M ("0" = no quota), got ${JSON.stringify(bad)}`,
      ]);
    }
  });

  it('regenerates the executor name per load unless EXECUTOR_NAME is set', () => {
    expect(ok(base).executorName).not.toBe(ok(base).executorName);
    expect(ok({ ...base, EXECUTOR_NAME: 'exec-1' }).executorName).toBe('exec-1');
    expect(ok({ ...base, HOSTNAME: 'box' }).executorName).toMatch(/^box-/);
  });

  it('reads every variable', () => {
    const c = ok({
      EXECUTOR_FRONTEND_URL: 'http://host.docker.internal:3080/base',
      EXECUTOR_FRONTEND_PASSWORD: 'pw',
      EXECUTOR_QUEUE_NAMES: 'zeta,alpha,my-queue',
      EXECUTOR_QUEUE_POLL_INTERVAL: '250ms',
      EXECUTOR_MAXIMUM_NUM_JOBS: '3',
      EXECUTOR_MAXIMUM_RUNTIME_PER_JOB: '1h30m',
      EXECUTOR_JOB_NUM_CPUS: '0',
      EXECUTOR_FIRECRACKER_MEMORY: '2G',
      EXECUTOR_KEEP_WORKSPACES: 'true',
      EXECUTOR_NUM_TOTAL_JOBS: '5',
      EXECUTOR_MAX_ACTIVE_TIME: '2h',
      EXECUTOR_CLEANUP_TASK_INTERVAL: '30s',
      EXECUTOR_DOCKER_HOST_MOUNT_PATH: '/host/tmp',
      EXECUTOR_DOCKER_ADDITIONAL_MOUNTS: 'type=bind,source=/a,target=/b;type=volume,source=v,dst=/c',
      EXECUTOR_DOCKER_ADD_HOST_GATEWAY: 'T',
      EXECUTOR_DOCKER_AUTH_CONFIG: '{"auths":{"r.example":{"auth":"dXNlcjpwdw=="}}}',
      EXECUTOR_RUNTIME: 'gvisor',
      EXECUTOR_JOB_PIDS_LIMIT: '64',
      EXECUTOR_JOB_NETWORK: 'none',
      EXECUTOR_MAX_LOG_BYTES: '1MiB',
      EXECUTOR_MIN_FREE_DISK: '0',
      EXECUTOR_METRICS_ADDR: ':9090',
      EXECUTOR_WORKSPACE_ROOT: '/var/tmp',
      SRC_HTTP_CLI_INTERNAL_RETRY_MAX_ATTEMPTS: '2',
    });
    expect(c).toMatchObject({
      queueName: undefined,
      queueNames: ['alpha', 'my-queue', 'zeta'],
      pollIntervalMs: 250,
      maximumNumJobs: 3,
      maximumRuntimePerJobMs: 90 * 60_000,
      jobNumCpus: 0,
      jobMemory: '2G',
      keepWorkspaces: true,
      numTotalJobs: 5,
      maxActiveTimeMs: 7_200_000,
      cleanupTaskIntervalMs: 30_000,
      dockerHostMountPath: '/host/tmp',
      dockerAdditionalMounts: ['type=bind,source=/a,target=/b', 'type=volume,source=v,dst=/c'],
      dockerAddHostGateway: true,
      dockerAuthConfig: { auths: { 'r.example': { auth: 'dXNlcjpwdw==' } } },
      runtime: 'gvisor',
      jobPidsLimit: 64,
      jobNetwork: 'none',
      maxLogBytes: 1024 * 1024,
      minFreeDiskBytes: 0,
      metricsAddr: { host: '0.0.0.0', port: 9090 },
      workspaceRoot: '/var/tmp',
      httpRetry: { maxAttempts: 2 },
    });
  });

  it('refuses firecracker, however asked for, saying what to use instead', () => {
    const refused =
      'the firecracker runtime is not available in this build; use the vm runtime (a QEMU microVM per step, with KVM) or the gvisor runtime for strong isolation without KVM';
    expect(problems({ ...base, EXECUTOR_RUNTIME: 'firecracker' })).toEqual([`EXECUTOR_RUNTIME: ${refused}`]);
    expect(problems({ ...base, EXECUTOR_USE_FIRECRACKER: 'true' })).toEqual([
      `EXECUTOR_USE_FIRECRACKER: ${refused}`,
    ]);
    expect(problems({ ...base, EXECUTOR_USE_FIRECRACKER: 'true', EXECUTOR_RUNTIME: 'firecracker' })).toEqual([
      `EXECUTOR_RUNTIME: ${refused}`,
    ]);
    expect(problems({ ...base, EXECUTOR_RUNTIME: 'podman' })).toEqual([
      'EXECUTOR_RUNTIME: must be one of docker, gvisor, shell, kubernetes, vm',
    ]);
  });

  it('the vm runtime: its settings with defaults, and bad values named', () => {
    const r = loadExecutorConfig({ ...base, EXECUTOR_RUNTIME: 'vm' });
    if (!r.ok) throw new Error(r.problems.join('\n'));
    expect(r.config.runtime).toBe('vm');
    expect(r.config.vm).toEqual({
      qemu: 'qemu-system-x86_64',
      assetsDir: '/var/lib/executor/vm',
      allowEmulation: false,
      imageCacheDir: '/var/cache/executor/vm-images',
      imageCacheBytes: 20 * 1024 ** 3,
    });
    expect(
      problems({
        ...base,
        EXECUTOR_RUNTIME: 'vm',
        EXECUTOR_VM_ASSETS_DIR: 'relative',
        EXECUTOR_VM_ALLOW_EMULATION: 'maybe',
        EXECUTOR_VM_IMAGE_CACHE_SIZE: '1M',
      }),
    ).toEqual([
      'EXECUTOR_VM_ASSETS_DIR: must be an absolute path',
      'EXECUTOR_VM_ALLOW_EMULATION: must be true or false, got "maybe"',
      'EXECUTOR_VM_IMAGE_CACHE_SIZE: must be at least 64MiB',
    ]);
  });

  it('a runtime contradicting EXECUTOR_USE_FIRECRACKER=true is a problem', () => {
    expect(problems({ ...base, EXECUTOR_USE_FIRECRACKER: 'true', EXECUTOR_RUNTIME: 'docker' })).toEqual([
      expect.stringContaining('EXECUTOR_RUNTIME'),
    ]);
  });

  it('reports every problem at once, each naming its variable', () => {
    const p = problems({
      EXECUTOR_QUEUE_NAME: 'a',
      EXECUTOR_QUEUE_NAMES: 'b,c',
      EXECUTOR_QUEUE_POLL_INTERVAL: 'soon',
      EXECUTOR_MAXIMUM_NUM_JOBS: '0',
      EXECUTOR_KEEP_WORKSPACES: 'yes',
      EXECUTOR_RUNTIME: 'podman',
      EXECUTOR_JOB_NETWORK: 'host',
      EXECUTOR_MAX_LOG_BYTES: 'lots',
      EXECUTOR_DOCKER_AUTH_CONFIG: '{nope',
      EXECUTOR_METRICS_ADDR: 'nine',
      EXECUTOR_JOB_MEMORY: 'twelve',
    });
    const names = p.map((l) => l.split(':')[0]);
    for (const n of [
      'EXECUTOR_FRONTEND_URL',
      'EXECUTOR_FRONTEND_PASSWORD',
      'EXECUTOR_QUEUE_NAME',
      'EXECUTOR_QUEUE_POLL_INTERVAL',
      'EXECUTOR_MAXIMUM_NUM_JOBS',
      'EXECUTOR_KEEP_WORKSPACES',
      'EXECUTOR_RUNTIME',
      'EXECUTOR_JOB_NETWORK',
      'EXECUTOR_MAX_LOG_BYTES',
      'EXECUTOR_DOCKER_AUTH_CONFIG',
      'EXECUTOR_METRICS_ADDR',
      'EXECUTOR_JOB_MEMORY',
    ]) {
      expect(names, n).toContain(n);
    }
    expect(p.join('\n')).toContain('both EXECUTOR_QUEUE_NAME and EXECUTOR_QUEUE_NAMES are set');
  });

  it('requires a queue', () => {
    expect(problems({ EXECUTOR_FRONTEND_URL: 'https://x', EXECUTOR_FRONTEND_PASSWORD: 'p' })).toEqual([
      'EXECUTOR_QUEUE_NAME: neither EXECUTOR_QUEUE_NAME nor EXECUTOR_QUEUE_NAMES is set',
    ]);
  });

  it('validates the frontend URL: scheme and host; host.docker.internal needs the host gateway', () => {
    expect(problems({ ...base, EXECUTOR_FRONTEND_URL: 'sg.example.com' })[0]).toMatch(
      /^EXECUTOR_FRONTEND_URL: /,
    );
    expect(problems({ ...base, EXECUTOR_FRONTEND_URL: 'ftp://x' })[0]).toMatch(/^EXECUTOR_FRONTEND_URL: /);
    expect(problems({ ...base, EXECUTOR_FRONTEND_URL: 'http://host.docker.internal:3080' })).toEqual([
      'EXECUTOR_FRONTEND_URL: host.docker.internal requires EXECUTOR_DOCKER_ADD_HOST_GATEWAY=true',
    ]);
  });

  it('rejects bad queue names and mounts without a target', () => {
    expect(problems({ ...base, EXECUTOR_QUEUE_NAME: 'has space' })[0]).toMatch(/^EXECUTOR_QUEUE_NAME:/);
    expect(
      problems({
        ...base,
        EXECUTOR_QUEUE_NAME: undefined as unknown as string,
        EXECUTOR_QUEUE_NAMES: 'a,,b',
      })[0],
    ).toMatch(/^EXECUTOR_QUEUE_NAMES:/);
    expect(problems({ ...base, EXECUTOR_DOCKER_ADDITIONAL_MOUNTS: 'type=bind,source=/a' })[0]).toContain(
      'has no target',
    );
    expect(
      problems({
        ...base,
        EXECUTOR_DOCKER_ADDITIONAL_MOUNTS: 'type=bind,source=/a,target=/b,type=bind,source=/c,target=/d',
      })[0],
    ).toContain('incorrect separator');
  });

  it('flags override the environment', () => {
    expect(loadExecutorConfig(base, { EXECUTOR_MAXIMUM_NUM_JOBS: '7' })).toMatchObject({
      ok: true,
      config: { maximumNumJobs: 7 },
    });
  });

  it('documents every variable in the generated table', () => {
    const doc = renderExecutorEnvDocs();
    for (const [name, d] of Object.entries(EXECUTOR_ENV)) {
      expect(d.description.length).toBeGreaterThan(10);
      expect(doc).toContain(`\`${name}\``);
    }
  });
});

describe('docs/configuration.md', () => {
  it('holds the generated executor table, current with the declarations', async () => {
    const { readFile } = await import('node:fs/promises');
    const doc = await readFile(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    expect(doc).toContain('## Executor (executor run)');
    expect(doc).toContain(renderExecutorEnvDocs());
  });
});

describe('executor run --help', () => {
  it('lists every variable with its default and one-line description, Firecracker last', () => {
    const help = renderExecutorEnvHelp();
    for (const name of Object.keys(EXECUTOR_ENV)) expect(help).toMatch(new RegExp(`^  ${name}( \\(|$)`, 'm'));
    expect(help).toContain(
      '  EXECUTOR_JOB_NUM_CPUS (default 4)\n      CPUs per job (container limit; sent on dequeue as numCPUs).\n',
    );
    expect(help).toContain('  EXECUTOR_FRONTEND_URL (required)\n      URL of the queue server');
    const compat = help.indexOf("Accepted for compatibility with Sourcegraph's executor");
    expect(compat).toBeGreaterThan(help.indexOf('Kubernetes runtime (EXECUTOR_RUNTIME=kubernetes):'));
    expect(help.indexOf('EXECUTOR_USE_FIRECRACKER')).toBeGreaterThan(compat);
    expect(help.indexOf('EXECUTOR_FIRECRACKER_DISK_SPACE')).toBeGreaterThan(compat);
    // Every name line is followed by its description, and no line is wider than 100 columns.
    const lines = help.split('\n');
    lines.forEach((l, i) => {
      expect(l.length, l).toBeLessThanOrEqual(100);
      if (/^ {2}[A-Z_]+( \(|$)/.test(l)) expect(lines[i + 1], l).toMatch(/^ {6}\S/);
    });
  });
});
