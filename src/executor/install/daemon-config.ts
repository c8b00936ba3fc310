/**
 * The parts of a Docker daemon's configuration (`/etc/docker/daemon.json`) the executor controls:
 * `registry-mirrors` (EXECUTOR_DOCKER_REGISTRY_MIRROR_URL), the `runsc` runtime (gVisor) and
 * `userns-remap` (user-namespace remapping). All are merged into what is there: keys an operator
 * set are kept, mirrors already listed keep their order, an existing `runsc` entry is left as it is,
 * and so is an existing non-empty `userns-remap` (an operator's own remap user). Pure; no I/O.
 */

export type DaemonConfig = Record<string, unknown>;

export interface DaemonConfigWants {
  /** Mirror URLs, normalised (`scheme://host[:port]`). */
  registryMirrors: string[];
  /** Register gVisor as the `runsc` runtime with this binary. */
  runscPath?: string;
  /** `userns-remap` value to set when none is set (`default`: dockerd creates and uses `dockremap`). */
  usernsRemap?: string;
}

/**
 * runsc flags used when we register it: ptrace needs no KVM; this runsc build refuses to start
 * containers without host networking (the same flags scripts/ci-setup.sh writes).
 */
export const RUNSC_RUNTIME_ARGS = ['--platform=ptrace', '--network=host'];

/** `http://h:5000/` and `http://h:5000` are the same mirror to dockerd. */
export function normaliseMirror(url: string): string {
  return url.replace(/\/+$/, '');
}

/** Returns the merged configuration; the input is not modified. */
export function mergeDaemonConfig(existing: DaemonConfig, wants: DaemonConfigWants): DaemonConfig {
  const out: DaemonConfig = { ...existing };
  if (wants.registryMirrors.length > 0) {
    const current = Array.isArray(existing['registry-mirrors'])
      ? (existing['registry-mirrors'] as unknown[]).filter((m): m is string => typeof m === 'string')
      : [];
    const have = new Set(current.map(normaliseMirror));
    const merged = [...current];
    for (const m of wants.registryMirrors) {
      if (!have.has(normaliseMirror(m))) {
        merged.push(m);
        have.add(normaliseMirror(m));
      }
    }
    out['registry-mirrors'] = merged;
  }
  if (wants.runscPath) {
    const runtimes =
      existing.runtimes && typeof existing.runtimes === 'object' && !Array.isArray(existing.runtimes)
        ? { ...(existing.runtimes as Record<string, unknown>) }
        : {};
    if (!runtimes.runsc) runtimes.runsc = { path: wants.runscPath, runtimeArgs: RUNSC_RUNTIME_ARGS };
    out.runtimes = runtimes;
  }
  if (wants.usernsRemap) {
    const current = existing['userns-remap'];
    if (typeof current !== 'string' || current.trim() === '') out['userns-remap'] = wants.usernsRemap;
  }
  return out;
}

export interface MirrorCheck {
  ok: boolean;
  detail: string;
}

/**
 * Compares the configured mirrors with the daemon's (`docker info` RegistryConfig.Mirrors). With
 * none configured the check only reports what the daemon uses; with some configured, each must be
 * among the daemon's.
 */
export function checkRegistryMirrors(configured: string[], daemonMirrors: string[]): MirrorCheck {
  const daemon = daemonMirrors.map(normaliseMirror);
  const uses = daemon.length > 0 ? `the Docker daemon uses registry mirror(s) ${daemon.join(', ')}` : '';
  if (configured.length === 0) {
    return {
      ok: true,
      detail:
        uses || 'the Docker daemon uses no registry mirror: Docker Hub images are pulled from Docker Hub',
    };
  }
  const missing = configured.map(normaliseMirror).filter((m) => !daemon.includes(m));
  if (missing.length === 0) return { ok: true, detail: uses };
  return {
    ok: false,
    detail:
      `EXECUTOR_DOCKER_REGISTRY_MIRROR_URL names ${missing.join(', ')} but the Docker daemon's registry-mirrors are ` +
      `${daemon.length > 0 ? daemon.join(', ') : 'empty'}; run \`executor install --registry-mirror ${missing.join(',')}\` ` +
      'or add them to "registry-mirrors" in /etc/docker/daemon.json, then reload dockerd',
  };
}
