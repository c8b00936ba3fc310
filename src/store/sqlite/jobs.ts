/**
 * Jobs as users see them: submit, read, list, cancel, retry. enqueue, getJob and listJobs are single
 * statements; cancel and retry are one IMMEDIATE transaction each (the update, then the row or the
 * token). A job that becomes ready emits `enqueue` so parked dequeues wake.
 */
import { jobValues } from '../rows.js';
import type { ListJobsQuery, NewJob, Store } from '../types.js';
import type { SqliteContext } from './connection.js';
import { RANK_AT } from './fragments.js';
import { type JobRow, toJob } from './rows.js';

export function jobQueries(
  c: SqliteContext,
): Pick<Store, 'enqueue' | 'getJob' | 'listJobs' | 'cancelJob' | 'retryJob'> {
  const { q, tx } = c;
  const { events, getJobRow, deleteToken } = c;

  const cancelTx = tx((id: number, now: number): JobRow | undefined => {
    const row = q(
      `UPDATE jobs SET cancel = 1,
         state = CASE WHEN state IN ('queued', 'errored') THEN 'canceled' ELSE state END,
         finished_at = CASE WHEN state IN ('queued', 'errored') THEN ? ELSE finished_at END
       WHERE id = ? AND state IN ('queued', 'errored', 'processing') RETURNING *`,
    ).get(now, id) as JobRow | undefined;
    return row ?? getJobRow(id);
  });

  const retryTx = tx((id: number, now: number): { row: JobRow | undefined; requeued: boolean } => {
    const row = q(
      `UPDATE jobs SET state = 'queued', attempts = 0, num_failures = 0, num_resets = 0, cancel = 0,
         failure_message = NULL, worker_hostname = NULL, started_at = NULL, last_heartbeat_at = NULL,
         finished_at = NULL, process_after = NULL, queued_at = ?, rank_key = ${RANK_AT}
       WHERE id = ? AND state IN ('failed', 'errored', 'canceled') RETURNING *`,
    ).get(now, now, id) as JobRow | undefined;
    if (row) deleteToken(id);
    return { row: row ?? getJobRow(id), requeued: row !== undefined };
  });

  return {
    async enqueue(job: NewJob, now: number) {
      const row = q(
        `INSERT INTO jobs (queue, state, spec, repository_name, commit_sha, priority, max_attempts, timeout_ms,
             created_at, queued_at, rank_key)
           VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, (? - ? * (SELECT rank_step_ms FROM store_settings WHERE id = 1)))
           RETURNING *`,
      ).get(...jobValues(job), now, now, now, job.priority) as JobRow;
      events.emit('enqueue', row.queue);
      return toJob(row);
    },

    async getJob(id: number) {
      const row = getJobRow(id);
      return row ? toJob(row) : null;
    },

    async listJobs(query: ListJobsQuery) {
      const where: string[] = [];
      const params: unknown[] = [];
      if (query.state) {
        where.push('state = ?');
        params.push(query.state);
      }
      if (query.queue) {
        where.push('queue = ?');
        params.push(query.queue);
      }
      const filter = where.length ? `WHERE ${where.join(' AND ')}` : '';
      const { total } = q(`SELECT COUNT(*) AS total FROM jobs ${filter}`).get(...params) as { total: number };
      const pageWhere = [...where];
      const pageParams = [...params];
      if (query.before !== undefined) {
        pageWhere.push('id < ?');
        pageParams.push(query.before);
      }
      const limit = Math.min(500, Math.max(1, Math.floor(query.limit)));
      const rows = q(
        `SELECT * FROM jobs ${pageWhere.length ? `WHERE ${pageWhere.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`,
      ).all(...pageParams, limit) as JobRow[];
      return { jobs: rows.map(toJob), total };
    },

    async cancelJob(id: number, now: number) {
      const row = cancelTx(id, now);
      return row ? toJob(row) : null;
    },

    async retryJob(id: number, now: number) {
      const { row, requeued } = retryTx(id, now);
      if (!row) return null;
      if (requeued) events.emit('enqueue', row.queue);
      return toJob(row);
    },
  };
}
