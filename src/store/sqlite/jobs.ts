/**
 * Jobs as users see them: submit, read, list, cancel, retry, and their audit trail. getJob and
 * listJobs are single statements; enqueue is one statement, or one IMMEDIATE transaction with its
 * `submitted` event when an actor is given; cancel and retry are one IMMEDIATE transaction each (the
 * update, then the event, the row or the token). A job that becomes ready emits `enqueue` so
 * parked dequeues wake, after the transaction.
 */
import { JOB_EVENT_COLUMNS, type JobEventRow, jobValues, toJobEvent } from '../rows.js';
import type { JobAction, ListJobsQuery, NewJob, Store } from '../types.js';
import type { SqliteContext } from './connection.js';
import { RANK_AT } from './fragments.js';
import { type JobRow, toJob } from './rows.js';

export function jobQueries(
  c: SqliteContext,
): Pick<
  Store,
  'enqueue' | 'getJob' | 'listJobs' | 'cancelJob' | 'retryJob' | 'addJobEvent' | 'listJobEvents'
> {
  const { q, tx } = c;
  const { events, getJobRow, deleteToken } = c;

  const addEvent = (jobId: number, now: number, actor: string | undefined, action: JobAction) => {
    if (actor === undefined) return;
    q('INSERT INTO job_events (job_id, at, actor, action) VALUES (?, ?, ?, ?)').run(
      jobId,
      now,
      actor,
      action,
    );
  };

  const insertJob = (job: NewJob, now: number): JobRow =>
    q(
      `INSERT INTO jobs (queue, state, spec, repository_name, commit_sha, priority, max_attempts, timeout_ms,
           created_at, queued_at, rank_key)
         VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, (? - ? * (SELECT rank_step_ms FROM store_settings WHERE id = 1)))
         RETURNING *`,
    ).get(...jobValues(job), now, now, now, job.priority) as JobRow;

  const enqueueTx = tx((job: NewJob, now: number, actor: string): JobRow => {
    const row = insertJob(job, now);
    addEvent(row.id, now, actor, 'submitted');
    return row;
  });

  const cancelTx = tx((id: number, now: number, actor: string | undefined): JobRow | undefined => {
    const row = q(
      `UPDATE jobs SET cancel = 1,
         state = CASE WHEN state IN ('queued', 'errored') THEN 'canceled' ELSE state END,
         finished_at = CASE WHEN state IN ('queued', 'errored') THEN ? ELSE finished_at END
       WHERE id = ? AND state IN ('queued', 'errored', 'processing') RETURNING *`,
    ).get(now, id) as JobRow | undefined;
    if (row) addEvent(id, now, actor, 'canceled');
    return row ?? getJobRow(id);
  });

  const retryTx = tx(
    (id: number, now: number, actor: string | undefined): { row: JobRow | undefined; requeued: boolean } => {
      const row = q(
        `UPDATE jobs SET state = 'queued', attempts = 0, num_failures = 0, num_resets = 0, cancel = 0,
           failure_message = NULL, worker_hostname = NULL, started_at = NULL, last_heartbeat_at = NULL,
           finished_at = NULL, process_after = NULL, queued_at = ?, rank_key = ${RANK_AT}
         WHERE id = ? AND state IN ('failed', 'errored', 'canceled') RETURNING *`,
      ).get(now, now, id) as JobRow | undefined;
      if (row) {
        deleteToken(id);
        addEvent(id, now, actor, 'retried');
      }
      return { row: row ?? getJobRow(id), requeued: row !== undefined };
    },
  );

  return {
    async enqueue(job: NewJob, now: number, actor?: string) {
      const row = actor === undefined ? insertJob(job, now) : enqueueTx(job, now, actor);
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

    async cancelJob(id: number, now: number, actor?: string) {
      const row = cancelTx(id, now, actor);
      return row ? toJob(row) : null;
    },

    async retryJob(id: number, now: number, actor?: string) {
      const { row, requeued } = retryTx(id, now, actor);
      if (!row) return null;
      if (requeued) events.emit('enqueue', row.queue);
      return toJob(row);
    },

    /** One statement; the job's existence is checked in it. */
    async addJobEvent(e) {
      const r = q(
        `INSERT INTO job_events (job_id, at, actor, action)
           SELECT id, ?, ?, ? FROM jobs WHERE id = ?`,
      ).run(e.at, e.actor, e.action, e.jobId);
      return r.changes === 1;
    },

    async listJobEvents(jobId: number) {
      const rows = q(`SELECT ${JOB_EVENT_COLUMNS} FROM job_events WHERE job_id = ? ORDER BY id`).all(
        jobId,
      ) as JobEventRow[];
      return rows.map(toJobEvent);
    },
  };
}
