/**
 * Pure conversion of one docker step into a Docker Engine API container-create body, plus the
 * equivalent `docker run` argv shown in the job log, plus docker auth resolution. No I/O here: the
 * caller passes hostname and pid, so every rule below has a unit test.
 *
 * The container matches Sourcegraph's `docker run --rm -v <ws>:/data -w /data/<dir> -e ...
 * --entrypoint /bin/sh <image> /data/.sourcegraph-executor/<script>` and adds the hardening the
 * reference lacks: no-new-privileges, every capability dropped, a pids limit, memory without swap,
 * an init process, labels for the orphan janitor, and never a Docker socket.
 */
import path from 'node:path';
import type { AuthConfig, ContainerCreateOptions, MountSettings } from 'dockerode';
import { parseSizeBytes } from '../../../lib/duration.js';
import type { DockerAuthConfig, Job } from '../../../protocol/job.js';
import { recordUid } from '../../../protocol/job.js';
import type { RunSpec } from '../types.js';

/** Label names on every container we create; the janitor selects on them. */
export const LABELS = {
  name: 'executor.name',
  host: 'executor.host',
  pid: 'executor.pid',
  job: 'executor.job',
  attempt: 'executor.attempt',
  step: 'executor.step',
  /** On the isolated network's holder containers: `network-holder`. */
  role: 'executor.role',
  /** The holder's token, which its pool knows while the holder is idle or a job's (network-holders.ts). */
  holder: 'executor.holder',
} as const;

export const HOLDER_ROLE = 'network-holder';

/** Where the workspace is mounted inside every step container. */
export const CONTAINER_WORKSPACE = '/data';
export const DEFAULT_PIDS_LIMIT = 1024;

export interface ContainerSettings {
  kind: 'docker' | 'gvisor';
  executorName: string;
  /** os.hostname() of the executor, for the `executor.host` label. */
  hostname: string;
  /** process.pid of the executor, for the `executor.pid` label. */
  pid: number;
  /** CPUs per step; 0 = no limit. */
  cpus: number;
  /** Memory per step in Docker's syntax ("12G", "512m"); "0" or "" = no limit. */
  memory: string;
  pidsLimit: number;
  /** Docker NetworkMode: `bridge`, `none`, or the isolated network's name. */
  network: string;
  /** Docker-in-Docker: the daemon sees workspaces under this path (EXECUTOR_DOCKER_HOST_MOUNT_PATH). */
  hostMountPath?: string;
  /** Mounts parsed by parseMountSpecs (EXECUTOR_DOCKER_ADDITIONAL_MOUNTS). */
  mounts: MountSettings[];
  addHostGateway: boolean;
  /**
   * Size limit of the writable layer (`--storage-opt size=`), where the daemon supports it; a byte
   * count (storage.ts storageOptSize).
   */
  storageSize?: string;
}

export interface ContainerInput {
  spec: RunSpec;
  job: Pick<Job, 'id' | 'queue' | 'attempt'>;
  /** Host path of the workspace as the executor sees it. */
  workspacePath: string;
  settings: ContainerSettings;
  /**
   * The id of the job's network holder: the step joins its network namespace (`container:<id>`)
   * instead of being attached to `settings.network` itself.
   */
  holder?: string;
}

/**
 * Paths whose bind mount would hand the job the Docker daemon, which is root on the host. A mount of
 * any of them, or of a directory that contains one, is refused.
 */
const DAEMON_SOCKETS = [
  '/var/run/docker.sock',
  '/run/docker.sock',
  '/run/containerd/containerd.sock',
  '/var/run/containerd/containerd.sock',
  '/run/podman/podman.sock',
  '/var/run/podman/podman.sock',
];

/** True when binding `source` would expose a container daemon socket. */
export function exposesDaemonSocket(source: string): boolean {
  const src = path.posix.normalize(source).replace(/\/+$/, '') || '/';
  const base = path.posix.basename(src);
  if (/^(docker|containerd|podman)\.sock$/.test(base)) return true;
  return DAEMON_SOCKETS.some((sock) => sock === src || sock.startsWith(src === '/' ? '/' : `${src}/`));
}

const MOUNT_TYPES = new Set(['bind', 'volume', 'tmpfs']);

/**
 * Parses docker `--mount` specs (`type=bind,source=/foo,target=/bar[,readonly]`), the syntax of
 * EXECUTOR_DOCKER_ADDITIONAL_MOUNTS once split on `;`. Throws on unknown keys, a missing target, or a
 * source that would expose a Docker socket.
 */
