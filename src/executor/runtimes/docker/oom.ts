/**
 * Was a step killed for memory? Docker's `State.OOMKilled` is set from containerd's OOM event, and
 * the shim subscribes to that event only after the task has started. A step that reaches its limit
 * before the subscription exists exits with 137 and `OOMKilled: false`, and stays false: under
 * gVisor with a fork bomb beside it and both cores busy, 4 of 20 memory hogs were reported so,
 * still false a second later. (Under runc it was 0 of 15 on the same machine; the window is the
 * time between the task's start and the shim's subscription, which gVisor's boot makes longer.)
 *
 * The kernel's own count does not race: it increments `oom_kill` in /proc/vmstat before it sends
 * the kill, so the count has risen by the time the container's exit is reported. The kernel log
 * names the container's cgroup too, but it is rate-limited and overwritten, so it can confirm but
 * not deny, and is not used. /proc/vmstat is host-wide (not namespaced), so the count is read only
 * when the Docker daemon runs on this host, where runc and runsc both put the step.
 */
import { readFile } from 'node:fs/promises';
import type Dockerode from 'dockerode';

/** 128 + SIGKILL: how a container reports a process killed by the OOM killer (or any SIGKILL). */
export const SIGKILL_EXIT = 137;

export interface OomEvidence {
  exitCode: number;
  /** `State.OOMKilled` from inspecting the container after it exited. */
  dockerOomKilled: boolean;
  /** The step ran with a memory limit. */
  memoryLimited: boolean;
  /** We killed it (cancel, timeout, shutdown); a SIGKILL of ours is not an OOM kill. */
  killedByUs: boolean;
  /** How much the host's oom_kill count rose while the step ran; undefined when not read. */
  hostOomKills?: number;
}

export type OomSource = 'docker' | 'kernel-count';

export interface OomVerdict {
  oomKilled: boolean;
  /** Which evidence decided it (for the executor's log), when oomKilled. */
  source?: OomSource;
}

/**
 * Decides from evidence that does not depend on timing: Docker's flag when it is set; otherwise a
 * SIGKILL exit of a memory-limited step that we did not kill, while the kernel counted an OOM kill.
 * The one mistake left is the other way round from the old one: a step that SIGKILLs itself while
 * another step on the same host is OOM-killed is reported as out of memory too.
 */
export function classifyOom(e: OomEvidence): OomVerdict {
  if (e.dockerOomKilled) return { oomKilled: true, source: 'docker' };
  if (e.exitCode !== SIGKILL_EXIT || !e.memoryLimited || e.killedByUs) return { oomKilled: false };
  if ((e.hostOomKills ?? 0) > 0) return { oomKilled: true, source: 'kernel-count' };
  return { oomKilled: false };
}

/** The `oom_kill` line of a /proc/vmstat text, or undefined when the kernel has none (before 4.13). */
export function parseOomKillCount(vmstat: string): number | undefined {
  const m = /^oom_kill (\d+)$/m.exec(vmstat);
  return m ? Number(m[1]) : undefined;
}

/** The host's OOM kill count so far, or undefined when it cannot be read. */
export async function readOomKillCount(path = '/proc/vmstat'): Promise<number | undefined> {
  try {
    return parseOomKillCount(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/** True when the daemon is reached over a Unix socket, i.e. its containers run on this host's kernel. */
export function daemonIsLocal(docker: Dockerode): boolean {
  // docker-modem keeps either a socket path (a string, or a function that finds the default one)
  // or a host for TCP.
  const modem = docker.modem as { socketPath?: unknown; host?: unknown };
  return (
    !modem.host &&
    (typeof modem.socketPath === 'function' ||
      (typeof modem.socketPath === 'string' && modem.socketPath !== ''))
  );
}
