/**
 * Executors and what they send: the registry row a heartbeat upserts, lease renewal of the jobs a
 * heartbeat reports (one guarded UPDATE), a batch of both (recordHeartbeats), and the job-token
 * lookup of every job route (one query for the token and the executor's registration). Single
 * statements. Each table's rows are locked in one order everywhere (executors by name, jobs by id),
 * so overlapping heartbeats or batches, of this replica or another, do not deadlock on one table. A
 * batch that locks an executor row and then a job another batch locked before that executor's row
 * could (two replicas batching heartbeats of the same two executors at once); PostgreSQL then
 * fails one, and the server writes that batch's heartbeats one by one (heartbeat-writer.ts).
 */
import { EXECUTOR_ON_CONFLICT, EXECUTOR_SUMMARY_COLUMNS } from '../rows.js';
import { type TokenRow, toTokenRecord } from '../token-row.js';
import type {
  ExecutorHeartbeat,
  ExecutorSeen,
  HeartbeatAnswer,
  HeartbeatWrite,
  NamePage,
  QueuePollers,
  Store,
} from '../types.js';
import type { PgContext } from './connection.js';
import { at, DB_NOW_MS, sql } from './fragments.js';
import { executorValues, type PgExecutorRow, toExecutor, toExecutorSummary } from './rows.js';

export function executorQueries(
  c: PgContext,
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
  const { t, rows, query } = c;
  return {
    async lookupTokenFor(tokenHash: string, executorName: string) {
      // One row always: the token's columns are null when there is no such token.
      const [r] = await rows<(TokenRow | { [K in keyof TokenRow]: null }) & { executor_known: boolean }>(
        `SELECT t.job_id, t.attempt, t.queue, t.repository_name, t.executor_name,
           EXISTS (SELECT 1 FROM executors WHERE name = $2) AS executor_known
         FROM (SELECT 1) AS one LEFT JOIN job_tokens t ON t.token_hash = $1`,
        [tokenHash, executorName],
      );
      return {
        token: r && r.job_id !== null ? toTokenRecord(r as TokenRow) : null,
        executorKnown: r?.executor_known === true,
      };
    },

    /** Locks the owned rows in id order first, so two overlapping heartbeats cannot deadlock. */
    async heartbeat(executorName: string, queue: string, jobIds: number[], now: number) {
      if (jobIds.length === 0) return { knownIds: [], cancelIds: [] };
      const r = await rows<{ id: number; cancel: boolean }>(
        sql`WITH alive AS (
           SELECT id FROM jobs
           WHERE id = ANY($1::bigint[]) AND state = 'processing' AND worker_hostname = $2 AND queue = $3
           ORDER BY id FOR UPDATE)
         UPDATE jobs SET last_heartbeat_at = ${at(4)} WHERE id IN (SELECT id FROM alive)
         RETURNING id, cancel`,
        [jobIds, executorName, queue, t(now)],
      );
      r.sort((a, b) => a.id - b.id);
      return { knownIds: r.map((x) => x.id), cancelIds: r.filter((x) => x.cancel).map((x) => x.id) };
    },

    /**
     * One statement: the rows upserted from a JSON array (ordered by name, one per name: a second
     * row of one name in one INSERT would be an error), the jobs locked in id order and renewed.
     * Data-modifying CTEs run to completion whether or not the outer query reads them.
     */
    async recordHeartbeats(batch: HeartbeatWrite[], now: number) {
      if (batch.length === 0) return [];
      const byName = new Map<string, ExecutorHeartbeat>();
      for (const w of batch) if (w.row) byName.set(w.row.name, w.row);
      const ids: number[] = [];
      const owners: string[] = [];
      const queues: string[] = [];
      for (const w of batch) {
        for (const g of w.jobs) {
          for (const id of g.jobIds) {
            ids.push(id);
            owners.push(w.executorName);
            queues.push(g.queue);
          }
        }
      }
      const renewed = await rows<{ id: number; cancel: boolean; worker_hostname: string; queue: string }>(
        sql`WITH upserted AS (
           INSERT INTO executors (name, hostname, queue_name, queue_names, os, architecture, docker_version,
             executor_version, git_version, ignite_version, src_cli_version, first_seen_at, last_seen_at, metrics)
           SELECT e.name, e.hostname, e.queue_name, e.queue_names, e.os, e.architecture, e.docker_version,
             e.executor_version, e.git_version, e.ignite_version, e.src_cli_version, ${at(5)}, ${at(5)}, e.metrics
           FROM jsonb_to_recordset($1::jsonb) AS e(name text, hostname text, queue_name text,
             queue_names text[], os text, architecture text, docker_version text, executor_version text,
             git_version text, ignite_version text, src_cli_version text, metrics text)
           ORDER BY e.name
           ${EXECUTOR_ON_CONFLICT}
           RETURNING 1),
         alive AS (
           SELECT j.id FROM jobs j
           JOIN unnest($2::bigint[], $3::text[], $4::text[]) AS r(id, owner, queue)
             ON j.id = r.id AND j.worker_hostname = r.owner AND j.queue = r.queue
           WHERE j.state = 'processing'
           ORDER BY j.id FOR UPDATE OF j)
         UPDATE jobs SET last_heartbeat_at = ${at(5)} WHERE id IN (SELECT id FROM alive)
         RETURNING id, cancel, worker_hostname, queue`,
        [JSON.stringify([...byName.values()].map(executorJson)), ids, owners, queues, t(now)],
      );
      const byId = new Map(renewed.map((r) => [r.id, r]));
      return batch.map((w) =>
        w.jobs.map((g): HeartbeatAnswer => {
          const known = [...new Set(g.jobIds)]
            .filter((id) => {
              const r = byId.get(id);
              return r !== undefined && r.worker_hostname === w.executorName && r.queue === g.queue;
            })
            .sort((a, b) => a - b);
          return { knownIds: known, cancelIds: known.filter((id) => byId.get(id)!.cancel) };
        }),
      );
    },

    touchExecutors: (seen) => touchExecutors(c, seen),

    async upsertExecutor(hb: ExecutorHeartbeat, now: number) {
      await query(
        sql`INSERT INTO executors (name, hostname, queue_name, queue_names, os, architecture, docker_version,
           executor_version, git_version, ignite_version, src_cli_version, first_seen_at, last_seen_at, metrics)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, ${at(12)}, ${at(12)}, $13)
         ${EXECUTOR_ON_CONFLICT}`,
        [...executorValues(hb), t(now), hb.metrics],
      );
    },

    async getExecutor(name: string) {
      const [row] = await rows<PgExecutorRow>('SELECT * FROM executors WHERE name = $1', [name]);
      return row ? toExecutor(row) : null;
    },

    async listExecutors(page?: NamePage) {
      // Without a page: from the first name, no limit (LIMIT NULL).
      return (
        await rows<Omit<PgExecutorRow, 'metrics'>>(
          `SELECT ${EXECUTOR_SUMMARY_COLUMNS} FROM executors
           WHERE ($1::text IS NULL OR name COLLATE "C" > $1::text) ORDER BY name COLLATE "C" LIMIT $2`,
          [page?.after ?? null, page?.limit ?? null],
        )
      ).map(toExecutorSummary);
    },

    async countExecutors(now: number, activeWithinMs: number) {
      const [r] = await rows<{ total: string; active: string }>(
        sql`SELECT count(*) AS total, count(*) FILTER (WHERE last_seen_at >= ${at(1)} - $2) AS active
         FROM executors`,
        [t(now), activeWithinMs],
      );
      return { total: Number(r?.total ?? 0), active: Number(r?.active ?? 0) };
    },

    queuePollers: (now: number, activeWithinMs: number) => queuePollers(c, now, activeWithinMs),

    async recentExecutorMetrics(now: number, withinMs: number, page?: NamePage) {
      // Stale rows are skipped, not avoided: last_seen_at is not indexed (migration 8), so that
      // touches are heap-only updates. Without a page: from the first name, no limit (LIMIT NULL).
      const found = await rows<{ name: string; last_seen_at: number; metrics: string }>(
        sql`SELECT name, last_seen_at, metrics FROM executors
         WHERE last_seen_at >= ${at(1)} - $2 AND metrics <> ''
           AND ($3::text IS NULL OR name COLLATE "C" > $3::text)
         ORDER BY name COLLATE "C" LIMIT $4`,
        [t(now), withinMs, page?.after ?? null, page?.limit ?? null],
      );
      return found.map((r) => ({ name: r.name, lastSeenAt: Number(r.last_seen_at), metrics: r.metrics }));
    },

    async deleteExecutorsSeenBefore(cutoff: number) {
      return (await query('DELETE FROM executors WHERE last_seen_at < $1', [cutoff])).rowCount ?? 0;
    },
  };
}

