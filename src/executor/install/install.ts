/**
 * `executor install`: prepares a host to run the executor as a systemd service. Writes, under a
 * root directory (`/` on a real host, any directory for images and tests):
 *
 * - `etc/systemd/system/executor.service`: the unit (starts `<bin> run`, drains on stop);
 * - `etc/executor/executor.env` (0600): the executor's environment. Values already in the file are
 *   kept; only settings named by a flag of this run (`--with-gvisor` and `--vm` set
 *   EXECUTOR_RUNTIME, `--registry-mirror` sets EXECUTOR_DOCKER_REGISTRY_MIRROR_URL) replace them;
 * - `var/lib/executor/workspaces`: the workspace root;
 * - `etc/docker/daemon.json`: `registry-mirrors`, with `--with-gvisor` the `runsc` runtime, and
 *   with `--userns-remap` `"userns-remap": "default"`, merged into what is there (see
 *   daemon-config.ts);
 *
 * then checks that Docker answers (and, after a daemon.json change on `/`, reloads dockerd and
 * checks it took the change; with `--userns-remap` it restarts dockerd instead, see userns-remap.ts). Idempotent: a second run with the same inputs changes nothing and
 * says "unchanged" for every item. A dry run computes the same plan and writes nothing.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { EXECUTOR_ENV } from '../../config/executor.js';
import { errorMessage } from '../../lib/errors.js';
import { type DaemonConfig, mergeDaemonConfig, normaliseMirror } from './daemon-config.js';
import { parseEnvFile, renderEnvFile } from './env-file.js';
import { ensureDaemonRemaps, USERNS_REMAP_DEFAULT } from './userns-remap.js';

export const UNIT_PATH = '/etc/systemd/system/executor.service';
export const ENV_PATH = '/etc/executor/executor.env';
export const WORKSPACE_ROOT = '/var/lib/executor/workspaces';
export const DAEMON_JSON_PATH = '/etc/docker/daemon.json';
export const DEFAULT_BIN_PATH = '/usr/local/bin/executor';

/** What `docker info` says, as much as install needs. */
export interface DockerFacts {
  version: string;
  mirrors: string[];
  runtimes: string[];
  /** SecurityOptions lists `name=userns`. */
  usernsRemapped?: boolean;
  /** DockerRootDir (`<data-root>/<uid>.<gid>` when remapped). */
  rootDir?: string;
}

export interface InstallOptions {
  /** Directory the host's `/` is; files are written under it. */
  root: string;
  dryRun: boolean;
  withGvisor: boolean;
  /** Normalised mirror URLs from `--registry-mirror`; empty = leave mirrors alone. */
  registryMirrors: string[];
  /** Where the executor binary is on the host (the unit's ExecStart). */
  binPath: string;
  /** runsc binary registered with `--with-gvisor`. */
  runscPath: string;
  /** The environment install runs in: EXECUTOR_* values set here go into a new env file. */
  env: Record<string, string | undefined>;
  /** Asks the Docker daemon; rejects when it does not answer. */
  dockerFacts: () => Promise<DockerFacts>;
  /** Makes the running daemon re-read daemon.json (registry-mirrors and runtimes are reloadable). */
  reloadDocker: () => Promise<void>;
  /** How long to wait for the reloaded daemon to show the change. */
  reloadWaitMs?: number;
  /** `--userns-remap`: set `"userns-remap": "default"` and restart dockerd for it. */
  usernsRemap?: boolean;
  /** Restarts dockerd (userns-remap is not reloadable); rejects with what to do when it cannot. */
  restartDocker?: () => Promise<void>;
  /** `--vm`: EXECUTOR_RUNTIME=vm (the VM runtime's own needs are vm-install.ts's). */
  vm?: boolean;
}

export type ItemStatus = 'create' | 'update' | 'unchanged';

export interface InstallItem {
  /** Path on the host (without the root prefix). */
  path: string;
  kind: 'file' | 'dir';
  status: ItemStatus;
  /** New content for files that change; printed by a dry run (secrets masked). */
  content?: string;
  mode: number;
}

