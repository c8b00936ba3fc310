import { describe, expect, it } from 'vitest';
import {
  type ContainerInput,
  type ContainerSettings,
  clampCpus,
  containerWorkdir,
  dockerConfigJson,
  dockerRunArgv,
  effectiveAuthConfig,
  exposesDaemonSocket,
  formatMountSpec,
  hostWorkspaceDir,
  memoryBytes,
  normaliseRegistryKey,
  parseMountSpec,
  parseMountSpecs,
  pullAuthFor,
  registryOf,
  toContainerCreateOptions,
} from '../../../../src/executor/runtimes/docker/convert.js';
import type { RunSpec } from '../../../../src/executor/runtimes/types.js';

const baseSettings: ContainerSettings = {
  kind: 'docker',
  executorName: 'exec-1',
  hostname: 'host-a',
  pid: 4242,
  cpus: 0,
  memory: '0',
  pidsLimit: 1024,
  network: 'bridge',
  mounts: [],
  addHostGateway: false,
};

const baseSpec: RunSpec = {
  key: 'step.docker.build',
  stepIndex: 0,
  image: 'alpine:3',
  scriptPath: '.sourcegraph-executor/42.0_repo@abc.sh',
  dir: '',
  env: ['FOO=bar', 'EMPTY='],
};