/** An executor row as jsonb_to_recordset reads it (recordHeartbeats). */
function executorJson(hb: ExecutorHeartbeat) {
  return {
    name: hb.name,
    hostname: hb.hostname,
    queue_name: hb.queueName,
    queue_names: hb.queueNames,
    os: hb.os,
    architecture: hb.architecture,
    docker_version: hb.dockerVersion,
    executor_version: hb.executorVersion,
    git_version: hb.gitVersion,
    ignite_version: hb.igniteVersion,
    src_cli_version: hb.srcCliVersion,
    metrics: hb.metrics,
  };
}

/** Store.queuePollers. An executor names one queue or a list; UNION drops one that names a queue twice. */
async function queuePollers(
  { t, rows }: PgContext,
  now: number,
  activeWithinMs: number,
): Promise<QueuePollers[]> {
  const found = await rows<{ queue: string; executors: string }>(
    sql`SELECT queue, count(*) AS executors FROM (
       SELECT name, queue_name AS queue FROM executors
         WHERE last_seen_at >= ${at(1)} - $2 AND queue_name IS NOT NULL
       UNION
       SELECT name, unnest(queue_names) FROM executors
         WHERE last_seen_at >= ${at(1)} - $2 AND queue_names IS NOT NULL
     ) AS polled GROUP BY queue ORDER BY queue COLLATE "C"`,
    [t(now), activeWithinMs],
  );
  return found.map((r) => ({ queue: r.queue, executors: Number(r.executors) }));
}

/**
 * Store.touchExecutors, one statement. Rows are locked in name order, as recordHeartbeats' upsert
 * locks them, so the two cannot deadlock. last_seen_at is in no index (migration 8), so each row's
 * update can stay on its page (heap-only) and writes no index.
 */
async function touchExecutors({ t, rows }: PgContext, seen: ExecutorSeen[]): Promise<string[]> {
  if (seen.length === 0) return [];
  // Of two entries of one name, the later time wins (max).
  const found = await rows<{ name: string }>(
    sql`WITH s AS (SELECT name, max(at) AS at FROM unnest($1::text[], $2::bigint[]) AS s(name, at) GROUP BY name),
       locked AS (
         SELECT e.name, COALESCE(s.at, ${DB_NOW_MS}) AS at FROM executors e JOIN s ON s.name = e.name
         ORDER BY e.name FOR UPDATE OF e)
       UPDATE executors e SET last_seen_at = GREATEST(e.last_seen_at, locked.at)
       FROM locked WHERE e.name = locked.name
       RETURNING e.name`,
    [seen.map((e) => e.name), seen.map((e) => t(e.at))],
  );
  return found.map((r) => r.name);
}
