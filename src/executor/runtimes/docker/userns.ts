/**
 * Docker's user-namespace remapping (`"userns-remap"` in daemon.json): when it is on, uid 0 in a
 * container is an unprivileged uid on the host (the start of the remap user's /etc/subuid range,
 * 100000 on a typical host), and so is every other uid, shifted by the same amount.
 *
 * What the executor needs from it: the host uid and gid that a step's root has, so the workspace it
 * binds at /data can be given to that uid (a root-owned 0700 directory is closed to it). Read from
 * the daemon itself: `docker info` lists `name=userns` in SecurityOptions and its DockerRootDir is
 * `<data-root>/<uid>.<gid>` (dockerd names the remapped data directory so). When the root dir does
 * not have that form, the uid and gid come from /etc/subuid and /etc/subgid for the user that
 * daemon.json's `userns-remap` names (`default` is `dockremap`), the lowest range first, as dockerd
 * sorts them.
 *
 * The parsers are pure; detectUsernsRemap does the I/O.
 */
import { readFile } from 'node:fs/promises';
import type Dockerode from 'dockerode';
import { errorMessage } from '../../../lib/errors.js';
import type { CheckResult } from '../types.js';

/** The ids a container's root has on the host. */
export interface RemappedRoot {
  uid: number;
  gid: number;
}

export type UsernsRemap = { remapped: false } | { remapped: true; root: RemappedRoot };

/** The fields of `docker info` this module reads. */
export interface UsernsInfo {
  SecurityOptions?: string[] | null;
  DockerRootDir?: string;
}

/** `userns-remap: "default"` makes dockerd create and use this user (and group). */
export const DEFAULT_REMAP_USER = 'dockremap';

/** True when the daemon runs containers in a remapped user namespace. */
export function daemonRemaps(info: UsernsInfo): boolean {
  return (info.SecurityOptions ?? []).some((o) =>
    o
      .split(',')
      .map((kv) => kv.trim())
      .includes('name=userns'),
  );
}

