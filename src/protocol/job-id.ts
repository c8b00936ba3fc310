/**
 * Multi-queue job ids: the executor tracks running jobs as `"<id>-<queue>"` and groups them per queue
 * for the heartbeat (Sourcegraph `ParseJobIDs`): split at the first `-`, groups sorted by queue name,
 * ids in input order.
 */
import type { QueueJobIds } from './http.js';

export class JobIdsParseError extends Error {
  constructor(readonly invalid: string[]) {
    super(`failed to parse one or more unexpected job ID formats: ${invalid.join(', ')}`);
  }
}

export function parseJobIds(ids: readonly string[]): QueueJobIds[] {
  const groups = new Map<string, string[]>();
  const invalid: string[] = [];
  for (const id of ids) {
    const i = id.indexOf('-');
    if (i <= 0 || i === id.length - 1) {
      invalid.push(id);
      continue;
    }
    const queue = id.slice(i + 1);
    const list = groups.get(queue) ?? [];
    list.push(id.slice(0, i));
    groups.set(queue, list);
  }
  if (invalid.length > 0) throw new JobIdsParseError(invalid);
  return [...groups.keys()].sort().map((queueName) => ({ queueName, jobIds: groups.get(queueName)! }));
}

/** `"42-batches"` -> `{ id: 42, queue: "batches" }`; `"42"` -> `{ id: 42 }`. */
export function splitRecordUid(uid: string): { id: number; queue?: string } {
  const i = uid.indexOf('-');
  if (i < 0) return { id: Number(uid) };
  return { id: Number(uid.slice(0, i)), queue: uid.slice(i + 1) };
}
