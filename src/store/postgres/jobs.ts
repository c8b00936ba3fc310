/**
 * Jobs as users see them: submit, read, list, cancel, retry, and their audit trail. Each is one
 * statement (data-modifying CTEs keep a state change, its token deletion and its audit event
 * atomic, with no extra round trip); a job that becomes ready is NOTIFYed after the statement
 * committed. An event CTE inserts nothing when its actor parameter is NULL.
 */
import { JOB_EVENT_COLUMNS, type JobEventRow, jobValues, toJobEvent } from '../rows.js';
import type { ListJobsQuery, NewJob, Store } from '../types.js';
import type { PgContext } from './connection.js';
import { at, RANK_STEP, sql } from './fragments.js';
import { type PgJobRow, toJob } from './rows.js';

export function jobQueries(
  c: PgContext,
): Pick<
  Store,
  'enqueue' | 'getJob' | 'listJobs' | 'cancelJob' | 'retryJob' | 'addJobEvent' | 'listJobEvents'
> {
  const { t, rows, notify } = c;
  return {
    async enqueue(job: NewJob, now: number, actor?: string) {
      const [row] = await rows<PgJobRow>(
        sql`WITH j AS (
           INSERT INTO jobs (queue, state, spec, repository_name, commit_sha, priority, max_attempts, timeout_ms,
             created_at, queued_at, rank_key)
           SELECT $1::text, 'queued', $2::json, $3::text, $4::text, $5::int, $6::int, $7::bigint, n, n,
             n - $5::int * ${RANK_STEP}
           FROM (SELECT ${at(8)} AS n) AS clock
           RETURNING *),
         e AS (INSERT INTO job_events (job_id, at, actor, action)
           SELECT id, created_at, $9::text, 'submitted' FROM j WHERE $9::text IS NOT NULL)
         SELECT * FROM j`,
        [...jobValues(job), t(now), actor ?? null],
      );
      await notify([job.queue]);
      return toJob(row!);
    },

    async getJob(id: number) {
      const [row] = await rows<PgJobRow>('SELECT * FROM jobs WHERE id = $1', [id]);
      return row ? toJob(row) : null;
    },

    async listJobs(query: ListJobsQuery) {
      const where: string[] = [];
      const params: unknown[] = [];
      if (query.state) {
        params.push(query.state);
        where.push(`state = $${params.length}`);
      }
      if (query.queue) {
        params.push(query.queue);
        where.push(`queue = $${params.length}`);
      }
      const filter = where.length ? `WHERE ${where.join(' AND ')}` : '';
      const [{ total }] = (await rows<{ total: number }>(
        `SELECT count(*) AS total FROM jobs ${filter}`,
        params,
      )) as [{ total: number }];
      const pageWhere = [...where];
      const pageParams = [...params];
      if (query.before !== undefined) {
        pageParams.push(query.before);
        pageWhere.push(`id < $${pageParams.length}`);
      }
      pageParams.push(Math.min(500, Math.max(1, Math.floor(query.limit))));
      const page = await rows<PgJobRow>(
        `SELECT * FROM jobs ${pageWhere.length ? `WHERE ${pageWhere.join(' AND ')}` : ''}
         ORDER BY id DESC LIMIT $${pageParams.length}`,
        pageParams,
      );
      return { jobs: page.map(toJob), total };
    },

    /**
     * One statement: pick the best queued row through the partial index, lock it with SKIP LOCKED (a
     * row another claimer holds is passed over, never waited for), set it processing, install the
     * attempt's token (replacing an older one) and clear any log left under the attempt number.
     */
    async cancelJob(id: number, now: number, actor?: string) {
      const [row] = await rows<PgJobRow>(
        sql`WITH c AS (
           UPDATE jobs SET cancel = TRUE,
             state = CASE WHEN state IN ('queued', 'errored') THEN 'canceled' ELSE state END,
             finished_at = CASE WHEN state IN ('queued', 'errored') THEN ${at(2)} ELSE finished_at END
           WHERE id = $1 AND state IN ('queued', 'errored', 'processing') RETURNING *),
         e AS (INSERT INTO job_events (job_id, at, actor, action)
           SELECT id, ${at(2)}, $3::text, 'canceled' FROM c WHERE $3::text IS NOT NULL)
         SELECT * FROM c`,
        [id, t(now), actor ?? null],
      );
      if (row) return toJob(row);
      const [cur] = await rows<PgJobRow>('SELECT * FROM jobs WHERE id = $1', [id]);
      return cur ? toJob(cur) : null;
    },

    async retryJob(id: number, now: number, actor?: string) {
      const [row] = await rows<PgJobRow>(
        sql`WITH r AS (
           UPDATE jobs SET state = 'queued', attempts = 0, num_failures = 0, num_resets = 0, cancel = FALSE,
             failure_message = NULL, worker_hostname = NULL, started_at = NULL, last_heartbeat_at = NULL,
             finished_at = NULL, process_after = NULL, queued_at = ${at(2)},
             rank_key = ${at(2)} - priority * ${RANK_STEP}
           WHERE id = $1 AND state IN ('failed', 'errored', 'canceled') RETURNING *),
         t AS (DELETE FROM job_tokens WHERE job_id IN (SELECT id FROM r)),
         e AS (INSERT INTO job_events (job_id, at, actor, action)
           SELECT id, ${at(2)}, $3::text, 'retried' FROM r WHERE $3::text IS NOT NULL)
         SELECT * FROM r`,
        [id, t(now), actor ?? null],
      );
      if (row) {
        await notify([row.queue]);
        return toJob(row);
      }
      const [cur] = await rows<PgJobRow>('SELECT * FROM jobs WHERE id = $1', [id]);
      return cur ? toJob(cur) : null;
    },

    /** One statement; the job's existence is checked in it. */
    async addJobEvent(e) {
      const inserted = await rows<{ job_id: number }>(
        sql`INSERT INTO job_events (job_id, at, actor, action)
         SELECT id, ${at(2)}, $3::text, $4::text FROM jobs WHERE id = $1 RETURNING job_id`,
        [e.jobId, t(e.at), e.actor, e.action],
      );
      return inserted.length === 1;
    },

    async listJobEvents(jobId: number) {
      const found = await rows<JobEventRow>(
        sql`SELECT ${JOB_EVENT_COLUMNS} FROM job_events WHERE job_id = $1 ORDER BY id`,
        [jobId],
      );
      return found.map(toJobEvent);
    },
  };
}