export interface InstallCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface InstallResult {
  items: InstallItem[];
  checks: InstallCheck[];
  /** Required variables still missing from the env file. */
  missing: string[];
  ok: boolean;
}

/** The systemd unit. Stop = SIGTERM = drain: running jobs finish (up to the per-job maximum). */
export function renderUnit(binPath: string): string {
  return `[Unit]
Description=executor: runs batch jobs from a queue server in sandboxes
After=network-online.target docker.service
Wants=network-online.target
Requires=docker.service

[Service]
Type=simple
EnvironmentFile=${ENV_PATH}
ExecStart=${binPath} run
Restart=always
RestartSec=5
# SIGTERM drains: no new jobs, running jobs finish. Allow the default maximum job runtime (30m).
KillSignal=SIGTERM
# SIGTERM to the main process only: with EXECUTOR_FRONTEND_CA_FILE it runs the command as a child
# and passes the signal on once; the rest of the group is killed only at the timeout.
KillMode=mixed
TimeoutStopSec=32min
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`;
}

const REQUIRED = ['EXECUTOR_FRONTEND_URL', 'EXECUTOR_FRONTEND_PASSWORD'] as const;
const SECRET_KEY = /PASSWORD|TOKEN|SECRET|AUTH/;

function under(root: string, p: string): string {
  return path.join(root, p);
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function fileItem(p: string, existing: string | undefined, content: string, mode: number): InstallItem {
  const status: ItemStatus =
    existing === undefined ? 'create' : existing === content ? 'unchanged' : 'update';
  return { path: p, kind: 'file', status, content: status === 'unchanged' ? undefined : content, mode };
}

/** The env file's entries: existing values win, except those this run's flags set. */
function planEnv(existingText: string | undefined, opts: InstallOptions) {
  const existing = existingText === undefined ? new Map<string, string>() : parseEnvFile(existingText);
  const fromEnv = new Map<string, string>();
  for (const name of Object.keys(EXECUTOR_ENV)) {
    const v = opts.env[name];
    if (v !== undefined && v !== '') fromEnv.set(name, v);
  }
  fromEnv.set('EXECUTOR_WORKSPACE_ROOT', fromEnv.get('EXECUTOR_WORKSPACE_ROOT') ?? WORKSPACE_ROOT);
  fromEnv.set('EXECUTOR_RUNTIME', fromEnv.get('EXECUTOR_RUNTIME') ?? 'docker');
  const forced = new Map<string, string>();
  if (opts.withGvisor) forced.set('EXECUTOR_RUNTIME', 'gvisor');
  if (opts.vm) forced.set('EXECUTOR_RUNTIME', 'vm');
  if (opts.registryMirrors.length > 0) {
    forced.set('EXECUTOR_DOCKER_REGISTRY_MIRROR_URL', opts.registryMirrors.join(','));
  }

  const merged = new Map(existing);
  for (const [k, v] of fromEnv) if (!merged.has(k)) merged.set(k, v);
  for (const [k, v] of forced) merged.set(k, v);

  const missing: string[] = REQUIRED.filter((k) => !merged.has(k));
  if (!merged.has('EXECUTOR_QUEUE_NAME') && !merged.has('EXECUTOR_QUEUE_NAMES'))
    missing.push('EXECUTOR_QUEUE_NAME');
  const same =
    existingText !== undefined &&
    merged.size === existing.size &&
    [...merged].every(([k, v]) => existing.get(k) === v);
  return { merged, missing, same };
}

/** Computes the plan, applies it unless dry-run, and runs the checks. */
export async function runInstall(opts: InstallOptions): Promise<InstallResult> {
  const items: InstallItem[] = [];
  const checks: InstallCheck[] = [];

  // Unit.
  const unit = renderUnit(opts.binPath);
  items.push(fileItem(UNIT_PATH, await readIfExists(under(opts.root, UNIT_PATH)), unit, 0o644));

  // Environment file.
  const envText = await readIfExists(under(opts.root, ENV_PATH));
  const env = planEnv(envText, opts);
  if (env.same) {
    items.push({ path: ENV_PATH, kind: 'file', status: 'unchanged', mode: 0o600 });
  } else {
    const content = renderEnvFile(
      [
        'Environment of the executor service (written by `executor install`; values are kept on re-runs).',
        'Every variable is described in docs/configuration.md.',
      ],
      [...env.merged].map(([key, value]) => ({ key, value })),
      env.missing,
    );
    items.push({
      path: ENV_PATH,
      kind: 'file',
      status: envText === undefined ? 'create' : 'update',
      content,
      mode: 0o600,
    });
  }

  // Workspace root.
  const wsExists = existsSync(under(opts.root, WORKSPACE_ROOT));
  items.push({ path: WORKSPACE_ROOT, kind: 'dir', status: wsExists ? 'unchanged' : 'create', mode: 0o750 });

  // Docker daemon configuration.
  let daemonChanged = false;
  if (opts.registryMirrors.length > 0 || opts.withGvisor || opts.usernsRemap) {
    if (opts.withGvisor && !existsSync(opts.runscPath)) {
      checks.push({
        name: 'gvisor',
        ok: false,
        detail: `runsc is not at ${opts.runscPath}; install gVisor (Debian: apt-get install runsc) or pass --runsc-path`,
      });
    }
    const existingText = await readIfExists(under(opts.root, DAEMON_JSON_PATH));
    let existing: DaemonConfig = {};
    if (existingText !== undefined && existingText.trim() !== '') {
      try {
        existing = JSON.parse(existingText) as DaemonConfig;
      } catch (e) {
        throw new Error(
          `${under(opts.root, DAEMON_JSON_PATH)} is not valid JSON (${errorMessage(e)}); fix it first, it is not overwritten`,
        );
      }
    }
    const merged = mergeDaemonConfig(existing, {
      registryMirrors: opts.registryMirrors,
      runscPath: opts.withGvisor ? opts.runscPath : undefined,
      usernsRemap: opts.usernsRemap ? USERNS_REMAP_DEFAULT : undefined,
    });
    const unchanged = existingText !== undefined && JSON.stringify(merged) === JSON.stringify(existing);
    if (unchanged) {
      items.push({ path: DAEMON_JSON_PATH, kind: 'file', status: 'unchanged', mode: 0o644 });
    } else {
      daemonChanged = true;
      items.push({
        path: DAEMON_JSON_PATH,
        kind: 'file',
        status: existingText === undefined ? 'create' : 'update',
        content: `${JSON.stringify(merged, null, 2)}\n`,
        mode: 0o644,
      });
    }
  }

  if (!opts.dryRun) {
    for (const item of items) await apply(opts.root, item);
  }

  // Docker: answers? After a daemon.json change on the real root, reload and check it took.
  const real = path.resolve(opts.root) === '/';
  try {
    let facts = await opts.dockerFacts();
    if (opts.usernsRemap && real && !opts.dryRun) {
      // A restart applies every daemon.json change, mirrors and runtimes included: no reload.
      facts = await restartForUsernsRemap(opts, facts, checks);
    } else if (daemonChanged && real && !opts.dryRun) {
      await opts.reloadDocker();
      // The reload is asynchronous: poll until the daemon shows what was written, or give up.
      const took = (f: DockerFacts) =>
        opts.registryMirrors.every((m) => f.mirrors.map(normaliseMirror).includes(normaliseMirror(m))) &&
        (!opts.withGvisor || f.runtimes.includes('runsc'));
      const deadline = Date.now() + (opts.reloadWaitMs ?? 10_000);
      facts = await opts.dockerFacts();
      while (!took(facts) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        facts = await opts.dockerFacts();
      }
    }
    checks.push({ name: 'docker', ok: true, detail: `the Docker daemon answers; version ${facts.version}` });
    if (real && !opts.dryRun) {
      const missingMirrors = opts.registryMirrors.filter(
        (m) => !facts.mirrors.map(normaliseMirror).includes(normaliseMirror(m)),
      );
      if (missingMirrors.length > 0) {
        checks.push({
          name: 'registry mirror',
          ok: false,
          detail: `the daemon does not list ${missingMirrors.join(', ')} after the reload; restart dockerd`,
        });
      } else if (opts.registryMirrors.length > 0) {
        checks.push({
          name: 'registry mirror',
          ok: true,
          detail: `the daemon uses ${facts.mirrors.join(', ')}`,
        });
      }
      if (opts.withGvisor) {
        const has = facts.runtimes.includes('runsc');
        checks.push({
          name: 'gvisor',
          ok: has,
          detail: has
            ? "the daemon has the 'runsc' runtime"
            : "the daemon does not list 'runsc' after the reload; restart dockerd",
        });
      }
    } else if (daemonChanged) {
      checks.push({
        name: 'docker reload',
        ok: true,
        detail: opts.dryRun
          ? `dry run: the daemon would be ${opts.usernsRemap ? 'restarted' : 'reloaded'} when installing on /`
          : `daemon.json was written under ${opts.root}, not for the running daemon; it is not reloaded`,
      });
    }
  } catch (e) {
    checks.push({
      name: 'docker',
      ok: false,
      detail: `the Docker daemon does not answer (${errorMessage(e)}); install Docker (Debian: apt-get install docker.io) and start it`,
    });
  }

  return { items, checks, missing: env.missing, ok: checks.every((c) => c.ok) };
}

/** Restarts dockerd unless it remaps already; rejects when it does not answer afterwards. */
async function restartForUsernsRemap(
  opts: InstallOptions,
  facts: DockerFacts,
  checks: InstallCheck[],
): Promise<DockerFacts> {
  const r = await ensureDaemonRemaps(facts, {
    dockerFacts: opts.dockerFacts,
    restartDocker:
      opts.restartDocker ?? (() => Promise.reject(new Error('no way to restart dockerd was given'))),
  });
  checks.push(r.check);
  if (!r.facts) throw new Error('it did not answer after the restart');
  return r.facts;
}

async function apply(root: string, item: InstallItem): Promise<void> {
  const target = under(root, item.path);
  if (item.kind === 'dir') {
    if (item.status === 'create') await mkdir(target, { recursive: true, mode: item.mode });
    return;
  }
  if (item.status === 'unchanged' || item.content === undefined) return;
  await mkdir(path.dirname(target), { recursive: true, mode: 0o755 });
  // Write then rename, so a crash never leaves a half-written unit, env file or daemon.json; the
  // mode is set before the rename so the env file is never readable by others, even briefly.
  const tmp = `${target}.tmp-${process.pid}`;
  await writeFile(tmp, item.content, { mode: item.mode });
  await chmod(tmp, item.mode);
  await rename(tmp, target);
}

/** One line per item and check, as printed by the command. Secret values are masked. */
export function formatInstallResult(r: InstallResult, dryRun: boolean): string[] {
  const lines: string[] = [];
  const verb: Record<ItemStatus, string> = dryRun
    ? { create: 'would create', update: 'would update', unchanged: 'unchanged' }
    : { create: 'created', update: 'updated', unchanged: 'unchanged' };
  for (const item of r.items) {
    lines.push(`${verb[item.status]} ${item.path}${item.kind === 'dir' ? '/' : ''}`);
    if (dryRun && item.content !== undefined) {
      for (const l of item.content.trimEnd().split('\n')) lines.push(`    ${maskSecret(l)}`);
    }
  }
  for (const c of r.checks) lines.push(`${c.ok ? '✓' : '✗'} ${c.name}: ${c.detail}`);
  if (r.missing.length > 0) lines.push(`fill in ${r.missing.join(', ')} in ${ENV_PATH}`);
  return lines;
}

function maskSecret(line: string): string {
  const m = /^([A-Z_][A-Z0-9_]*)=/.exec(line);
  return m && SECRET_KEY.test(m[1]!) ? `${m[1]}="********"` : line;
}
