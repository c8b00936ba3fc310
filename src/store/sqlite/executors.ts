/**
 * Executors and what they send: the registry row a heartbeat upserts, lease renewal of the jobs a
 * heartbeat reports (one guarded UPDATE), and the job-token lookup of every job route. Single
 * statements; no transaction needed, except for a batch of heartbeats (recordHeartbeats) and a
 * touch (touchExecutors), whose statements run in one IMMEDIATE transaction: one commit each.
 */
import { EXECUTOR_ON_CONFLICT, EXECUTOR_SUMMARY_COLUMNS } from '../rows.js';
import { type TokenRow, toTokenRecord } from '../token-row.js';
import type {
  ExecutorHeartbeat,
  ExecutorMetricsRow,
  ExecutorRecord,
  ExecutorSeen,
  HeartbeatAnswer,
  HeartbeatWrite,
  NamePage,
  QueuePollers,
  Store,
} from '../types.js';
import type { SqliteContext } from './connection.js';
import { type ExecutorRow, executorValues, toExecutor, toExecutorSummary } from './rows.js';

export function executorQueries(
  c: SqliteContext,
): Pick<
  Store,
  | 'heartbeat'
  | 'recordHeartbeats'
  | 'touchExecutors'
  | 'upsertExecutor'
  | 'getExecutor'
  | 'listExecutors'
  | 'countExecutors'
  | 'queuePollers'
  | 'recentExecutorMetrics'
  | 'deleteExecutorsSeenBefore'
  | 'lookupTokenFor'
> {
  const { q, tx } = c;
  const renew = (executorName: string, queue: string, jobIds: number[], now: number): HeartbeatAnswer => {
    if (jobIds.length === 0) return { knownIds: [], cancelIds: [] };
    // One statement: the guard (processing, same owner, same queue) and the renewal together.
    const rows = q(
      `UPDATE jobs SET last_heartbeat_at = ?
         WHERE id IN (SELECT value FROM json_each(?)) AND state = 'processing' AND worker_hostname = ? AND queue = ?
         RETURNING id, cancel`,
    ).all(now, JSON.stringify(jobIds), executorName, queue) as { id: number; cancel: number }[];
    rows.sort((a, b) => a.id - b.id);
    return {
      knownIds: rows.map((r) => r.id),
      cancelIds: rows.filter((r) => r.cancel === 1).map((r) => r.id),
    };
  };
  const upsert = (hb: ExecutorHeartbeat, now: number) => {
    q(
      `INSERT INTO executors (name, hostname, queue_name, queue_names, os, architecture, docker_version,
           executor_version, git_version, ignite_version, src_cli_version, first_seen_at, last_seen_at, metrics)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ${EXECUTOR_ON_CONFLICT}`,
    ).run(...executorValues(hb), now, now, hb.metrics);
  };
  // One transaction of one-row updates by primary key: in fleet-shaped runs (2,000 of 10,000
  // rows a second, in arrival order) about 4 us a row, where one statement over json_each took 7.
  // Of two entries of one name, the later time wins (max).
  const touch = tx((seen: ExecutorSeen[]) => {
    const row = q('UPDATE executors SET last_seen_at = max(last_seen_at, ?) WHERE name = ?');
    const found = new Set<string>();
    for (const e of seen) if (row.run(e.at, e.name).changes > 0) found.add(e.name);
    return [...found];
  });
  const record = tx((batch: HeartbeatWrite[], now: number) => {
    for (const w of batch) if (w.row) upsert(w.row, now);
    return batch.map((w) => w.jobs.map((g) => renew(w.executorName, g.queue, g.jobIds, now)));
  });
  return {
    async heartbeat(executorName: string, queue: string, jobIds: number[], now: number) {
      return renew(executorName, queue, jobIds, now);
    },

    async recordHeartbeats(batch: HeartbeatWrite[], now: number) {
      return batch.length === 0 ? [] : record(batch, now);
    },

    async upsertExecutor(hb: ExecutorHeartbeat, now: number) {
      upsert(hb, now);
    },

    async touchExecutors(seen: ExecutorSeen[]) {
      return seen.length === 0 ? [] : touch(seen);
    },

    async getExecutor(name: string): Promise<ExecutorRecord | null> {
      const row = q('SELECT * FROM executors WHERE name = ?').get(name) as ExecutorRow | undefined;
      return row ? toExecutor(row) : null;
    },

    async listExecutors(page?: NamePage) {
      // Without a page: from the first name, no limit (-1).
      const after = page?.after ?? null;
      return (
        q(
          `SELECT ${EXECUTOR_SUMMARY_COLUMNS} FROM executors
           WHERE (? IS NULL OR name > ?) ORDER BY name LIMIT ?`,
        ).all(after, after, page?.limit ?? -1) as Omit<ExecutorRow, 'metrics'>[]
      ).map(toExecutorSummary);
    },

    async countExecutors(now: number, activeWithinMs: number) {
      return q(
        `SELECT count(*) AS total, count(CASE WHEN last_seen_at >= ? THEN 1 END) AS active FROM executors`,
      ).get(now - activeWithinMs) as { total: number; active: number };
    },

    async queuePollers(now: number, activeWithinMs: number) {
      // A scan: last_seen_at is not indexed (migration 9), and most rows are recent. An executor
      // names one queue or a list (JSON text); UNION drops an executor that names a queue twice.
      return q(
        `SELECT queue, count(*) AS executors FROM (
           SELECT name, queue_name AS queue FROM executors WHERE last_seen_at >= ? AND queue_name IS NOT NULL
           UNION
           SELECT e.name, l.value FROM executors e, json_each(e.queue_names) l
             WHERE e.last_seen_at >= ? AND e.queue_names IS NOT NULL
         ) GROUP BY queue ORDER BY queue`,
      ).all(now - activeWithinMs, now - activeWithinMs) as QueuePollers[];
    },

    async recentExecutorMetrics(now: number, withinMs: number, page?: NamePage) {
      // In name order through the primary key, stale rows skipped (last_seen_at is not indexed:
      // migration 9). Without a page: from the first name, no limit (-1).
      const after = page?.after ?? null;
      return q(
        `SELECT name, last_seen_at AS lastSeenAt, metrics FROM executors
         WHERE last_seen_at >= ? AND metrics <> '' AND (? IS NULL OR name > ?) ORDER BY name LIMIT ?`,
      ).all(now - withinMs, after, after, page?.limit ?? -1) as ExecutorMetricsRow[];
    },

    async deleteExecutorsSeenBefore(cutoff: number) {
      return q('DELETE FROM executors WHERE last_seen_at < ?').run(cutoff).changes;
    },

    async lookupTokenFor(tokenHash: string, executorName: string) {
      const r = q('SELECT * FROM job_tokens WHERE token_hash = ?').get(tokenHash) as TokenRow | undefined;
      return {
        token: r ? toTokenRecord(r) : null,
        executorKnown: q('SELECT 1 FROM executors WHERE name = ?').get(executorName) !== undefined,
      };
    },
  };
}
