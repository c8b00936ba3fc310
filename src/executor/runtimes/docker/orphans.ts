/** The janitor of the docker runtime. */

import type Dockerode from 'dockerode';
import type { ContainerInfo } from 'dockerode';
import type { Logger } from '../../../lib/logger.js';
import { HOLDER_ROLE, LABELS } from './convert.js';
import { forceRemove } from './engine.js';

export interface OrphanDeps {
  docker: Dockerode;
  executorName: string;
  hostname: string;
  log: Logger;
  /** The runtime's network holders: an idle holder or one of a running job is never an orphan. */
  holders?: { isOrphan(token: string): boolean };
}

/** True when a process with this pid exists (EPERM means it exists but is not ours). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the step containers labelled with this host that belong to no running job of this
 * executor, and any whose executor process is gone; and the network holders (network-holders.ts)
 * whose executor process is gone or that this runtime's pool does not know. Returns what was
 * removed, for logs and metrics.
 */
export async function removeOrphanContainers(
  activeJobUids: ReadonlySet<string>,
  deps: OrphanDeps,
): Promise<string[]> {
  const { docker, hostname, log } = deps;
  const containers: ContainerInfo[] = await docker.listContainers({
    all: true,
    filters: { label: [`${LABELS.host}=${hostname}`] },
  });
  const removed: string[] = [];
  for (const c of containers) {
    const labels = c.Labels ?? {};
    const ours = labels[LABELS.name] === deps.executorName;
    const jobUid = labels[LABELS.job] ?? '';
    const pid = Number(labels[LABELS.pid]);
    // Holders carry no job: they are judged by the pool that made them.
    const orphan =
      labels[LABELS.role] === HOLDER_ROLE
        ? !pidAlive(pid) || (ours && deps.holders?.isOrphan(labels[LABELS.holder] ?? '') === true)
        : // Ours and not running a job we know of, or anyone's whose executor process is gone.
          (ours && !activeJobUids.has(jobUid)) || !pidAlive(pid);
    if (!orphan) continue;
    try {
      await forceRemove(docker, c.Id);
      const name = c.Names?.[0]?.replace(/^\//, '');
      removed.push(name ? `${c.Id.slice(0, 12)} (${name})` : c.Id.slice(0, 12));
      log.info('removed orphaned container', { id: c.Id.slice(0, 12), job: jobUid });
    } catch (err) {
      log.warn('cannot remove orphaned container', { id: c.Id.slice(0, 12), err });
    }
  }
  return removed;
}