/** `/var/lib/docker/100000.100000` -> {uid: 100000, gid: 100000}; undefined for any other form. */
export function rootFromDockerRootDir(dir: string | undefined): RemappedRoot | undefined {
  const m = /\/(\d+)\.(\d+)\/?$/.exec(dir ?? '');
  if (!m) return undefined;
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

/**
 * The user and group named by daemon.json's `userns-remap` value: `default` -> dockremap,
 * `user:group`, or `user` (group of the same name). Names or numeric ids.
 */
export function remapUserOf(setting: string): { user: string; group: string } {
  const s = setting.trim();
  if (s === 'default') return { user: DEFAULT_REMAP_USER, group: DEFAULT_REMAP_USER };
  const colon = s.indexOf(':');
  if (colon < 0) return { user: s, group: s };
  return { user: s.slice(0, colon), group: s.slice(colon + 1) };
}

/**
 * The first id of `/etc/subuid` or `/etc/subgid` text (`name:start:count` lines) for any of `names`
 * (a user or group name and its numeric id): the lowest start, since dockerd sorts the ranges and
 * maps container id 0 to the first. Undefined when the file has no range for them.
 */
export function firstSubordinateId(text: string, names: readonly string[]): number | undefined {
  let lowest: number | undefined;
  for (const line of text.split('\n')) {
    const parts = line.trim().split(':');
    if (parts.length !== 3 || !names.includes(parts[0]!)) continue;
    const start = Number(parts[1]);
    const count = Number(parts[2]);
    if (!Number.isInteger(start) || start < 0 || !Number.isInteger(count) || count <= 0) continue;
    if (lowest === undefined || start < lowest) lowest = start;
  }
  return lowest;
}

export interface DetectDeps {
  /** Reads a host file; default fs.readFile. */
  readText?: (file: string) => Promise<string>;
  daemonJsonPath?: string;
}

/**
 * Asks the daemon whether it remaps and, when it does, which host uid and gid a container's root
 * has. Rejects when `docker info` fails or the daemon remaps but the ids cannot be found.
 */
export async function detectUsernsRemap(docker: Dockerode, deps: DetectDeps = {}): Promise<UsernsRemap> {
  const info = (await docker.info()) as UsernsInfo;
  if (!daemonRemaps(info)) return { remapped: false };
  const fromDir = rootFromDockerRootDir(info.DockerRootDir);
  if (fromDir) return { remapped: true, root: fromDir };

  const read = deps.readText ?? ((f: string) => readFile(f, 'utf8'));
  const daemonJson = deps.daemonJsonPath ?? '/etc/docker/daemon.json';
  let setting = 'default';
  try {
    const parsed = JSON.parse(await read(daemonJson)) as Record<string, unknown>;
    if (typeof parsed['userns-remap'] === 'string') setting = parsed['userns-remap'];
  } catch {
    // dockerd may have been given --userns-remap on its command line; assume its default user.
  }
  const { user, group } = remapUserOf(setting);
  const uid = firstSubordinateId(await read('/etc/subuid').catch(() => ''), [user]);
  const gid = firstSubordinateId(await read('/etc/subgid').catch(() => ''), [group]);
  if (uid === undefined || gid === undefined) {
    throw new Error(
      `the Docker daemon remaps user namespaces, but its data root (${info.DockerRootDir}) does not name the ` +
        `remapped ids and /etc/subuid or /etc/subgid has no range for ${user}:${group}`,
    );
  }
  return { remapped: true, root: { uid, gid } };
}

/** The `executor validate` line for a detection result. */
export function usernsCheckResult(r: UsernsRemap): CheckResult {
  return {
    name: 'user namespaces',
    ok: true,
    detail: r.remapped
      ? `remapped, root in steps is uid ${r.root.uid} on the host (gid ${r.root.gid}); workspaces are given to it`
      : 'not remapped: root in steps is root on the host (with no capabilities); enable with executor install --userns-remap',
  };
}

/**
 * Giving workspaces to the remapped root needs CAP_CHOWN (bit 0 of CapEff in /proc/self/status).
 * Pure over the status text.
 */
export function hasChownCapability(procStatus: string): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/im.exec(procStatus);
  return !!m && (BigInt(`0x${m[1]}`) & 1n) === 1n;
}

/**
 * The checks `executor validate` (and startup) adds for user namespaces. gVisor on a remapped daemon
 * fails: runsc 20221219 (Debian 12) could not create a sandbox under `userns-remap` ("cannot create
 * sandbox: cannot read client sync file"), with or without a network, so every step would fail.
 */
export async function validateUserns(
  docker: Dockerode,
  kind: 'docker' | 'gvisor',
  deps: DetectDeps = {},
): Promise<CheckResult[]> {
  let r: UsernsRemap;
  try {
    r = await detectUsernsRemap(docker, deps);
  } catch (err) {
    return [{ name: 'user namespaces', ok: false, detail: errorMessage(err) }];
  }
  const checks = [usernsCheckResult(r)];
  if (r.remapped && kind === 'gvisor') {
    checks.push({
      name: 'gvisor and user namespaces',
      ok: false,
      detail:
        'the Docker daemon remaps user namespaces, under which runsc does not start sandboxes; ' +
        'use EXECUTOR_RUNTIME=docker on this daemon, or gVisor on a daemon without "userns-remap"',
    });
  }
  if (r.remapped) {
    const read = deps.readText ?? ((f: string) => readFile(f, 'utf8'));
    const status = await read('/proc/self/status').catch(() => '');
    if (!hasChownCapability(status)) {
      checks.push({
        name: 'workspace ownership',
        ok: false,
        detail: `the executor lacks CAP_CHOWN, so it cannot give workspaces to uid ${r.root.uid}; run it as root`,
      });
    }
  }
  return checks;
}
