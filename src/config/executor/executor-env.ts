/**
 * Every environment variable the executor reads, declared once with its default, parser and
 * description; docs/configuration.md's executor table is rendered from EXECUTOR_ENV.
 *
 * Names and defaults follow Sourcegraph's executor (`cmd/executor/internal/config/config.go`), except
 * that nothing is guessed: the runtime is `docker` unless EXECUTOR_RUNTIME says otherwise, and queue
 * names are free-form.
 */
import { z } from 'zod';
import { parseSizeBytes } from '../../lib/duration.js';
import type { Catalogue } from '../declare.js';
import {
  absolutePath,
  bool,
  durationMs,
  hostPort,
  httpUrl,
  int,
  parser,
  sizeBytes,
  sizeText,
} from '../parsers.js';
import { dockerAuthConfig, mounts, registryMirrorUrls } from './docker-parsers.js';
import { HTTP_RETRY_ENV } from './http-retry-config.js';
import { JOB_NETWORK_ENV } from './job-network-config.js';
import { KUBERNETES_ENV } from './kubernetes-config.js';
import { runtimeName } from './runtime.js';
import { VM_ENV } from './vm-config.js';

/** The smallest EXECUTOR_JOB_DISK_SPACE other than 0. */
export const MIN_JOB_DISK_BYTES = 16 * 1024 * 1024;

const positiveDurationMs = () => durationMs().refine((ms) => ms > 0, { message: 'must be longer than 0' });

/** Docker memory syntax, kept as text: it is sent to the server as written. */
const dockerSize = () => sizeText(() => 'must be a size such as "12G" or "512M" ("0" = no limit)');

/** `0`, or a size of at least 16 MiB (a smaller ext4 file system leaves no room for a clone). */
const jobDiskSpace = () =>
  parser(
    (s) => {
      const b = parseSizeBytes(s);
      return b === 0 || (b !== undefined && b >= MIN_JOB_DISK_BYTES) ? s : undefined;
    },
    (s) => `must be a size such as "20G" or "512M", at least 16M ("0" = no quota), got ${JSON.stringify(s)}`,
  );

const queueName = () =>
  z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/, 'queue names are letters, digits, "_", "." or "-"');