export function parseMountSpec(spec: string): MountSettings {
  const out: Partial<MountSettings> = { Type: 'volume' };
  for (const part of spec.split(',')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    const key = (eq < 0 ? p : p.slice(0, eq)).toLowerCase();
    const value = eq < 0 ? undefined : p.slice(eq + 1);
    switch (key) {
      case 'type':
        if (!value || !MOUNT_TYPES.has(value))
          throw new Error(`mount "${spec}": unsupported type "${value}"`);
        out.Type = value as MountSettings['Type'];
        break;
      case 'source':
      case 'src':
        out.Source = value ?? '';
        break;
      case 'target':
      case 'destination':
      case 'dst':
        out.Target = value ?? '';
        break;
      case 'readonly':
      case 'ro':
        if (value !== undefined && !['true', 'false', '1', '0'].includes(value)) {
          throw new Error(`mount "${spec}": readonly must be true or false`);
        }
        out.ReadOnly = value === undefined || value === 'true' || value === '1';
        break;
      case 'bind-propagation':
        out.BindOptions = { Propagation: value as NonNullable<MountSettings['BindOptions']>['Propagation'] };
        break;
      case 'consistency':
        out.Consistency = value as MountSettings['Consistency'];
        break;
      default:
        throw new Error(`mount "${spec}": unsupported option "${key}"`);
    }
  }
  if (!out.Target) throw new Error(`mount "${spec}": target is required`);
  if (!out.Target.startsWith('/')) throw new Error(`mount "${spec}": target must be an absolute path`);
  if (out.Type === 'bind') {
    if (!out.Source?.startsWith('/'))
      throw new Error(`mount "${spec}": a bind source must be an absolute path`);
    if (exposesDaemonSocket(out.Source)) {
      throw new Error(`mount "${spec}": refusing to expose a container daemon socket to jobs`);
    }
  }
  return { ...out, Source: out.Source ?? '' } as MountSettings;
}

/** Parses every entry of EXECUTOR_DOCKER_ADDITIONAL_MOUNTS (already split on `;`; blanks ignored). */
export function parseMountSpecs(specs: readonly string[]): MountSettings[] {
  return specs
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parseMountSpec);
}

/** Renders a parsed mount back into `--mount` syntax, for the log argv. */
export function formatMountSpec(m: MountSettings): string {
  const parts = [`type=${m.Type}`];
  if (m.Source) parts.push(`source=${m.Source}`);
  parts.push(`target=${m.Target}`);
  if (m.ReadOnly) parts.push('readonly');
  if (m.BindOptions?.Propagation) parts.push(`bind-propagation=${m.BindOptions.Propagation}`);
  if (m.Consistency) parts.push(`consistency=${m.Consistency}`);
  return parts.join(',');
}

/** Memory limit in bytes, or undefined for no limit ("0" or ""). Throws on text that is not a size. */
export function memoryBytes(memory: string): number | undefined {
  const m = memory.trim();
  if (m === '' || m === '0') return undefined;
  const n = parseSizeBytes(m);
  if (n === undefined) throw new Error(`invalid memory limit "${memory}" (expected e.g. 12G, 512m)`);
  return n === 0 ? undefined : n;
}

/**
 * The CPU limit Docker will accept: the daemon refuses `NanoCpus` above its host's CPU count
 * ("Range of CPUs is from 0.01 to N"), so a request above `hostCpus` is lowered to it. `0` (no
 * limit) stays 0; an unknown host count (undefined, 0 or not finite) keeps the request as it is.
 */
export function clampCpus(
  requested: number,
  hostCpus: number | undefined,
): { cpus: number; clamped: boolean } {
  if (requested <= 0) return { cpus: 0, clamped: false };
  if (hostCpus === undefined || !Number.isFinite(hostCpus) || hostCpus <= 0) {
    return { cpus: requested, clamped: false };
  }
  return requested > hostCpus ? { cpus: hostCpus, clamped: true } : { cpus: requested, clamped: false };
}

/** The host directory the daemon binds at /data: the workspace, or its twin under hostMountPath. */
export function hostWorkspaceDir(workspacePath: string, hostMountPath?: string): string {
  return hostMountPath ? path.join(hostMountPath, path.basename(workspacePath)) : workspacePath;
}

/** `/data/<dir>`; a dir that climbs out of the workspace is refused. */
export function containerWorkdir(dir: string): string {
  const wd = path.posix.join(CONTAINER_WORKSPACE, dir);
  if (wd !== CONTAINER_WORKSPACE && !wd.startsWith(`${CONTAINER_WORKSPACE}/`)) {
    throw new Error(`step dir "${dir}" leaves the workspace`);
  }
  return wd;
}

