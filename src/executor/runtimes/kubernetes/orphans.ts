/**
 * The janitor of the Kubernetes runtime: removes the Jobs, Secrets and PVCs labelled with this host
 * that belong to no running job of this executor (also those of an earlier executor process).
 */
import type { Logger } from '../../../lib/logger.js';
import type { KubeClient } from './kube-client.js';
import type { KubeObject } from './kube-types.js';
import { hostSelector, LABELS, labelValue } from './naming.js';

export interface OrphanDeps {
  client: KubeClient;
  executorName: string;
  hostname: string;
  log: Logger;
}

/** Returns what was removed (`job <name>`, ...); a failed list or delete is logged and skipped. */
export async function removeOrphanObjects(
  activeJobUids: ReadonlySet<string>,
  deps: OrphanDeps,
): Promise<string[]> {
  const { client, hostname, log } = deps;
  const me = labelValue(deps.executorName);
  const active = new Set([...activeJobUids].map(labelValue));
  const removed: string[] = [];
  const kinds = [
    ['jobs', 'job'],
    ['secrets', 'secret'],
    ['persistentvolumeclaims', 'persistent volume claim'],
  ] as const;
  for (const [resource, what] of kinds) {
    let items: KubeObject[];
    try {
      items = (await client.list(resource, hostSelector(hostname))).items;
    } catch (err) {
      log.warn('cannot list kubernetes objects for the janitor', { resource, err });
      continue;
    }
    for (const item of items) {
      const meta = (item.metadata ?? {}) as { name?: string; labels?: Record<string, string> };
      const labels = meta.labels ?? {};
      // Ours and not running a job we know of, or left by an earlier executor on this host.
      const orphan = labels[LABELS.name] !== me || !active.has(labels[LABELS.job] ?? '');
      if (!orphan || !meta.name) continue;
      try {
        await client.delete(
          resource,
          meta.name,
          resource === 'jobs' ? { propagationPolicy: 'Background' } : {},
        );
        removed.push(`${what} ${meta.name}`);
        log.info('removed orphaned kubernetes object', {
          resource,
          name: meta.name,
          job: labels[LABELS.job],
        });
      } catch (err) {
        log.warn('cannot remove orphaned kubernetes object', { resource, name: meta.name, err });
      }
    }
  }
  return removed;
}