const EXECUTOR_OWN_ENV = {
  EXECUTOR_FRONTEND_URL: {
    required: true,
    description:
      'URL of the queue server or Sourcegraph instance, `scheme://host[:port][/path]`. A host of `host.docker.internal` needs EXECUTOR_DOCKER_ADD_HOST_GATEWAY=true.',
    parse: httpUrl(),
  },
  EXECUTOR_FRONTEND_PASSWORD: {
    required: true,
    description:
      'The shared executor secret (`executors.accessToken` in Sourcegraph). Sent as `token-executor <password>`; redacted from job logs as `SECRET_REMOVED`.',
    parse: z.string().min(1, 'must not be empty'),
  },
  EXECUTOR_FRONTEND_CA_FILE: {
    description:
      "PEM file of a CA trusted for the server's TLS certificate besides the system's (also `--ca-file` on any command; combined with NODE_EXTRA_CA_CERTS). The process starts itself once more with it applied.",
    parse: z.string().min(1, 'must not be empty'),
  },
  EXECUTOR_QUEUE_NAME: {
    description:
      'The queue to take jobs from (single-queue mode). Exactly one of this and EXECUTOR_QUEUE_NAMES.',
    parse: queueName(),
  },
  EXECUTOR_QUEUE_NAMES: {
    description:
      'Comma-separated queues to take jobs from (multi-queue mode, `/.executors/queue/dequeue`). Names are free-form.',
    // Not trimmed, empty items refused: `a,,b` is a mistake worth reporting.
    parse: z
      .string()
      .transform((s) => s.split(','))
      .pipe(z.array(queueName()).min(1)),
  },
  EXECUTOR_QUEUE_POLL_INTERVAL: {
    default: '1s',
    description:
      'Wait between dequeues when the queue is empty (Go duration). With a server that advertises long-poll, an empty dequeue is held open instead.',
    parse: positiveDurationMs(),
  },
  EXECUTOR_MAXIMUM_NUM_JOBS: {
    default: '1',
    description: 'Jobs run concurrently (handler slots).',
    parse: int({ min: 1, max: 1000 }),
  },
  EXECUTOR_MAXIMUM_RUNTIME_PER_JOB: {
    default: '30m',
    description: 'A job still running after this long is aborted and marked errored.',
    parse: positiveDurationMs(),
  },
  EXECUTOR_JOB_NUM_CPUS: {
    default: '4',
    alias: 'EXECUTOR_FIRECRACKER_NUM_CPUS',
    description: 'CPUs per job (container limit; sent on dequeue as `numCPUs`). `0` = no limit.',
    parse: int({ min: 0, max: 1_000_000 }),
  },
  EXECUTOR_JOB_MEMORY: {
    default: '12G',
    alias: 'EXECUTOR_FIRECRACKER_MEMORY',
    description: 'Memory per job (container limit; sent on dequeue as `memory`). `0` = no limit.',
    parse: dockerSize(),
  },
  EXECUTOR_FIRECRACKER_DISK_SPACE: {
    default: '20G',
    description: 'Disk per job for Firecracker VMs; sent on dequeue as `diskSpace` in every mode.',
    parse: dockerSize(),
  },
  EXECUTOR_JOB_DISK_SPACE: {
    default: '20G',
    description:
      "Disk per job. docker and gvisor: each workspace is a sparse ext4 image of this size, loop-mounted for the job and removed after it; a step that fills it gets ENOSPC and the job fails naming this limit. Needs root (or CAP_SYS_ADMIN) and a loop device: without them the executor refuses to start. Where Docker's storage driver supports it (overlay2 on xfs with pquota, or btrfs), each step container's writable layer gets the same size. `0` = no quota (steps can fill the workspace root's file system). vm: the size of each job's workspace disk, attached to every step's VM (no loop device needed); `0` takes EXECUTOR_FIRECRACKER_DISK_SPACE, as a VM's disk needs a size.",
    parse: jobDiskSpace(),
  },
  EXECUTOR_KEEP_WORKSPACES: {
    default: 'false',
    description: 'Keep job workspaces after the job ends (for debugging).',
    parse: bool(),
  },
  EXECUTOR_NUM_TOTAL_JOBS: {
    default: '0',
    description: 'Exit after this many jobs have been dequeued and finished. `0` = unlimited.',
    parse: int({ min: 0 }),
  },
  EXECUTOR_MAX_ACTIVE_TIME: {
    default: '0',
    description: 'Stop dequeuing after this long, finish running jobs and exit. `0` = unlimited.',
    parse: durationMs(),
  },
  EXECUTOR_CLEANUP_TASK_INTERVAL: {
    default: '1m',
    description: 'Period of the janitor that removes containers and workspaces of jobs no longer running.',
    parse: positiveDurationMs(),
  },
  EXECUTOR_DOCKER_HOST_MOUNT_PATH: {
    description:
      'Docker-in-Docker: the host path under which the workspace root is visible to the Docker daemon.',
    parse: absolutePath(),
  },
  EXECUTOR_DOCKER_ADDITIONAL_MOUNTS: {
    description:
      '`;`-separated docker mount specs added to every step, e.g. `type=bind,source=/foo,target=/bar`.',
    parse: mounts(),
  },
  EXECUTOR_DOCKER_ADD_HOST_GATEWAY: {
    default: 'false',
    description: 'Add `host.docker.internal:host-gateway` to step containers.',
    parse: bool(),
  },
  EXECUTOR_DOCKER_AUTH_CONFIG: {
    description:
      'Docker registry credentials as JSON `{"auths":{"<registry>":{"auth":"<base64>"}}}`. A job\'s own dockerAuthConfig wins when it has entries.',
    parse: dockerAuthConfig(),
  },
  EXECUTOR_DOCKER_REGISTRY_MIRROR_URL: {
    description:
      'Comma-separated registry mirror URLs (`http(s)://host[:port]`) for Docker Hub images. Written as `registry-mirrors` into the Docker daemon configuration the executor controls (`executor install`); `executor validate` reports whether the daemon in use has them.',
    parse: registryMirrorUrls(),
  },
  EXECUTOR_USE_FIRECRACKER: {
    default: 'false',
    description:
      'Legacy switch: `true` asks for the firecracker runtime (as EXECUTOR_RUNTIME=firecracker does), which this build refuses at startup.',
    parse: bool(),
  },
  EXECUTOR_RUNTIME: {
    default: 'docker',
    description:
      'Sandbox for job steps: `docker`, `gvisor` (docker with runsc), `vm` (a QEMU microVM with its own kernel per step; KVM, see EXECUTOR_VM_*), `shell` (NO isolation, development only) or `kubernetes`. Never guessed. `firecracker` is refused at startup: this build has no Firecracker monitor; use `vm`, or `gvisor` for strong isolation without KVM.',
    parse: runtimeName(),
  },
  EXECUTOR_JOB_PIDS_LIMIT: {
    default: '1024',
    description: 'Maximum processes per step container.',
    parse: int({ min: 1, max: 4_194_304 }),
  },
  EXECUTOR_MAX_LOG_BYTES: {
    default: '16MiB',
    description: 'Output kept per job (head and tail, with a truncation marker). Sizes like `16MiB`, `512K`.',
    parse: sizeBytes().refine((b) => b >= 4096, { message: 'must be at least 4KiB' }),
  },
  EXECUTOR_MIN_FREE_DISK: {
    default: '1GiB',
    description:
      'Free space required in the workspace root before a job is dequeued; below it the executor waits and says why. `0` disables the check.',
    parse: sizeBytes(),
  },
  EXECUTOR_METRICS_ADDR: {
    description:
      'Serve Prometheus metrics on `host:port` at `/metrics` (metrics are always sent in heartbeats).',
    parse: hostPort(),
  },
  EXECUTOR_WORKSPACE_ROOT: {
    description: 'Directory where job workspaces are created. Default: the OS temporary directory (TMPDIR).',
    parse: absolutePath(),
  },
  EXECUTOR_GIT_CACHE_DIR: {
    description:
      "Clone cache: a bare mirror per repository (keyed by server URL and repository name), updated through the job's own git route, from which each clone copies what it can before fetching the rest. Default: `git-cache` under EXECUTOR_WORKSPACE_ROOT. Used where the executor clones on its own host (docker, gvisor, shell, kubernetes without single-job pods).",
    parse: absolutePath(),
  },
  EXECUTOR_GIT_CACHE_SIZE: {
    default: '20G',
    description:
      'Disk the clone cache may use; beyond it the least recently used repositories are evicted (after each update). `0` turns the cache off.',
    parse: sizeBytes(),
  },
  EXECUTOR_GIT_CACHE_CHECKOUTS: {
    default: '1',
    description:
      "Checkouts the clone cache prepares per repository: after a job's full clone, a checkout at its commit is built in the background (at low CPU priority, counted in EXECUTOR_GIT_CACHE_SIZE), and the next full clone of the repository moves it into its workspace and writes only the files that changed. Not used for workspaces with EXECUTOR_JOB_DISK_SPACE (another file system). `0` turns them off.",
    parse: int({ min: 0, max: 16 }),
  },
  EXECUTOR_REPORTED_VERSION: {
    description:
      "Version reported to the server. Default: the Sourcegraph release whose protocol this executor implements, with this build as metadata (`5.6.0+executor.<version>`), so a Sourcegraph instance judges it as a 5.6 executor. A semver without `+metadata` gets `+executor.<version>` appended, so this project's server still recognises it.",
    parse: z
      .string()
      .regex(/^[\x21-\x7e]{1,100}$/, 'must be 1-100 printable characters without spaces, such as 5.5.0'),
  },
  EXECUTOR_NAME: {
    description:
      'Executor name sent to the server. Default: `<hostname>-<uuid>`, new on every start (as Sourcegraph does).',
    parse: z.string().regex(/^[\x21-\x7e]{1,255}$/, 'must be 1-255 printable characters without spaces'),
  },
} as const satisfies Catalogue;

/** Every environment variable the executor reads, in the order docs/configuration.md lists them. */
export const EXECUTOR_ENV = {
  ...EXECUTOR_OWN_ENV,
  ...JOB_NETWORK_ENV,
  ...KUBERNETES_ENV,
  ...VM_ENV,
  ...HTTP_RETRY_ENV,
} as const satisfies Catalogue;

export type ExecutorEnvName = keyof typeof EXECUTOR_ENV;