/** `/data/.sourcegraph-executor/<script>` from the workspace-relative script path. */
export function containerScriptPath(scriptPath: string): string {
  return path.posix.join(CONTAINER_WORKSPACE, scriptPath);
}

export function containerLabels(input: ContainerInput): Record<string, string> {
  const { job, spec, settings } = input;
  const labels: Record<string, string> = {
    [LABELS.name]: settings.executorName,
    [LABELS.host]: settings.hostname,
    [LABELS.pid]: String(settings.pid),
    [LABELS.job]: recordUid(job),
  };
  if (job.attempt !== undefined) labels[LABELS.attempt] = String(job.attempt);
  labels[LABELS.step] = spec.key;
  return labels;
}

const HOST_GATEWAY = 'host.docker.internal:host-gateway';

/** The step's NetworkMode: its job's holder's namespace, or the configured network. */
function networkMode(input: ContainerInput): string {
  return input.holder ? `container:${input.holder}` : input.settings.network;
}

/**
 * The Engine API create body of a network holder (network-holders.ts): the pause program of
 * pause-image.ts on the configured network, with the labels the janitor selects on, every
 * capability dropped, a read-only root, no mounts and no log. It runs under the daemon's default
 * runtime whatever the step runtime: it runs no code of any job. Name resolution settings that
 * Docker refuses on a `container:` network (extra hosts, DNS, hostname) belong here.
 */
export function holderCreateOptions(
  settings: ContainerSettings,
  token: string,
  image: string,
  entrypoint: string,
): ContainerCreateOptions {
  const hostConfig: NonNullable<ContainerCreateOptions['HostConfig']> = {
    NetworkMode: settings.network,
    ReadonlyRootfs: true,
    CapDrop: ['ALL'],
    SecurityOpt: ['no-new-privileges'],
    // The runtime's own setup threads count here before the program starts.
    PidsLimit: 32,
    AutoRemove: false,
    LogConfig: { Type: 'none', Config: {} },
  };
  if (settings.addHostGateway) hostConfig.ExtraHosts = [HOST_GATEWAY];
  return {
    Image: image,
    Entrypoint: [entrypoint],
    Cmd: [],
    Labels: {
      [LABELS.name]: settings.executorName,
      [LABELS.host]: settings.hostname,
      [LABELS.pid]: String(settings.pid),
      [LABELS.role]: HOLDER_ROLE,
      [LABELS.holder]: token,
    },
    Tty: false,
    OpenStdin: false,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    HostConfig: hostConfig,
  };
}

/** The Engine API create body for one step. */
export function toContainerCreateOptions(input: ContainerInput): ContainerCreateOptions {
  const { spec, settings } = input;
  const mem = memoryBytes(settings.memory);
  const hostDir = hostWorkspaceDir(input.workspacePath, settings.hostMountPath);
  const hostConfig: NonNullable<ContainerCreateOptions['HostConfig']> = {
    Binds: [`${hostDir}:${CONTAINER_WORKSPACE}`],
    NetworkMode: networkMode(input),
    PidsLimit: settings.pidsLimit,
    SecurityOpt: ['no-new-privileges'],
    CapDrop: ['ALL'],
    Init: true,
    AutoRemove: false,
    // Output reaches the executor through the attach stream; the daemon's own copy (json-file by
    // default) is never read, and writing it cost dockerd as much again as the step (100 MiB of
    // stdout: about 20 s with json-file against 9 s without, attach included). It also keeps a
    // step from filling the daemon's disk with logs.
    LogConfig: { Type: 'none', Config: {} },
  };
  if (settings.mounts.length > 0) hostConfig.Mounts = settings.mounts.map((m) => ({ ...m }));
  if (settings.cpus > 0) hostConfig.NanoCpus = Math.round(settings.cpus * 1e9);
  if (mem !== undefined) {
    hostConfig.Memory = mem;
    // Equal to Memory: the step gets no swap, so a hog is OOM-killed instead of thrashing the host.
    hostConfig.MemorySwap = mem;
  }
  // Docker refuses extra hosts with a `container:` network; the holder has them, and its hosts file is the step's.
  if (settings.addHostGateway && !input.holder) hostConfig.ExtraHosts = [HOST_GATEWAY];
  if (settings.kind === 'gvisor') hostConfig.Runtime = 'runsc';
  if (settings.storageSize) hostConfig.StorageOpt = { size: settings.storageSize };
  return {
    Image: spec.image,
    Entrypoint: ['/bin/sh'],
    Cmd: [containerScriptPath(spec.scriptPath)],
    WorkingDir: containerWorkdir(spec.dir),
    Env: [...spec.env],
    Labels: containerLabels(input),
    Tty: false,
    OpenStdin: false,
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: hostConfig,
  };
}