function input(over: { spec?: Partial<RunSpec>; settings?: Partial<ContainerSettings>; job?: object } = {}) {
  return {
    spec: { ...baseSpec, env: [...baseSpec.env], ...over.spec },
    job: { id: 42, ...over.job },
    workspacePath: '/var/lib/executor/workspaces/job-42-abc',
    settings: { ...baseSettings, ...over.settings },
  } as ContainerInput;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('toContainerCreateOptions', () => {
  it('runs the step script with /bin/sh from the workspace mounted at /data', () => {
    const o = toContainerCreateOptions(input());
    expect(o.Image).toBe('alpine:3');
    expect(o.Entrypoint).toEqual(['/bin/sh']);
    expect(o.Cmd).toEqual(['/data/.sourcegraph-executor/42.0_repo@abc.sh']);
    expect(o.WorkingDir).toBe('/data');
    expect(o.Env).toEqual(['FOO=bar', 'EMPTY=']);
    expect(o.HostConfig?.Binds).toEqual(['/var/lib/executor/workspaces/job-42-abc:/data']);
    expect(o.Tty).toBe(false);
  });

  it('limits the writable layer only when the runtime found the storage driver able', () => {
    expect(toContainerCreateOptions(input()).HostConfig?.StorageOpt).toBeUndefined();
    expect(dockerRunArgv(input())).not.toContain('--storage-opt');
    const limited = input({ settings: { storageSize: '20G' } });
    expect(toContainerCreateOptions(limited).HostConfig?.StorageOpt).toEqual({ size: '20G' });
    const argv = dockerRunArgv(limited);
    expect(argv.slice(argv.indexOf('--storage-opt'), argv.indexOf('--storage-opt') + 2)).toEqual([
      '--storage-opt',
      'size=20G',
    ]);
  });

  it('joins the step dir under /data', () => {
    expect(toContainerCreateOptions(input({ spec: { dir: 'sub/dir' } })).WorkingDir).toBe('/data/sub/dir');
    expect(toContainerCreateOptions(input({ spec: { dir: './a/../b/' } })).WorkingDir).toBe('/data/b/');
  });

  it('refuses a step dir that leaves the workspace', () => {
    expect(() => toContainerCreateOptions(input({ spec: { dir: '../etc' } }))).toThrow(
      /leaves the workspace/,
    );
    expect(() => containerWorkdir('a/../../..')).toThrow(/leaves the workspace/);
    expect(() => containerWorkdir('../data-other')).toThrow(/leaves the workspace/);
  });

  it('hardens every container', () => {
    const h = toContainerCreateOptions(input()).HostConfig!;
    expect(h.SecurityOpt).toEqual(['no-new-privileges']);
    expect(h.CapDrop).toEqual(['ALL']);
    expect(h.CapAdd).toBeUndefined();
    expect(h.Privileged).toBeUndefined();
    expect(h.PidsLimit).toBe(1024);
    expect(h.Init).toBe(true);
    expect(h.AutoRemove).toBe(false);
    expect(h.LogConfig).toEqual({ Type: 'none', Config: {} });
    expect(h.NetworkMode).toBe('bridge');
    expect(h.Runtime).toBeUndefined();
    expect(JSON.stringify(h)).not.toContain('docker.sock');
  });

  it('uses the configured pids limit and network', () => {
    const h = toContainerCreateOptions(input({ settings: { pidsLimit: 64, network: 'none' } })).HostConfig!;
    expect(h.PidsLimit).toBe(64);
    expect(h.NetworkMode).toBe('none');
  });

  it('omits cpu and memory limits when 0 or empty', () => {
    for (const memory of ['0', '', ' ']) {
      const h = toContainerCreateOptions(input({ settings: { cpus: 0, memory } })).HostConfig!;
      expect(h.NanoCpus).toBeUndefined();
      expect(h.Memory).toBeUndefined();
      expect(h.MemorySwap).toBeUndefined();
    }
  });

  it('sets NanoCpus from fractional and whole cpus', () => {
    expect(toContainerCreateOptions(input({ settings: { cpus: 4 } })).HostConfig!.NanoCpus).toBe(4e9);
    expect(toContainerCreateOptions(input({ settings: { cpus: 0.5 } })).HostConfig!.NanoCpus).toBe(5e8);
  });

  it('clamps the CPU limit to the Docker host CPU count', () => {
    expect(clampCpus(4, 2)).toEqual({ cpus: 2, clamped: true });
    expect(clampCpus(2.5, 2)).toEqual({ cpus: 2, clamped: true });
    expect(clampCpus(2, 2)).toEqual({ cpus: 2, clamped: false });
    expect(clampCpus(1.5, 2)).toEqual({ cpus: 1.5, clamped: false });
    // 0 means no limit, whatever the host.
    expect(clampCpus(0, 2)).toEqual({ cpus: 0, clamped: false });
    // An unknown host count keeps the request.
    for (const host of [undefined, 0, Number.NaN, -1]) {
      expect(clampCpus(4, host)).toEqual({ cpus: 4, clamped: false });
    }
  });

  it('sets Memory with Docker binary units and no swap', () => {
    const h = toContainerCreateOptions(input({ settings: { memory: '12G' } })).HostConfig!;
    expect(h.Memory).toBe(12 * 1024 ** 3);
    expect(h.MemorySwap).toBe(h.Memory);
    expect(toContainerCreateOptions(input({ settings: { memory: '64m' } })).HostConfig!.Memory).toBe(
      64 * 1024 ** 2,
    );
  });

  it('rejects a memory value that is not a size', () => {
    expect(() => toContainerCreateOptions(input({ settings: { memory: 'lots' } }))).toThrow(
      /invalid memory limit/,
    );
  });

  it('uses the runsc runtime for gvisor', () => {
    expect(toContainerCreateOptions(input({ settings: { kind: 'gvisor' } })).HostConfig!.Runtime).toBe(
      'runsc',
    );
  });

  it('adds the host gateway only when asked', () => {
    expect(toContainerCreateOptions(input()).HostConfig!.ExtraHosts).toBeUndefined();
    expect(
      toContainerCreateOptions(input({ settings: { addHostGateway: true } })).HostConfig!.ExtraHosts,
    ).toEqual(['host.docker.internal:host-gateway']);
  });

  it('binds the host mount path twin for Docker-in-Docker', () => {
    const o = toContainerCreateOptions(input({ settings: { hostMountPath: '/mnt/host/ws' } }));
    expect(o.HostConfig!.Binds).toEqual(['/mnt/host/ws/job-42-abc:/data']);
    expect(hostWorkspaceDir('/a/b/c')).toBe('/a/b/c');
  });

  it('passes additional mounts as Mounts', () => {
    const mounts = parseMountSpecs(['type=bind,source=/cache,target=/cache,readonly']);
    const o = toContainerCreateOptions(input({ settings: { mounts } }));
    expect(o.HostConfig!.Mounts).toEqual([
      { Type: 'bind', Source: '/cache', Target: '/cache', ReadOnly: true },
    ]);
    expect(toContainerCreateOptions(input()).HostConfig!.Mounts).toBeUndefined();
  });

  it('labels the container with executor, host, pid, job, attempt and step', () => {
    const o = toContainerCreateOptions(input({ job: { id: 7, queue: 'batches', attempt: 2 } }));
    expect(o.Labels).toEqual({
      'executor.name': 'exec-1',
      'executor.host': 'host-a',
      'executor.pid': '4242',
      'executor.job': '7-batches',
      'executor.attempt': '2',
      'executor.step': 'step.docker.build',
    });
  });

  it('labels a single-queue job with its bare id and no attempt when absent', () => {
    const l = toContainerCreateOptions(input()).Labels!;
    expect(l['executor.job']).toBe('42');
    expect(l).not.toHaveProperty('executor.attempt');
  });

  it('copies env so later mutation of the spec does not leak in', () => {
    const i = input();
    const o = toContainerCreateOptions(i);
    i.spec.env.push('LATE=1');
    expect(o.Env).toEqual(['FOO=bar', 'EMPTY=']);
  });
});

describe('dockerRunArgv', () => {
  it('shows the equivalent docker run command in Sourcegraph order plus hardening flags', () => {
    const argv = dockerRunArgv(
      input({
        spec: { dir: 'x' },
        settings: {
          cpus: 4,
          memory: '12G',
          addHostGateway: true,
          mounts: parseMountSpecs(['type=bind,source=/a,target=/b']),
        },
      }),
    );
    expect(argv).toEqual([
      'docker',
      'run',
      '--rm',
      '--add-host=host.docker.internal:host-gateway',
      '--cpus',
      '4',
      '--memory',
      '12G',
      '--memory-swap',
      '12G',
      '--mount',
      'type=bind,source=/a,target=/b',
      '-v',
      '/var/lib/executor/workspaces/job-42-abc:/data',
      '-w',
      '/data/x',
      '-e',
      'FOO=bar',
      '-e',
      'EMPTY=',
      '--pids-limit',
      '1024',
      '--cap-drop',
      'ALL',
      '--security-opt',
      'no-new-privileges',
      '--network',
      'bridge',
      '--init',
      '--entrypoint',
      '/bin/sh',
      'alpine:3',
      '/data/.sourcegraph-executor/42.0_repo@abc.sh',
    ]);
  });

  it('omits cpus and memory at 0 and names runsc for gvisor', () => {
    const argv = dockerRunArgv(input({ settings: { kind: 'gvisor' } }));
    expect(argv).not.toContain('--cpus');
    expect(argv).not.toContain('--memory');
    expect(argv.slice(argv.indexOf('--runtime'), argv.indexOf('--runtime') + 2)).toEqual([
      '--runtime',
      'runsc',
    ]);
  });
});

describe('parseMountSpec', () => {
  it('parses a bind mount', () => {
    expect(parseMountSpec('type=bind,source=/foo,target=/bar')).toEqual({
      Type: 'bind',
      Source: '/foo',
      Target: '/bar',
    });
  });

  it('accepts the short key aliases and readonly forms', () => {
    expect(parseMountSpec('type=bind,src=/foo,dst=/bar,ro')).toMatchObject({
      ReadOnly: true,
      Source: '/foo',
    });
    expect(parseMountSpec('type=bind,src=/foo,destination=/bar,readonly=false').ReadOnly).toBe(false);
    expect(parseMountSpec('type=bind,src=/foo,target=/bar,readonly=1').ReadOnly).toBe(true);
  });

  it('defaults to a volume, as docker does', () => {
    expect(parseMountSpec('source=cache,target=/cache')).toEqual({
      Type: 'volume',
      Source: 'cache',
      Target: '/cache',
    });
  });

  it('allows a tmpfs without source', () => {
    expect(parseMountSpec('type=tmpfs,target=/scratch')).toEqual({
      Type: 'tmpfs',
      Source: '',
      Target: '/scratch',
    });
  });

  it('rejects a missing or relative target, an unknown type or option, a relative bind source', () => {
    expect(() => parseMountSpec('type=bind,source=/foo')).toThrow(/target is required/);
    expect(() => parseMountSpec('type=bind,source=/foo,target=bar')).toThrow(/absolute/);
    expect(() => parseMountSpec('type=npipe,source=/foo,target=/bar')).toThrow(/unsupported type/);
    expect(() => parseMountSpec('type=bind,source=/foo,target=/bar,privileged')).toThrow(
      /unsupported option/,
    );
    expect(() => parseMountSpec('type=bind,source=foo,target=/bar')).toThrow(/absolute/);
    expect(() => parseMountSpec('type=bind,source=/a,target=/b,readonly=maybe')).toThrow(/true or false/);
  });

  it('refuses a Docker socket and the directories that hold it', () => {
    for (const source of [
      '/var/run/docker.sock',
      '/run/docker.sock',
      '/var/run',
      '/var/run/',
      '/run',
      '/var',
      '/',
      '/home/me/.docker/run/docker.sock',
      '/run/containerd/containerd.sock',
      '/var/run//docker.sock',
    ]) {
      expect(() => parseMountSpec(`type=bind,source=${source},target=/x`), source).toThrow(/daemon socket/);
    }
  });

  it('allows unrelated host paths', () => {
    for (const source of ['/srv/cache', '/var/lib/cache', '/runner', '/var/run-cache', '/tmp/docker.socks']) {
      expect(exposesDaemonSocket(source), source).toBe(false);
    }
  });

  it('splits a list and ignores blanks', () => {
    expect(parseMountSpecs(['type=bind,source=/a,target=/a', ' ', ''])).toHaveLength(1);
  });

  it('round-trips through formatMountSpec', () => {
    const spec = 'type=bind,source=/a,target=/b,readonly';
    expect(formatMountSpec(parseMountSpec(spec))).toBe(spec);
  });
});

describe('memoryBytes', () => {
  it.each([
    ['0', undefined],
    ['', undefined],
    ['64m', 64 * 1024 ** 2],
    ['12G', 12 * 1024 ** 3],
    ['1GB', 1e9],
    ['2Gi', 2 * 1024 ** 3],
    ['1048576', 1048576],
  ])('%s -> %s', (text, bytes) => {
    expect(memoryBytes(text)).toBe(bytes);
  });
});

describe('docker auth', () => {
  const jobAuth = { auths: { 'ghcr.io': { auth: b64('jobuser:jobpass') } } };
  const envAuth = { auths: { 'https://index.docker.io/v1/': { auth: b64('envuser:env:pass') } } };

  it("prefers the job's non-empty auths over the executor's", () => {
    expect(effectiveAuthConfig({ dockerAuthConfig: jobAuth }, envAuth)).toEqual(jobAuth);
  });

  it("falls back to the executor's when the job's is empty or absent", () => {
    expect(effectiveAuthConfig({ dockerAuthConfig: { auths: {} } }, envAuth)).toEqual(envAuth);
    expect(effectiveAuthConfig({ dockerAuthConfig: {} }, envAuth)).toEqual(envAuth);
  });

  it('is undefined when neither has entries', () => {
    expect(effectiveAuthConfig({ dockerAuthConfig: {} }, { auths: {} })).toBeUndefined();
    expect(effectiveAuthConfig({ dockerAuthConfig: {} })).toBeUndefined();
  });

  it('renders config.json', () => {
    expect(JSON.parse(dockerConfigJson(jobAuth))).toEqual(jobAuth);
  });

  it.each([
    ['alpine', 'docker.io'],
    ['alpine:3', 'docker.io'],
    ['library/alpine', 'docker.io'],
    ['sourcegraph/src-cli:5', 'docker.io'],
    ['ghcr.io/org/img:1', 'ghcr.io'],
    ['localhost/img', 'localhost'],
    ['localhost:5000/img', 'localhost:5000'],
    ['registry.example.com:5000/a/b@sha256:00', 'registry.example.com:5000'],
    ['index.docker.io/library/alpine', 'docker.io'],
  ])('registryOf(%s) = %s', (image, registry) => {
    expect(registryOf(image)).toBe(registry);
  });

  it.each([
    ['https://index.docker.io/v1/', 'docker.io'],
    ['docker.io', 'docker.io'],
    ['https://GHCR.io', 'ghcr.io'],
    ['http://localhost:5000/v2/', 'localhost:5000'],
  ])('normaliseRegistryKey(%s) = %s', (key, host) => {
    expect(normaliseRegistryKey(key)).toBe(host);
  });

  it('decodes the credentials for the image registry', () => {
    expect(pullAuthFor('ghcr.io/org/img:1', jobAuth)).toEqual({
      username: 'jobuser',
      password: 'jobpass',
      serveraddress: 'ghcr.io',
    });
  });

  it('keeps colons in the password and maps Docker Hub', () => {
    expect(pullAuthFor('alpine:3', envAuth)).toEqual({
      username: 'envuser',
      password: 'env:pass',
      serveraddress: 'https://index.docker.io/v1/',
    });
  });

  it('returns undefined for another registry or no config', () => {
    expect(pullAuthFor('quay.io/x/y', jobAuth)).toBeUndefined();
    expect(pullAuthFor('alpine', undefined)).toBeUndefined();
  });

  it('rejects an entry that is not user:password', () => {
    expect(() => pullAuthFor('ghcr.io/a', { auths: { 'ghcr.io': { auth: b64('nocolon') } } })).toThrow(
      /username:password/,
    );
  });
});
