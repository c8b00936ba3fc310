/**
 * An auditing Store decorator: every attempt start, every attempt end and every executor write the
 * store ACCEPTED is appended (synchronously, one JSON line each) to an audit file, with the time
 * the call began (t0) and returned (t1). The invariant checker replays it to prove that no write
 * was accepted from an attempt that had already ended or been superseded. A line written with
 * appendFileSync survives a kill -9 of the process that wrote it.
 *
 * Fault injection: `faults.afterDequeue()` returning true makes dequeue throw AFTER the job was
 * claimed, so the server answers 500 to an executor that was in fact assigned the job.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import type { AttemptFence, Store } from '../../src/store/types.js';

export type AuditEvent =
  | { op: 'start'; t0: number; t1: number; job: number; attempt: number; executor: string }
  | {
      op: 'end';
      t0: number;
      t1: number;
      job: number;
      attempt: number;
      how: 'complete' | 'errored' | 'failed' | 'reset' | 'reset-failed' | 'deadline';
    }
  | {
      op: 'write';
      t0: number;
      t1: number;
      job: number;
      attempt: number;
      executor: string;
      kind: 'add' | 'update' | 'append' | 'complete' | 'errored' | 'failed';
    };

export interface AuditFaults {
  afterDequeue?: () => boolean;
}

export class InjectedFault extends Error {}

const now = () => performance.timeOrigin + performance.now();

export function readAudit(file: string): AuditEvent[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as AuditEvent];
      } catch {
        return []; // a line torn by kill -9
      }
    });
}

export function createAuditStore(inner: Store, file: string, faults: AuditFaults = {}): Store {
  const record = (e: AuditEvent) => appendFileSync(file, `${JSON.stringify(e)}\n`);
  const write = async (
    fence: AttemptFence,
    kind: Extract<AuditEvent, { op: 'write' }>['kind'],
    fn: () => Promise<boolean>,
  ): Promise<boolean> => {
    const t0 = now();
    const ok = await fn();
    if (ok)
      record({
        op: 'write',
        t0,
        t1: now(),
        job: fence.jobId,
        attempt: fence.attempt,
        executor: fence.executorName,
        kind,
      });
    return ok;
  };
  /** Attempt numbers of the processing jobs, taken before a sweep that may end them. */
  const processingAttempts = async (): Promise<Map<number, number>> => {
    const m = new Map<number, number>();
    let before: number | undefined;
    for (;;) {
      const page = await inner.listJobs({ state: 'processing', limit: 500, before });
      for (const j of page.jobs) m.set(j.id, j.attempts);
      if (page.jobs.length < 500) return m;
      before = page.jobs[page.jobs.length - 1]!.id;
    }
  };
  const endOf = (
    ids: number[],
    attempts: Map<number, number>,
    how: Extract<AuditEvent, { op: 'end' }>['how'],
    t0: number,
  ) => {
    for (const id of ids) {
      const attempt = attempts.get(id);
      if (attempt !== undefined) record({ op: 'end', t0, t1: now(), job: id, attempt, how });
    }
  };
  const decorated: Store = {
    migrate: () => inner.migrate(),
    pendingMigrations: () => inner.pendingMigrations(),
    close: () => inner.close(),
    ping: () => inner.ping(),
    enqueue: (j, n, a) => inner.enqueue(j, n, a),
    getJob: (id) => inner.getJob(id),
    listJobs: (q) => inner.listJobs(q),
    readyCounts: (q, n) => inner.readyCounts(q, n),
    heartbeat: (e, q, ids, n) => inner.heartbeat(e, q, ids, n),
    recordHeartbeats: (b, n) => inner.recordHeartbeats(b, n),
    touchExecutors: (s) => inner.touchExecutors(s),
    getLogEntries: (id, o) => inner.getLogEntries(id, o),
    readLogOutput: (id, a, e, f, m) => inner.readLogOutput(id, a, e, f, m),
    retryJob: (id, n, a) => inner.retryJob(id, n, a),
    addJobEvent: (e) => inner.addJobEvent(e),
    listJobEvents: (id) => inner.listJobEvents(id),
    upsertExecutor: (hb, n) => inner.upsertExecutor(hb, n),
    getExecutor: (n) => inner.getExecutor(n),
    lookupTokenFor: (h, n) => inner.lookupTokenFor(h, n),
    listExecutors: (p) => inner.listExecutors(p),
    countExecutors: (n, w) => inner.countExecutors(n, w),
    queuePollers: (n, w) => inner.queuePollers(n, w),
    recentExecutorMetrics: (n, w, p) => inner.recentExecutorMetrics(n, w, p),
    deleteExecutorsSeenBefore: (c) => inner.deleteExecutorsSeenBefore(c),
    queueStats: (n) => inner.queueStats(n),
    claimHistory: (id) => inner.claimHistory(id),
    createApiToken: (t, n) => inner.createApiToken(t, n),
    listApiTokens: () => inner.listApiTokens(),
    revokeApiToken: (name, n) => inner.revokeApiToken(name, n),
    findApiTokenByHash: (h, n) => inner.findApiTokenByHash(h, n),
    pruneFinishedJobs: (c, l) => inner.pruneFinishedJobs(c, l),
    pruneLogOutput: (c, l) => inner.pruneLogOutput(c, l),
    reclaimSpace: (p) => inner.reclaimSpace(p),
    addRepository: (r, n, o) => inner.addRepository(r, n, o),
    getRepository: (name) => inner.getRepository(name),
    listRepositories: () => inner.listRepositories(),
    removeRepository: (name) => inner.removeRepository(name),
    recordRepositorySync: (name, s) => inner.recordRepositorySync(name, s),
    onEnqueue: inner.onEnqueue ? (cb) => inner.onEnqueue!(cb) : undefined,

    async dequeue(opts) {
      const t0 = now();
      const r = await inner.dequeue(opts);
      if (r) {
        record({
          op: 'start',
          t0,
          t1: now(),
          job: r.job.id,
          attempt: r.attempt,
          executor: opts.executorName,
        });
        if (faults.afterDequeue?.()) throw new InjectedFault('injected failure after assigning a job');
      }
      return r;
    },
    async addLogEntry(fence, entry, max, maxEntries) {
      let id: number | null = null;
      await write(fence, 'add', async () => {
        id = await inner.addLogEntry(fence, entry, max, maxEntries);
        return id !== null;
      });
      return id;
    },
    updateLogEntry: (fence, entryId, entry, max) =>
      write(fence, 'update', () => inner.updateLogEntry(fence, entryId, entry, max)),
    async appendLogOutput(fence, entryId, offset, out, fields, max) {
      let r: Awaited<ReturnType<Store['appendLogOutput']>> = { ok: false, reason: 'not-owner' };
      await write(fence, 'append', async () => {
        r = await inner.appendLogOutput(fence, entryId, offset, out, fields, max);
        return r.ok;
      });
      return r;
    },
    async markComplete(fence, n) {
      const t0 = now();
      const ok = await write(fence, 'complete', () => inner.markComplete(fence, n));
      if (ok) record({ op: 'end', t0, t1: now(), job: fence.jobId, attempt: fence.attempt, how: 'complete' });
      return ok;
    },
    async markCompleteByToken(t, n) {
      // The fence is known only once the store has checked the token, so the write is audited by
      // the attempt it completed.
      const t0 = now();
      const fence = await inner.markCompleteByToken(t, n);
      if (fence) {
        const t1 = now();
        record({
          op: 'write',
          t0,
          t1,
          job: fence.jobId,
          attempt: fence.attempt,
          executor: fence.executorName,
          kind: 'complete',
        });
        record({ op: 'end', t0, t1, job: fence.jobId, attempt: fence.attempt, how: 'complete' });
      }
      return fence;
    },
    async markErrored(fence, msg, n, retry) {
      const t0 = now();
      const ok = await write(fence, 'errored', () => inner.markErrored(fence, msg, n, retry));
      if (ok) record({ op: 'end', t0, t1: now(), job: fence.jobId, attempt: fence.attempt, how: 'errored' });
      return ok;
    },
    async markFailed(fence, msg, n) {
      const t0 = now();
      const ok = await write(fence, 'failed', () => inner.markFailed(fence, msg, n));
      if (ok) record({ op: 'end', t0, t1: now(), job: fence.jobId, attempt: fence.attempt, how: 'failed' });
      return ok;
    },
    async resetStalled(n, stalledAfterMs, maxResets) {
      const t0 = now();
      const attempts = await processingAttempts();
      const r = await inner.resetStalled(n, stalledAfterMs, maxResets);
      endOf(r.reset, attempts, 'reset', t0);
      endOf(r.failed, attempts, 'reset-failed', t0);
      return r;
    },
    async expireDeadlines(n, retry) {
      const t0 = now();
      const attempts = await processingAttempts();
      const ids = await inner.expireDeadlines(n, retry);
      endOf(ids, attempts, 'deadline', t0);
      return ids;
    },
    cancelJob: (id, n, a) => inner.cancelJob(id, n, a),
  };
  return decorated;
}