/**
 * The `docker run` command equivalent to toContainerCreateOptions, for the log entry's command. It
 * keeps Sourcegraph's flag order and appends our hardening flags before the image.
 */
export function dockerRunArgv(input: ContainerInput): string[] {
  const { spec, settings } = input;
  const argv = ['docker', 'run', '--rm'];
  if (settings.addHostGateway && !input.holder) argv.push(`--add-host=${HOST_GATEWAY}`);
  if (settings.cpus > 0) argv.push('--cpus', String(settings.cpus));
  const mem = memoryBytes(settings.memory);
  if (mem !== undefined)
    argv.push('--memory', settings.memory.trim(), '--memory-swap', settings.memory.trim());
  for (const m of settings.mounts) argv.push('--mount', formatMountSpec(m));
  argv.push('-v', `${hostWorkspaceDir(input.workspacePath, settings.hostMountPath)}:${CONTAINER_WORKSPACE}`);
  argv.push('-w', containerWorkdir(spec.dir));
  for (const e of spec.env) argv.push('-e', e);
  argv.push(
    '--pids-limit',
    String(settings.pidsLimit),
    '--cap-drop',
    'ALL',
    '--security-opt',
    'no-new-privileges',
    '--network',
    input.holder ? `container:${input.holder.slice(0, 12)}` : settings.network,
    '--init',
  );
  if (settings.kind === 'gvisor') argv.push('--runtime', 'runsc');
  if (settings.storageSize) argv.push('--storage-opt', `size=${settings.storageSize}`);
  argv.push('--entrypoint', '/bin/sh', spec.image, containerScriptPath(spec.scriptPath));
  return argv;
}

// ---------------------------------------------------------------------------------------------
// Registry auth

/**
 * The auth config in effect for a job: the job's own `dockerAuthConfig.auths` when non-empty, else
 * the executor's EXECUTOR_DOCKER_AUTH_CONFIG, else none (Sourcegraph's precedence).
 */
export function effectiveAuthConfig(
  job: Pick<Job, 'dockerAuthConfig'>,
  fallback?: DockerAuthConfig,
): DockerAuthConfig | undefined {
  const own = job.dockerAuthConfig?.auths;
  if (own && Object.keys(own).length > 0) return { auths: own };
  const fb = fallback?.auths;
  if (fb && Object.keys(fb).length > 0) return { auths: fb };
  return undefined;
}

/** The docker CLI `config.json` text for an auth config (what `docker --config <dir>` would read). */
export function dockerConfigJson(auth: DockerAuthConfig): string {
  return `${JSON.stringify({ auths: auth.auths ?? {} }, null, 2)}\n`;
}

export const DOCKER_HUB = 'docker.io';

/**
 * The registry host of an image reference, with Docker's rule: the first path component is a
 * registry when it contains `.` or `:` or is `localhost`; otherwise the image is on Docker Hub.
 */
export function registryOf(image: string): string {
  const slash = image.indexOf('/');
  if (slash < 0) return DOCKER_HUB;
  const first = image.slice(0, slash);
  if (first.includes('.') || first.includes(':') || first === 'localhost') {
    return first === 'index.docker.io' || first === 'registry-1.docker.io' ? DOCKER_HUB : first;
  }
  return DOCKER_HUB;
}

/** Normalises a config.json `auths` key (`https://index.docker.io/v1/`, `ghcr.io`) to a registry host. */
export function normaliseRegistryKey(key: string): string {
  let k = key.trim().replace(/^[a-z]+:\/\//i, '');
  const slash = k.indexOf('/');
  if (slash >= 0) k = k.slice(0, slash);
  k = k.toLowerCase();
  if (k === 'index.docker.io' || k === 'registry-1.docker.io' || k === 'registry.hub.docker.com')
    return DOCKER_HUB;
  return k;
}

/**
 * Engine API pull credentials (X-Registry-Auth) for `image` from an auth config, or undefined when
 * the config has no entry for the image's registry. Entries are `base64(username:password)`.
 */
export function pullAuthFor(image: string, auth: DockerAuthConfig | undefined): AuthConfig | undefined {
  if (!auth?.auths) return undefined;
  const registry = registryOf(image).toLowerCase();
  for (const [key, entry] of Object.entries(auth.auths)) {
    if (normaliseRegistryKey(key) !== registry) continue;
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new Error(`docker auth for ${key} is not base64 of "username:password"`);
    return {
      username: decoded.slice(0, colon),
      password: decoded.slice(colon + 1),
      serveraddress: registry === DOCKER_HUB ? 'https://index.docker.io/v1/' : registry,
    };
  }
  return undefined;
}
