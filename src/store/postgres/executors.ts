/**
 * Executors and what they send: the registry row a heartbeat upserts, lease renewal of the jobs a
 * heartbeat reports (one guarded UPDATE), and the job-token lookup of every job route (one query for
 * the token and the executor's registration). Single statements.
 */
import { EXECUTOR_ON_CONFLICT } from '../rows.js';
import { type TokenRow, toTokenRecord } from '../token-row.js';
import type { ExecutorHeartbeat, Store } from '../types.js';
import type { PgContext } from './connection.js';
import { at } from './fragments.js';
import { executorValues, type PgExecutorRow, toExecutor } from './rows.js';

export function executorQueries(
  c: PgContext,
): Pick<
  Store,
  | 'heartbeat'
  | 'upsertExecutor'
  | 'getExecutor'
  | 'listExecutors'
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
        `WITH alive AS (
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

    async upsertExecutor(hb: ExecutorHeartbeat, now: number) {
      await query(
        `INSERT INTO executors (name, hostname, queue_name, queue_names, os, architecture, docker_version,
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

    async listExecutors() {
      return (await rows<PgExecutorRow>('SELECT * FROM executors ORDER BY name COLLATE "C"')).map(toExecutor);
    },

    async recentExecutorMetrics(now: number, withinMs: number) {
      // executors_last_seen serves the range; stale rows and their texts are not read.
      return (
        await rows<{ name: string; last_seen_at: number; metrics: string }>(
          `SELECT name, last_seen_at, metrics FROM executors
           WHERE last_seen_at >= ${at(1)} - $2 AND metrics <> '' ORDER BY name COLLATE "C"`,
          [t(now), withinMs],
        )
      ).map((r) => ({ name: r.name, lastSeenAt: Number(r.last_seen_at), metrics: r.metrics }));
    },

    async deleteExecutorsSeenBefore(cutoff: number) {
      return (await query('DELETE FROM executors WHERE last_seen_at < $1', [cutoff])).rowCount ?? 0;
    },
  };
}
