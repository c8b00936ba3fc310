/**
 * The Store contract: one suite, run against every twin (sqlite.test.ts, postgres.test.ts). Time is
 * fake: every call gets an explicit `now`, so leases, deadlines and backoff are exact.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatDuration } from '../../src/lib/duration.js';
import type { JobSpec } from '../../src/protocol/job-spec.js';
import { truncationMarker } from '../../src/store/log-output.js';
import type { AttemptFence, ExecutorHeartbeat, NewJob, RetryPolicy, Store } from '../../src/store/types.js';
import { waitFor } from '../helpers/env.js';
import { apiTokenContract } from './api-token-contract.js';

const T0 = Date.UTC(2026, 0, 1);
const STEP = 60_000;
const RETRY: RetryPolicy = { baseMs: 1_000, maxMs: 8_000 };
const MAX_OUT = 1_000_000;

const spec = (queue = 'default'): JobSpec => ({
  queue,
  steps: [{ image: 'busybox', run: 'echo hi', env: { A: 'b' } }],
  secrets: { TOKEN: 'hunter2' },
});

function newJob(over: Partial<NewJob> = {}): NewJob {
  const queue = over.queue ?? 'default';
  return {
    queue,
    spec: spec(queue),
    repositoryName: 'org/repo',
    commit: 'a'.repeat(40),
    priority: 0,
    maxAttempts: 3,
    timeoutMs: 3_600_000,
    ...over,
  };
}

const hash = () => createHash('sha256').update(randomBytes(20)).digest('hex');

const hb = (name: string, over: Partial<ExecutorHeartbeat> = {}): ExecutorHeartbeat => ({
  name,
  hostname: `${name}.local`,
  queueName: 'default',
  queueNames: null,
  os: 'linux',
  architecture: 'amd64',
  dockerVersion: '24.0.7',
  executorVersion: '5.3.0',
  gitVersion: '2.43.0',
  igniteVersion: '',
  srcCliVersion: '5.3.0',
  metrics: '',
  ...over,
});

export function runStoreContract(name: string, makeStore: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;

    beforeEach(async () => {
      store = await makeStore();
      await store.migrate();
    });
    afterEach(async () => {
      await store.close();
    });

    /** The live token with that hash, or null (the token half of lookupTokenFor). */
    const lookupToken = async (tokenHash: string) => (await store.lookupTokenFor(tokenHash, 'nobody')).token;

    /** Dequeues from `queue` as `executor`; returns the fence and token hash of the new attempt. */
    async function claim(queue = 'default', executor = 'exec-1', now = T0, priorityStepMs = STEP) {
      const tokenHash = hash();
      const r = await store.dequeue({ queue, executorName: executor, now, tokenHash, priorityStepMs });
      if (!r) return null;
      const fence: AttemptFence = { jobId: r.job.id, executorName: executor, attempt: r.attempt };
      return { ...r, fence, tokenHash };
    }
    async function mustClaim(queue = 'default', executor = 'exec-1', now = T0) {
      const c = await claim(queue, executor, now);
      if (!c) throw new Error(`nothing to dequeue from ${queue}`);
      return c;
    }
    const entry = (key: string, out?: string) => ({
      key,
      command: ['sh', '-c', key],
      startTime: '2026-01-01T00:00:00Z',
      out,
    });

    describe('migrations and jobs', () => {
      it('ping answers while open and rejects once closed', async () => {
        const s = await makeStore();
        await s.migrate();
        await expect(s.ping()).resolves.toBeUndefined();
        await s.close();
        await expect(s.ping()).rejects.toThrow();
      });

      it('migrate is idempotent', async () => {
        await store.migrate();
        const j = await store.enqueue(newJob(), T0);
        expect((await store.getJob(j.id))?.id).toBe(j.id);
      });

      it('enqueue stores every field and starts queued', async () => {
        const j = await store.enqueue(newJob({ priority: 5, maxAttempts: 4, timeoutMs: 90_000 }), T0);
        expect(j).toMatchObject({
          queue: 'default',
          state: 'queued',
          spec: spec(),
          repositoryName: 'org/repo',
          commit: 'a'.repeat(40),
          priority: 5,
          maxAttempts: 4,
          attempts: 0,
          numFailures: 0,
          numResets: 0,
          cancel: false,
          workerHostname: null,
          failureMessage: null,
          timeoutMs: 90_000,
          createdAt: T0,
          queuedAt: T0,
          processAfter: null,
          startedAt: null,
          lastHeartbeatAt: null,
          finishedAt: null,
        });
        expect(await store.getJob(j.id)).toEqual(j);
        expect(await store.getJob(j.id + 1000)).toBeNull();
      });

      it('lists newest first with filters, a before cursor and the filtered total', async () => {
        const ids: number[] = [];
        for (let i = 0; i < 7; i++)
          ids.push((await store.enqueue(newJob({ queue: i % 2 ? 'b' : 'a' }), T0 + i)).id);
        const all = await store.listJobs({ limit: 3 });
        expect(all.total).toBe(7);
        expect(all.jobs.map((j) => j.id)).toEqual([ids[6], ids[5], ids[4]]);
        const next = await store.listJobs({ limit: 3, before: all.jobs[2]!.id });
        expect(next.jobs.map((j) => j.id)).toEqual([ids[3], ids[2], ids[1]]);
        expect(next.total).toBe(7);
        const last = await store.listJobs({ limit: 3, before: ids[1] });
        expect(last.jobs.map((j) => j.id)).toEqual([ids[0]]);

        const a = await store.listJobs({ limit: 10, queue: 'a' });
        expect(a.total).toBe(4);
        expect(a.jobs.every((j) => j.queue === 'a')).toBe(true);

        await mustClaim('a');
        const processing = await store.listJobs({ limit: 10, state: 'processing' });
        expect(processing.total).toBe(1);
        expect(processing.jobs[0]!.queue).toBe('a');
        expect((await store.listJobs({ limit: 10, state: 'queued', queue: 'a' })).total).toBe(3);
        expect((await store.listJobs({ limit: 10, state: 'completed' })).jobs).toEqual([]);
      });
    });

    describe('dequeue', () => {
      it('returns null when nothing is ready and claims one job with all attempt fields set', async () => {
        expect(await claim()).toBeNull();
        const j = await store.enqueue(newJob(), T0);
        await store.enqueue(newJob({ queue: 'other' }), T0);
        const c = await mustClaim('default', 'exec-1', T0 + 500);
        expect(c.attempt).toBe(1);
        expect(c.job).toMatchObject({
          id: j.id,
          state: 'processing',
          attempts: 1,
          workerHostname: 'exec-1',
          startedAt: T0 + 500,
          lastHeartbeatAt: T0 + 500,
          finishedAt: null,
          failureMessage: null,
          cancel: false,
        });
        expect(await store.getJob(j.id)).toEqual(c.job);
        expect(await claim('default')).toBeNull();
        expect((await mustClaim('other')).job.queue).toBe('other');
      });

      it('orders by priority, then age, then id', async () => {
        const low = await store.enqueue(newJob({ priority: 0 }), T0);
        const high = await store.enqueue(newJob({ priority: 2 }), T0 + 10);
        const old = await store.enqueue(newJob({ priority: -1 }), T0 - 10);
        const sameA = await store.enqueue(newJob({ priority: 0 }), T0);
        const order: number[] = [];
        for (let i = 0; i < 4; i++) order.push((await mustClaim('default', 'e', T0 + 1000)).job.id);
        expect(order).toEqual([high.id, low.id, sameA.id, old.id]);
      });

      it('ages: an old low-priority job beats a newer high-priority one after priorityStepMs', async () => {
        const oldLow = await store.enqueue(newJob({ priority: 0 }), T0);
        const newerHigh = await store.enqueue(newJob({ priority: 1 }), T0 + STEP / 2);
        expect((await mustClaim('default', 'e', T0 + STEP)).job.id).toBe(newerHigh.id);

        const oldLow2 = await store.enqueue(newJob({ priority: 0 }), T0 + 1);
        const muchNewerHigh = await store.enqueue(newJob({ priority: 1 }), T0 + 2 * STEP);
        expect((await mustClaim('default', 'e', T0 + 3 * STEP)).job.id).toBe(oldLow.id);
        expect((await mustClaim('default', 'e', T0 + 3 * STEP)).job.id).toBe(oldLow2.id);
        expect((await mustClaim('default', 'e', T0 + 3 * STEP)).job.id).toBe(muchNewerHigh.id);
      });

      it('re-ranks queued jobs when the dequeue uses a different priority step', async () => {
        const newHigh = await store.enqueue(newJob({ priority: 1 }), T0 + 10_000);
        const oldLow = await store.enqueue(newJob({ priority: 0 }), T0);
        // With a 1 s step the 10 s head start wins; with a 60 s step the priority would.
        const first = await claim('default', 'e', T0 + 20_000, 1_000);
        expect(first?.job.id).toBe(oldLow.id);
        const second = await claim('default', 'e', T0 + 20_000, 1_000);
        expect(second?.job.id).toBe(newHigh.id);
      });

      it('claims each job exactly once under concurrent dequeues', async () => {
        for (let i = 0; i < 20; i++) await store.enqueue(newJob({ priority: i % 3 }), T0 + i);
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => claim('default', `exec-${i % 5}`, T0 + 1000)),
        );
        const won = results.filter((r) => r !== null);
        expect(won).toHaveLength(20);
        expect(new Set(won.map((r) => r!.job.id)).size).toBe(20);
        expect(won.every((r) => r!.attempt === 1)).toBe(true);
        for (const r of won) expect((await lookupToken(r!.tokenHash))?.jobId).toBe(r!.job.id);
        expect((await store.listJobs({ limit: 100, state: 'processing' })).total).toBe(20);
      });

      it('respects processAfter and reports ready counts per queue', async () => {
        const j = await store.enqueue(newJob({ maxAttempts: 2 }), T0);
        await store.enqueue(newJob({ queue: 'b' }), T0);
        const c = await mustClaim();
        expect(await store.markErrored(c.fence, 'boom', T0 + 100, RETRY)).toBe(true);
        const after = await store.getJob(j.id);
        expect(after).toMatchObject({ state: 'queued', processAfter: T0 + 100 + 1_000, numFailures: 1 });
        expect(await claim('default', 'e', T0 + 1_099)).toBeNull();
        const ready = await store.readyCounts(['default', 'b', 'none'], T0 + 1_099);
        expect([...ready.entries()].sort()).toEqual([
          ['b', 1],
          ['default', 0],
          ['none', 0],
        ]);
        expect((await store.readyCounts(['default'], T0 + 1_100)).get('default')).toBe(1);
        const again = await mustClaim('default', 'e', T0 + 1_100);
        expect(again.job.id).toBe(j.id);
        expect(again.attempt).toBe(2);
      });
    });

    describe('tokens', () => {
      it('issues, replaces and deletes the token at every attempt end', async () => {
        const j = await store.enqueue(newJob({ maxAttempts: 5 }), T0);
        const c1 = await mustClaim('default', 'exec-1');
        expect(await lookupToken(c1.tokenHash)).toEqual({
          jobId: j.id,
          executorName: 'exec-1',
          attempt: 1,
          queue: 'default',
          repositoryName: 'org/repo',
        });
        expect(await lookupToken(hash())).toBeNull();

        // errored -> token gone
        await store.markErrored(c1.fence, 'x', T0, { baseMs: 0, maxMs: 0 });
        expect(await lookupToken(c1.tokenHash)).toBeNull();

        // stalled reset -> token gone; the next attempt gets a new one
        const c2 = await mustClaim('default', 'exec-2', T0 + 1);
        expect((await lookupToken(c2.tokenHash))?.attempt).toBe(2);
        await store.resetStalled(T0 + 100_000, 25_000, 3);
        expect(await lookupToken(c2.tokenHash)).toBeNull();

        const c3 = await mustClaim('default', 'exec-3', T0 + 100_001);
        expect((await lookupToken(c3.tokenHash))?.executorName).toBe('exec-3');
        await store.markFailed(c3.fence, 'no', T0 + 100_002);
        expect(await lookupToken(c3.tokenHash)).toBeNull();

        await store.retryJob(j.id, T0 + 200_000);
        const c4 = await mustClaim('default', 'exec-4', T0 + 200_001);
        await store.markComplete(c4.fence, T0 + 200_002);
        expect(await lookupToken(c4.tokenHash)).toBeNull();
      });

      it('lookupTokenFor: the token and whether the executor is registered, in one read', async () => {
        const j = await store.enqueue(newJob(), T0);
        const c = await mustClaim('default', 'exec-1');
        const token = {
          jobId: j.id,
          executorName: 'exec-1',
          attempt: 1,
          queue: 'default',
          repositoryName: 'org/repo',
        };
        expect(await store.lookupTokenFor(c.tokenHash, 'exec-1')).toEqual({ token, executorKnown: false });
        await store.upsertExecutor(hb('exec-1'), T0);
        expect(await store.lookupTokenFor(c.tokenHash, 'exec-1')).toEqual({ token, executorKnown: true });
        expect(await store.lookupTokenFor(c.tokenHash, 'someone-else')).toEqual({
          token,
          executorKnown: false,
        });
        expect(await store.lookupTokenFor(hash(), 'exec-1')).toEqual({ token: null, executorKnown: true });
        await store.markComplete(c.fence, T0 + 1);
        expect(await store.lookupTokenFor(c.tokenHash, 'exec-1')).toEqual({
          token: null,
          executorKnown: true,
        });
      });

      it('markCompleteByToken: completes only when token, executor, queue and attempt all hold', async () => {
        const j = await store.enqueue(newJob(), T0);
        const c = await mustClaim('default', 'exec-1');
        const by = { tokenHash: c.tokenHash, jobId: j.id, executorName: 'exec-1', queue: 'default' };
        // The executor is not registered yet: refused, and nothing changed.
        expect(await store.markCompleteByToken(by, T0 + 1)).toBeNull();
        await store.upsertExecutor(hb('exec-1'), T0);
        await store.upsertExecutor(hb('exec-2'), T0);
        for (const wrong of [
          { tokenHash: hash() },
          { jobId: j.id + 1000 },
          { executorName: 'exec-2' },
          { queue: 'other' },
        ]) {
          expect(await store.markCompleteByToken({ ...by, ...wrong }, T0 + 1)).toBeNull();
        }
        expect((await store.getJob(j.id))?.state).toBe('processing');
        expect(await lookupToken(c.tokenHash)).not.toBeNull();
        expect(await store.markCompleteByToken(by, T0 + 2)).toEqual(c.fence);
        const done = await store.getJob(j.id);
        expect(done?.state).toBe('completed');
        expect(done?.finishedAt).toBe(T0 + 2);
        expect(await lookupToken(c.tokenHash)).toBeNull();
        // A second mark with the spent token changes nothing.
        expect(await store.markCompleteByToken(by, T0 + 3)).toBeNull();
        expect((await store.getJob(j.id))?.finishedAt).toBe(T0 + 2);
      });

      it('markCompleteByToken: a token of an attempt the job has moved past is refused', async () => {
        await store.upsertExecutor(hb('exec-1'), T0);
        const j = await store.enqueue(newJob({ timeoutMs: 1_000 }), T0);
        const first = await mustClaim('default', 'exec-1');
        // The deadline requeues the job (and deletes the first token); a second attempt starts.
        expect(await store.expireDeadlines(T0 + 1_001, RETRY)).toEqual([j.id]);
        const second = await mustClaim('default', 'exec-1', T0 + 10_000);
        expect(second.fence.attempt).toBe(2);
        const by = { jobId: j.id, executorName: 'exec-1', queue: 'default' };
        expect(
          await store.markCompleteByToken({ ...by, tokenHash: first.tokenHash }, T0 + 10_001),
        ).toBeNull();
        expect(await store.markCompleteByToken({ ...by, tokenHash: second.tokenHash }, T0 + 10_002)).toEqual(
          second.fence,
        );
      });

      it('deletes the token when the deadline expires', async () => {
        await store.enqueue(newJob({ timeoutMs: 1_000 }), T0);
        const c = await mustClaim();
        expect(await store.expireDeadlines(T0 + 1_001, RETRY)).toEqual([c.job.id]);
        expect(await lookupToken(c.tokenHash)).toBeNull();
      });
    });

    apiTokenContract(() => store);

    describe('heartbeat', () => {
      it('renews owned jobs, reports cancel, ignores others', async () => {
        const a = await store.enqueue(newJob(), T0);
        const b = await store.enqueue(newJob(), T0);
        const other = await store.enqueue(newJob(), T0);
        const queued = await store.enqueue(newJob({ queue: 'q2' }), T0);
        await mustClaim('default', 'exec-1');
        await mustClaim('default', 'exec-1');
        await mustClaim('default', 'exec-2');
        await store.cancelJob(b.id, T0 + 1);

        const hb = await store.heartbeat(
          'exec-1',
          'default',
          [a.id, b.id, other.id, queued.id, 999_999],
          T0 + 5_000,
        );
        expect(hb).toEqual({ knownIds: [a.id, b.id], cancelIds: [b.id] });
        expect((await store.getJob(a.id))?.lastHeartbeatAt).toBe(T0 + 5_000);
        expect((await store.getJob(other.id))?.lastHeartbeatAt).toBe(T0);

        // wrong queue for the route: nothing known
        expect(await store.heartbeat('exec-1', 'q2', [a.id], T0 + 6_000)).toEqual({
          knownIds: [],
          cancelIds: [],
        });
        expect((await store.getJob(a.id))?.lastHeartbeatAt).toBe(T0 + 5_000);
        expect(await store.heartbeat('exec-1', 'default', [], T0)).toEqual({ knownIds: [], cancelIds: [] });
        expect(await store.heartbeat('exec-2', 'default', [other.id], T0 + 7_000)).toEqual({
          knownIds: [other.id],
          cancelIds: [],
        });
      });
    });

    describe('logs', () => {
      it('adds entries with 1-based ids per attempt and stores update suffixes only', async () => {
        const j = await store.enqueue(newJob(), T0);
        const { fence } = await mustClaim();
        expect(await store.addLogEntry(fence, entry('setup.git.init', 'hello'), MAX_OUT)).toBe(1);
        expect(await store.addLogEntry(fence, entry('step.docker.0'), MAX_OUT)).toBe(2);

        expect(
          await store.updateLogEntry(
            fence,
            1,
            { ...entry('setup.git.init', 'hello wörld'), exitCode: 0, durationMs: 12 },
            MAX_OUT,
          ),
        ).toBe(true);
        // shorter or equal output stores nothing new, and nothing already stored is rewritten
        expect(
          await store.updateLogEntry(
            fence,
            1,
            { ...entry('setup.git.init', 'hello'), exitCode: 0, durationMs: 13 },
            MAX_OUT,
          ),
        ).toBe(true);
        expect(
          await store.updateLogEntry(
            fence,
            1,
            { ...entry('setup.git.init', 'HELLO WÖRLD'), exitCode: 0, durationMs: 14 },
            MAX_OUT,
          ),
        ).toBe(true);
        expect(
          await store.updateLogEntry(
            fence,
            1,
            { ...entry('setup.git.init', 'hello wörld!\n'), exitCode: 0, durationMs: 15 },
            MAX_OUT,
          ),
        ).toBe(true);
        expect(await store.updateLogEntry(fence, 3, entry('nope', 'x'), MAX_OUT)).toBe(false);

        const entries = await store.getLogEntries(j.id, { withOutput: true });
        expect(entries).toHaveLength(2);
        expect(entries[0]).toEqual({
          jobId: j.id,
          attempt: 1,
          entryId: 1,
          key: 'setup.git.init',
          command: ['sh', '-c', 'setup.git.init'],
          startTime: '2026-01-01T00:00:00Z',
          exitCode: 0,
          durationMs: 15,
          outLength: Buffer.byteLength('hello wörld!\n'),
          truncated: false,
          out: 'hello wörld!\n',
        });
        expect(entries[1]).toMatchObject({
          entryId: 2,
          outLength: 0,
          out: '',
          exitCode: null,
          durationMs: null,
        });
        const withoutOut = await store.getLogEntries(j.id);
        expect(withoutOut[0]!.out).toBeUndefined();

        expect(await store.readLogOutput(j.id, 1, 1, Buffer.byteLength('hello wö'))).toBe('rld!\n');
        expect(await store.readLogOutput(j.id, 1, 1, 0)).toBe('hello wörld!\n');
        expect(await store.readLogOutput(j.id, 1, 1, 1_000)).toBe('');
        expect(await store.readLogOutput(j.id, 1, 9, 0)).toBe('');
      });

      it('pages entries by cursor and limit, and reads only the entries asked for', async () => {
        const j = await store.enqueue(newJob(), T0);
        const { fence } = await mustClaim();
        for (let i = 1; i <= 7; i++) await store.addLogEntry(fence, entry(`step.${i}`, `out ${i}`), MAX_OUT);
        const ids = async (o: Parameters<Store['getLogEntries']>[1]) =>
          (await store.getLogEntries(j.id, o)).map((e) => e.entryId);
        expect(await ids({ limit: 3 })).toEqual([1, 2, 3]);
        expect(await ids({ afterEntryId: 3, limit: 3 })).toEqual([4, 5, 6]);
        expect(await ids({ afterEntryId: 6, limit: 3 })).toEqual([7]);
        expect(await ids({ afterEntryId: 7 })).toEqual([]);
        expect(await ids({ entryIds: [2, 5, 9] })).toEqual([2, 5]);
        expect(await ids({ entryIds: [2, 5, 6], afterEntryId: 4 })).toEqual([5, 6]);
        expect(await ids({ entryIds: [] })).toEqual([]);
        expect(await ids({ attempt: 1, afterEntryId: 1, limit: 1 })).toEqual([2]);
      });

      it('reads a bounded window of output, cut on a character boundary', async () => {
        const j = await store.enqueue(newJob(), T0);
        const { fence } = await mustClaim();
        await store.addLogEntry(fence, entry('a', 'héllo '), MAX_OUT);
        expect(
          (await store.appendLogOutput(fence, 1, Buffer.byteLength('héllo '), 'wörld', {}, MAX_OUT)).ok,
        ).toBe(true);
        // 'h' (1) + 'é' (2): a 2-byte window stops before the é, a 3-byte one includes it.
        expect(await store.readLogOutput(j.id, 1, 1, 0, 2)).toBe('h');
        expect(await store.readLogOutput(j.id, 1, 1, 0, 3)).toBe('hé');
        // A window across the two chunks, starting inside the first.
        expect(await store.readLogOutput(j.id, 1, 1, 4, 5)).toBe('lo w');
        expect(await store.readLogOutput(j.id, 1, 1, 4, 6)).toBe('lo wö');
        expect(await store.readLogOutput(j.id, 1, 1, Buffer.byteLength('héllo wö'), 100)).toBe('rld');
        // A window smaller than the character at its start still moves on by that character.
        expect(await store.readLogOutput(j.id, 1, 1, 1, 1)).toBe('é');
        // Walking the output in 2-byte windows gives it back whole.
        let text = '';
        for (let at = 0; ; ) {
          const part = await store.readLogOutput(j.id, 1, 1, at, 2);
          if (part === '') break;
          text += part;
          at += Buffer.byteLength(part);
        }
        expect(text).toBe('héllo wörld');
      });

      it('cuts long commands in the database when asked, and says so', async () => {
        const j = await store.enqueue(newJob(), T0);
        const { fence } = await mustClaim();
        const long = ['bash', '-c', `echo "${'x'.repeat(5000)}"\n`, 'after'];
        await store.addLogEntry(fence, { ...entry('big'), command: long }, MAX_OUT);
        await store.addLogEntry(fence, { ...entry('small'), command: ['true'] }, MAX_OUT);
        const [big, small] = await store.getLogEntries(j.id, { commandChars: 100 });
        expect(big!.commandTruncated).toBe(true);
        expect(big!.command!.slice(0, 2)).toEqual(['bash', '-c']);
        expect(big!.command).toHaveLength(3);
        expect(long[2]!.startsWith(big!.command![2]!)).toBe(true);
        expect(big!.command![2]!.length).toBeGreaterThan(50);
        expect(big!.command![2]!.length).toBeLessThan(100);
        expect(small!.command).toEqual(['true']);
        expect(small!.commandTruncated).toBeUndefined();
        const [whole] = await store.getLogEntries(j.id, { limit: 1 });
        expect(whole!.command).toEqual(long);
        expect(whole!.commandTruncated).toBeUndefined();
      });

      it('appends at offsets: ok, idempotent, overlapping and gap', async () => {
        const j = await store.enqueue(newJob(), T0);
        const { fence } = await mustClaim();
        const id = (await store.addLogEntry(fence, entry('step.docker.0'), MAX_OUT))!;
        expect(await store.appendLogOutput(fence, id, 0, 'abc', {}, MAX_OUT)).toEqual({
          ok: true,
          length: 3,
        });
        expect(await store.appendLogOutput(fence, id, 3, 'dé', {}, MAX_OUT)).toEqual({ ok: true, length: 6 });
        // a retried chunk changes nothing
        expect(await store.appendLogOutput(fence, id, 3, 'dé', {}, MAX_OUT)).toEqual({ ok: true, length: 6 });
        expect(await store.appendLogOutput(fence, id, 0, 'abc', {}, MAX_OUT)).toEqual({
          ok: true,
          length: 6,
        });
        // overlapping: only the new part is stored
        expect(await store.appendLogOutput(fence, id, 3, 'défg', {}, MAX_OUT)).toEqual({
          ok: true,
          length: 8,
        });
        expect(await store.appendLogOutput(fence, id, 20, 'zz', {}, MAX_OUT)).toEqual({
          ok: false,
          reason: 'gap',
          length: 8,
        });
        expect(
          await store.appendLogOutput(fence, id, 8, '', { exitCode: 3, durationMs: 40 }, MAX_OUT),
        ).toEqual({
          ok: true,
          length: 8,
        });
        const [e] = await store.getLogEntries(j.id, { withOutput: true });
        expect(e).toMatchObject({
          out: 'abcdéfg',
          outLength: 8,
          exitCode: 3,
          durationMs: 40,
          truncated: false,
        });
        expect(await store.appendLogOutput(fence, 99, 0, 'x', {}, MAX_OUT)).toEqual({
          ok: false,
          reason: 'not-owner',
        });
      });

      it('caps output per attempt across entries with one marker and a truncated flag', async () => {
        const j = await store.enqueue(newJob({ maxAttempts: 2 }), T0);
        const c = await mustClaim();
        // Keys and commands count: each entry's `x` and ['sh', '-c', 'x'] are 6 bytes.
        const cap = 32;
        const e1 = (await store.addLogEntry(c.fence, entry('a', '0123456789'), cap))!;
        const e2 = (await store.addLogEntry(c.fence, entry('b', 'abcdefgh'), cap))!;
        // 30 of 32 bytes used; this update brings entry b to 15 bytes, 7 new, only 2 fit
        expect(await store.updateLogEntry(c.fence, e2, entry('b', 'abcdefghijklmno'), cap)).toBe(true);
        const marker = truncationMarker(cap);
        expect(marker).toBe("\n[output truncated: the job's log exceeded 32 bytes]\n");
        let entries = await store.getLogEntries(j.id, { withOutput: true });
        expect(entries[0]).toMatchObject({ out: '0123456789', truncated: false });
        expect(entries[1]).toMatchObject({ out: `abcdefghij${marker}`, truncated: true });
        expect(entries[1]!.outLength).toBe(10 + Buffer.byteLength(marker));

        // further output anywhere in the attempt is acknowledged and dropped; the marker stays single
        expect(await store.updateLogEntry(c.fence, e2, entry('b', 'abcdefghijklmnopqrstuvwxyz'), cap)).toBe(
          true,
        );
        expect(await store.appendLogOutput(c.fence, e1, 10, 'more', {}, cap)).toEqual({
          ok: true,
          length: 14,
        });
        expect(await store.appendLogOutput(c.fence, e1, 14, 'more', {}, cap)).toEqual({
          ok: true,
          length: 18,
        });
        // a full log takes no further entry: their keys and commands would not fit
        await expect(store.addLogEntry(c.fence, entry('c', 'late output'), cap)).rejects.toMatchObject({
          code: 'PAYLOAD_TOO_LARGE',
          message: expect.stringContaining('reached 32 bytes'),
        });
        entries = await store.getLogEntries(j.id, { withOutput: true });
        expect(entries.map((e) => e.out)).toEqual(['0123456789', `abcdefghij${marker}`]);
        expect(entries.map((e) => e.truncated)).toEqual([false, true]);

        // the next attempt has a fresh budget; the old attempt stays readable
        await store.markErrored(c.fence, 'x', T0, { baseMs: 0, maxMs: 0 });
        const c2 = await mustClaim('default', 'exec-1', T0 + 1);
        expect(await store.addLogEntry(c2.fence, entry('a', 'x'.repeat(20)), cap)).toBe(1);
        const second = await store.getLogEntries(j.id, { withOutput: true });
        expect(second).toHaveLength(1);
        expect(second[0]).toMatchObject({ attempt: 2, out: 'x'.repeat(20), truncated: false });
        expect((await store.getLogEntries(j.id, { attempt: 1 })).map((e) => e.key)).toEqual(['a', 'b']);
      });

      it('refuses entries beyond the count and commands beyond the cap, storing nothing', async () => {
        const j = await store.enqueue(newJob(), T0);
        const c = await mustClaim();
        expect(await store.addLogEntry(c.fence, entry('a', 'x'), MAX_OUT, 2)).toBe(1);
        expect(await store.addLogEntry(c.fence, entry('b'), MAX_OUT, 2)).toBe(2);
        await expect(store.addLogEntry(c.fence, entry('c'), MAX_OUT, 2)).rejects.toMatchObject({
          code: 'PAYLOAD_TOO_LARGE',
          message: expect.stringContaining('already has 2 log entries'),
        });
        // A command bigger than what is left of the cap is refused on add and on update.
        const big = { ...entry('d'), command: ['sh', '-c', 'y'.repeat(100)] };
        await expect(store.addLogEntry(c.fence, big, 100)).rejects.toMatchObject({
          code: 'PAYLOAD_TOO_LARGE',
        });
        await expect(store.updateLogEntry(c.fence, 2, { ...big, key: 'b' }, 100)).rejects.toMatchObject({
          code: 'PAYLOAD_TOO_LARGE',
        });
        const entries = await store.getLogEntries(j.id, { withOutput: true });
        expect(entries.map((e) => [e.key, e.command, e.out])).toEqual([
          ['a', ['sh', '-c', 'a'], 'x'],
          ['b', ['sh', '-c', 'b'], ''],
        ]);
        // Output fills what keys and commands leave: 12 bytes of 16 are theirs, 4 of output fit.
        const j2 = await store.enqueue(newJob(), T0);
        const c2 = await mustClaim();
        await store.addLogEntry(c2.fence, entry('a'), 16);
        const id = (await store.addLogEntry(c2.fence, entry('b', 'abcdefgh'), 16))!;
        const [, second] = await store.getLogEntries(j2.id, { withOutput: true });
        expect(second!.entryId).toBe(id);
        expect(second!.out).toBe(`abcd${truncationMarker(16)}`);
      });

      it('cuts at the cap on a character boundary', async () => {
        const j = await store.enqueue(newJob(), T0);
        const c = await mustClaim();
        // 'é' is 2 bytes: a cap of 6 (key and command) + 5 falls inside the third one
        await store.addLogEntry(c.fence, entry('a', 'ééé'), 11);
        const [e] = await store.getLogEntries(j.id, { withOutput: true });
        expect(e!.out).toBe(`éé${truncationMarker(11)}`);
        expect(e!.truncated).toBe(true);
      });
    });

    describe('fencing', () => {
      it('refuses writes from another executor or another attempt', async () => {
        const j = await store.enqueue(newJob(), T0);
        const c = await mustClaim('default', 'exec-1');
        const id = (await store.addLogEntry(c.fence, entry('a'), MAX_OUT))!;
        const wrongExec = { ...c.fence, executorName: 'exec-2' };
        const wrongAttempt = { ...c.fence, attempt: 2 };
        for (const f of [wrongExec, wrongAttempt, { ...c.fence, jobId: j.id + 1000 }]) {
          expect(await store.addLogEntry(f, entry('x', 'y'), MAX_OUT)).toBeNull();
          expect(await store.updateLogEntry(f, id, entry('a', 'y'), MAX_OUT)).toBe(false);
          expect(await store.appendLogOutput(f, id, 0, 'y', {}, MAX_OUT)).toEqual({
            ok: false,
            reason: 'not-owner',
          });
          expect(await store.markComplete(f, T0)).toBe(false);
          expect(await store.markErrored(f, 'm', T0, RETRY)).toBe(false);
          expect(await store.markFailed(f, 'm', T0)).toBe(false);
        }
        expect(await store.getJob(j.id)).toMatchObject({ state: 'processing', numFailures: 0 });
        expect((await store.getLogEntries(j.id, { withOutput: true }))[0]!.out).toBe('');
      });

      it("refuses a stale attempt's writes after a reset and re-dequeue, even from the same executor", async () => {
        const j = await store.enqueue(newJob(), T0);
        const stale = await mustClaim('default', 'exec-1', T0);
        const staleEntry = (await store.addLogEntry(stale.fence, entry('a', 'old'), MAX_OUT))!;
        expect(await store.resetStalled(T0 + 30_000, 25_000, 3)).toEqual({ reset: [j.id], failed: [] });
        // not processing any more: the stale attempt is fenced out even before the re-dequeue
        expect(await store.addLogEntry(stale.fence, entry('b'), MAX_OUT)).toBeNull();
        const fresh = await mustClaim('default', 'exec-1', T0 + 31_000);
        expect(fresh.attempt).toBe(2);
        expect(await store.addLogEntry(stale.fence, entry('b'), MAX_OUT)).toBeNull();
        expect(await store.updateLogEntry(stale.fence, staleEntry, entry('a', 'older'), MAX_OUT)).toBe(false);
        expect(await store.appendLogOutput(stale.fence, staleEntry, 3, 'x', {}, MAX_OUT)).toEqual({
          ok: false,
          reason: 'not-owner',
        });
        expect(await store.markComplete(stale.fence, T0 + 32_000)).toBe(false);
        expect(await store.markFailed(stale.fence, 'stale', T0 + 32_000)).toBe(false);
        expect(await store.getJob(j.id)).toMatchObject({ state: 'processing', attempts: 2, numResets: 1 });
        expect(await store.markComplete(fresh.fence, T0 + 33_000)).toBe(true);
        expect(await store.getJob(j.id)).toMatchObject({ state: 'completed', finishedAt: T0 + 33_000 });
        // the old attempt's log is kept under its own number
        expect((await store.getLogEntries(j.id, { attempt: 1, withOutput: true }))[0]!.out).toBe('old');
        expect(await store.getLogEntries(j.id)).toEqual([]);
      });
    });

    describe('marks', () => {
      it('markErrored retries with exponential backoff until maxAttempts, then fails', async () => {
        const j = await store.enqueue(newJob({ maxAttempts: 5 }), T0);
        const retry: RetryPolicy = { baseMs: 1_000, maxMs: 3_000 };
        let now = T0;
        const expected = [1_000, 2_000, 3_000, 3_000];
        for (let n = 1; n <= 4; n++) {
          const c = await mustClaim('default', 'exec-1', now);
          expect(c.attempt).toBe(n);
          expect(await store.markErrored(c.fence, `boom ${n}`, now + 10, retry)).toBe(true);
          const after = await store.getJob(j.id);
          expect(after).toMatchObject({
            state: 'queued',
            numFailures: n,
            attempts: n,
            processAfter: now + 10 + expected[n - 1]!,
            queuedAt: now + 10,
            failureMessage: `boom ${n}`,
            finishedAt: null,
            startedAt: null,
          });
          now = after!.processAfter!;
        }
        const last = await mustClaim('default', 'exec-1', now);
        expect(last.job.failureMessage).toBeNull();
        expect(await store.markErrored(last.fence, 'final', now + 1, retry)).toBe(true);
        expect(await store.getJob(j.id)).toMatchObject({
          state: 'failed',
          numFailures: 5,
          attempts: 5,
          failureMessage: 'final',
          finishedAt: now + 1,
        });
        expect(await claim('default', 'exec-1', now + 1_000_000)).toBeNull();
      });

      it('markErrored and markFailed turn into canceled when cancel is set; markComplete ignores it', async () => {
        const a = await store.enqueue(newJob(), T0);
        const b = await store.enqueue(newJob(), T0);
        const c = await store.enqueue(newJob(), T0);
        const ca = await mustClaim();
        const cb = await mustClaim();
        const cc = await mustClaim();
        for (const id of [a.id, b.id, c.id]) await store.cancelJob(id, T0 + 1);
        expect(await store.markErrored(ca.fence, 'stopped', T0 + 2, RETRY)).toBe(true);
        expect(await store.markFailed(cb.fence, 'stopped', T0 + 2)).toBe(true);
        expect(await store.markComplete(cc.fence, T0 + 2)).toBe(true);
        expect(await store.getJob(a.id)).toMatchObject({
          state: 'canceled',
          numFailures: 0,
          finishedAt: T0 + 2,
        });
        expect(await store.getJob(b.id)).toMatchObject({
          state: 'canceled',
          numFailures: 0,
          finishedAt: T0 + 2,
        });
        expect(await store.getJob(c.id)).toMatchObject({ state: 'completed', finishedAt: T0 + 2 });
      });

      it('markFailed is never retried and a second mark is fenced out', async () => {
        const j = await store.enqueue(newJob({ maxAttempts: 3 }), T0);
        const c = await mustClaim();
        expect(await store.markFailed(c.fence, 'bad spec', T0 + 5)).toBe(true);
        expect(await store.getJob(j.id)).toMatchObject({
          state: 'failed',
          failureMessage: 'bad spec',
          finishedAt: T0 + 5,
          numFailures: 1,
        });
        expect(await store.markComplete(c.fence, T0 + 6)).toBe(false);
        expect(await store.markErrored(c.fence, 'x', T0 + 6, RETRY)).toBe(false);
        expect(await claim('default', 'e', T0 + 10_000_000)).toBeNull();
      });
    });

    describe('cancel and retry', () => {
      it('cancels queued at once, flags processing, leaves terminal jobs alone', async () => {
        const queued = await store.enqueue(newJob(), T0);
        const running = await store.enqueue(newJob({ priority: 1 }), T0);
        const c = await mustClaim();
        expect(c.job.id).toBe(running.id);

        expect(await store.cancelJob(queued.id, T0 + 1)).toMatchObject({
          id: queued.id,
          state: 'canceled',
          finishedAt: T0 + 1,
        });
        expect(await claim()).toBeNull();
        expect(await store.cancelJob(running.id, T0 + 2)).toMatchObject({
          state: 'processing',
          cancel: true,
        });
        expect((await store.heartbeat('exec-1', 'default', [running.id], T0 + 3)).cancelIds).toEqual([
          running.id,
        ]);

        const done = await store.markFailed(c.fence, 'canceled by user', T0 + 4);
        expect(done).toBe(true);
        const terminal = await store.getJob(running.id);
        expect(terminal?.state).toBe('canceled');
        expect(await store.cancelJob(running.id, T0 + 5)).toEqual(terminal);
        expect(await store.cancelJob(queued.id + 1000, T0)).toBeNull();
      });

      it('retries failed and canceled jobs with a fresh budget; completed and active jobs stay', async () => {
        const j = await store.enqueue(newJob({ maxAttempts: 1 }), T0);
        const c = await mustClaim();
        await store.addLogEntry(c.fence, entry('a', 'first run'), MAX_OUT);
        await store.markErrored(c.fence, 'boom', T0 + 1, RETRY);
        expect(await store.getJob(j.id)).toMatchObject({ state: 'failed', numFailures: 1 });

        const r = await store.retryJob(j.id, T0 + 100);
        expect(r).toMatchObject({
          state: 'queued',
          attempts: 0,
          numFailures: 0,
          numResets: 0,
          cancel: false,
          failureMessage: null,
          queuedAt: T0 + 100,
          processAfter: null,
          finishedAt: null,
          startedAt: null,
        });
        // the old run's log stays readable until the new attempt starts
        expect((await store.getLogEntries(j.id, { withOutput: true }))[0]!.out).toBe('first run');
        const c2 = await mustClaim('default', 'exec-1', T0 + 200);
        expect(c2.attempt).toBe(1);
        expect(await store.getLogEntries(j.id)).toEqual([]);
        expect(await store.retryJob(j.id, T0 + 201)).toMatchObject({ state: 'processing', attempts: 1 });
        await store.markComplete(c2.fence, T0 + 300);
        expect(await store.retryJob(j.id, T0 + 301)).toMatchObject({ state: 'completed' });

        const k = await store.enqueue(newJob(), T0);
        await store.cancelJob(k.id, T0 + 1);
        expect(await store.retryJob(k.id, T0 + 2)).toMatchObject({ state: 'queued', cancel: false });
        expect(await store.retryJob(k.id, T0 + 3)).toMatchObject({ state: 'queued', queuedAt: T0 + 2 });
        expect(await store.retryJob(k.id + 1000, T0)).toBeNull();
      });
    });

    describe('background sweeps', () => {
      it('resets stalled jobs, then fails them after maxResets', async () => {
        const live = await store.enqueue(newJob({ priority: 1 }), T0);
        const j = await store.enqueue(newJob(), T0);
        let now = T0;
        const cLive = await mustClaim('default', 'exec-live', now);
        expect(cLive.job.id).toBe(live.id);
        for (let i = 1; i <= 3; i++) {
          const c = await mustClaim('default', 'exec-1', now);
          expect(c.job.id).toBe(j.id);
          now += 30_000;
          await store.heartbeat('exec-live', 'default', [live.id], now);
          const r = await store.resetStalled(now, 25_000, 3);
          expect(r).toEqual({ reset: [j.id], failed: [] });
          expect(await store.getJob(j.id)).toMatchObject({
            state: 'queued',
            numResets: i,
            startedAt: null,
            queuedAt: now,
          });
        }
        const c = await mustClaim('default', 'exec-1', now);
        now += 30_000;
        await store.heartbeat('exec-live', 'default', [cLive.job.id], now);
        expect(await store.resetStalled(now, 25_000, 3)).toEqual({ reset: [], failed: [c.job.id] });
        expect(await store.getJob(c.job.id)).toMatchObject({
          state: 'failed',
          finishedAt: now,
          failureMessage: 'job processor died while handling this message too many times',
        });
        expect((await store.getJob(cLive.job.id))?.state).toBe('processing');
        // exactly at the boundary nothing is stale yet
        expect(await store.resetStalled(now + 25_000, 25_000, 3)).toEqual({ reset: [], failed: [] });
      });

      it('expires deadlines as errors, retrying while attempts remain', async () => {
        const short = await store.enqueue(newJob({ timeoutMs: 90_000, maxAttempts: 2 }), T0);
        const long = await store.enqueue(newJob({ timeoutMs: 3_600_000 }), T0);
        const c1 = await mustClaim('default', 'e', T0);
        const c2 = await mustClaim('default', 'e', T0);
        expect(new Set([c1.job.id, c2.job.id])).toEqual(new Set([short.id, long.id]));
        expect(await store.expireDeadlines(T0 + 90_000, RETRY)).toEqual([]);
        expect(await store.expireDeadlines(T0 + 90_001, RETRY)).toEqual([short.id]);
        const message = `job exceeded its timeout of ${formatDuration(90_000)}`;
        expect(message).toBe('job exceeded its timeout of 1m30s');
        expect(await store.getJob(short.id)).toMatchObject({
          state: 'queued',
          numFailures: 1,
          failureMessage: message,
          processAfter: T0 + 90_001 + 1_000,
        });
        const again = await mustClaim('default', 'e', T0 + 100_000);
        expect(again.job.id).toBe(short.id);
        expect(await store.expireDeadlines(T0 + 200_000, RETRY)).toEqual([short.id]);
        expect(await store.getJob(short.id)).toMatchObject({ state: 'failed', finishedAt: T0 + 200_000 });
        expect((await store.getJob(long.id))?.state).toBe('processing');
      });
    });

    describe('executors', () => {
      it('upserts, keeps firstSeenAt, lists and deletes by age', async () => {
        await store.upsertExecutor(hb('b'), T0);
        await store.upsertExecutor(hb('a', { queueName: null, queueNames: ['x', 'y'] }), T0 + 1);
        await store.upsertExecutor(hb('b', { executorVersion: '5.4.0', metrics: 'up 1\n' }), T0 + 10);
        expect(await store.getExecutor('b')).toEqual({
          ...hb('b', { executorVersion: '5.4.0', metrics: 'up 1\n' }),
          firstSeenAt: T0,
          lastSeenAt: T0 + 10,
        });
        expect(await store.getExecutor('nope')).toBeNull();
        const list = await store.listExecutors();
        expect(list.map((e) => e.name)).toEqual(['a', 'b']);
        expect(list[0]).toMatchObject({ queueName: null, queueNames: ['x', 'y'], firstSeenAt: T0 + 1 });
        // Listed without the metrics text, which can be large.
        const { metrics: _, ...summary } = hb('b', { executorVersion: '5.4.0' });
        expect(list[1]).toEqual({ ...summary, firstSeenAt: T0, lastSeenAt: T0 + 10 });
        expect(await store.deleteExecutorsSeenBefore(T0 + 5)).toBe(1);
        expect((await store.listExecutors()).map((e) => e.name)).toEqual(['b']);
      });

      it('reads the metrics of recently seen executors only, those with metrics', async () => {
        await store.upsertExecutor(hb('old', { metrics: 'up 1\n' }), T0);
        await store.upsertExecutor(hb('quiet'), T0 + 40_000);
        await store.upsertExecutor(hb('b', { metrics: 'up 2\n' }), T0 + 30_000);
        await store.upsertExecutor(hb('a', { metrics: 'up 3\n' }), T0 + 40_000);
        expect(await store.recentExecutorMetrics(T0 + 50_000, 20_000)).toEqual([
          { name: 'a', lastSeenAt: T0 + 40_000, metrics: 'up 3\n' },
          { name: 'b', lastSeenAt: T0 + 30_000, metrics: 'up 2\n' },
        ]);
      });

      it('reads them a page at a time, in byte order of name, the same rows as at once', async () => {
        // Upper case sorts before lower case in byte order (not in a locale's).
        const names = ['e-10', 'e-2', 'E-1', 'e-1', 'zz', 'a'];
        for (const [i, name] of names.entries())
          await store.upsertExecutor(hb(name, { metrics: `up ${i}\n` }), T0 + 40_000);
        await store.upsertExecutor(hb('stale', { metrics: 'up 9\n' }), T0);
        await store.upsertExecutor(hb('quiet'), T0 + 40_000);
        const all = await store.recentExecutorMetrics(T0 + 50_000, 20_000);
        expect(all.map((e) => e.name)).toEqual(['E-1', 'a', 'e-1', 'e-10', 'e-2', 'zz']);
        const paged: typeof all = [];
        let after: string | undefined;
        for (;;) {
          const page = await store.recentExecutorMetrics(T0 + 50_000, 20_000, { after, limit: 4 });
          expect(page.length).toBeLessThanOrEqual(4);
          paged.push(...page);
          if (page.length < 4) break;
          after = page.at(-1)!.name;
        }
        expect(paged).toEqual(all);
      });

      it('lists them a page at a time in byte order, and counts all and the recently seen', async () => {
        const names = ['e-10', 'e-2', 'E-1', 'e-1', 'zz', 'a'];
        for (const [i, name] of names.entries()) await store.upsertExecutor(hb(name), T0 + i * 10_000);
        const all = await store.listExecutors();
        expect(all.map((e) => e.name)).toEqual(['E-1', 'a', 'e-1', 'e-10', 'e-2', 'zz']);
        expect(await store.listExecutors({ limit: 4 })).toEqual(all.slice(0, 4));
        expect(await store.listExecutors({ after: 'e-10', limit: 4 })).toEqual(all.slice(4));
        expect(await store.listExecutors({ after: 'zz', limit: 4 })).toEqual([]);
        // Seen at T0 + 0 s .. 50 s: within 25 s of T0 + 50 s are those seen at 30, 40 and 50 s.
        expect(await store.countExecutors(T0 + 50_000, 25_000)).toEqual({ total: 6, active: 3 });
        expect(await store.countExecutors(T0 + 50_000, 50_000)).toEqual({ total: 6, active: 6 });
        await store.deleteExecutorsSeenBefore(T0 + 35_000);
        expect(await store.countExecutors(T0 + 200_000, 1_000)).toEqual({ total: 2, active: 0 });
      });

      it('counts the executors polling each queue among the recently seen', async () => {
        expect(await store.queuePollers(T0, 15_000)).toEqual([]);
        await store.upsertExecutor(hb('one', { queueName: 'b' }), T0);
        await store.upsertExecutor(
          hb('many', { queueName: null, queueNames: ['b', 'a', 'Z', 'b'] }),
          T0 + 10_000,
        );
        await store.upsertExecutor(hb('other', { queueName: 'c' }), T0 + 20_000);
        await store.upsertExecutor(hb('gone', { queueName: 'old' }), T0 - 60_000);
        // Byte order (Z before a); 'many' names b twice and counts once; 'gone' is not recent.
        expect(await store.queuePollers(T0 + 20_000, 30_000)).toEqual([
          { queue: 'Z', executors: 1 },
          { queue: 'a', executors: 1 },
          { queue: 'b', executors: 2 },
          { queue: 'c', executors: 1 },
        ]);
        // Within 15 s of T0 + 20 s: 'many' (seen at 10 s) and 'other' (20 s).
        expect(await store.queuePollers(T0 + 20_000, 15_000)).toEqual([
          { queue: 'Z', executors: 1 },
          { queue: 'a', executors: 1 },
          { queue: 'b', executors: 1 },
          { queue: 'c', executors: 1 },
        ]);
        // A touch moves an executor back into the window.
        await store.touchExecutors([{ name: 'gone', at: T0 + 20_000 }]);
        expect((await store.queuePollers(T0 + 20_000, 5_000)).map((p) => p.queue)).toEqual(['c', 'old']);
      });
    });

    describe('queue stats', () => {
      it('counts queued and processing per queue and the oldest dequeueable queuedAt', async () => {
        expect(await store.queueStats(T0)).toEqual([]);
        await store.enqueue(newJob({ queue: 'a' }), T0 + 10);
        await store.enqueue(newJob({ queue: 'a' }), T0 + 20);
        await store.enqueue(newJob({ queue: 'a' }), T0 + 30);
        await store.enqueue(newJob({ queue: 'b' }), T0);
        const cb = await mustClaim('b', 'e', T0 + 40);
        await store.markComplete(cb.fence, T0 + 41);
        const ca = await mustClaim('a', 'e', T0 + 40);
        expect(await store.queueStats(T0 + 50)).toEqual([
          { queue: 'a', queued: 2, processing: 1, oldestQueuedAt: T0 + 20 },
          { queue: 'b', queued: 0, processing: 0, oldestQueuedAt: null },
        ]);
        // a job waiting for its backoff counts as queued but not as dequeueable before processAfter
        await store.markErrored(ca.fence, 'x', T0 + 60, RETRY);
        expect(await store.queueStats(T0 + 61)).toEqual([
          { queue: 'a', queued: 3, processing: 0, oldestQueuedAt: T0 + 20 },
          { queue: 'b', queued: 0, processing: 0, oldestQueuedAt: null },
        ]);
        await mustClaim('a', 'e', T0 + 70);
        await mustClaim('a', 'e', T0 + 70);
        expect((await store.queueStats(T0 + 2_000))[0]).toEqual({
          queue: 'a',
          queued: 1,
          processing: 2,
          oldestQueuedAt: T0 + 60 + 1_000,
        });
      });
    });

    describe('enqueue notifications', () => {
      it('wakes subscribers on enqueue, retry and stalled reset', async () => {
        if (!store.onEnqueue) {
          expect(store.onEnqueue).toBeUndefined();
          return;
        }
        const heard: string[] = [];
        const off = store.onEnqueue((queue) => heard.push(queue));
        // A subscription may take a moment to be live (PostgreSQL LISTEN); notifications are hints, so
        // enqueue until one is heard.
        await waitFor(
          async () => {
            await store.enqueue(newJob({ queue: 'n1' }), T0);
            return heard.includes('n1');
          },
          { what: 'enqueue notification', intervalMs: 50 },
        );
        const c = await mustClaim('n1', 'e', T0);
        let before = heard.length;
        expect(await store.resetStalled(T0 + 100_000, 25_000, 3)).toEqual({ reset: [c.job.id], failed: [] });
        await waitFor(() => heard.length > before, { what: 'reset notification' });
        const c2 = await mustClaim('n1', 'e', T0 + 100_000);
        expect(await store.markFailed(c2.fence, 'x', T0 + 100_001)).toBe(true);
        before = heard.length;
        await store.retryJob(c2.job.id, T0 + 100_002);
        await waitFor(() => heard.length > before, { what: 'retry notification' });
        expect(heard.at(-1)).toBe('n1');
        off();
        const heard2: string[] = [];
        const off2 = store.onEnqueue((queue) => heard2.push(queue));
        await waitFor(
          async () => {
            await store.enqueue(newJob({ queue: 'n2' }), T0);
            return heard2.includes('n2');
          },
          { what: 'second subscriber', intervalMs: 50 },
        );
        off2();
        // the second subscriber heard n2, so it was delivered; the first one had unsubscribed
        expect(heard).not.toContain('n2');
      });
    });

    describe('claim history', () => {
      /** The claim record of job `jobId` that `claim` expects, ended or not. */
      const record = (
        jobId: number,
        attempt: number,
        executorName: string,
        claimedAt: number,
        endedAt: number | null = null,
        outcome: string | null = null,
      ) => ({ jobId, attempt, executorName, claimedAt, endedAt, outcome });

      it('records each claim and closes it with the outcome that ended the attempt', async () => {
        expect(await store.claimHistory(12345)).toEqual([]);
        const a = await store.enqueue(newJob(), T0);
        const ca = await mustClaim('default', 'exec-1', T0);
        expect(await store.claimHistory(a.id)).toEqual([record(a.id, 1, 'exec-1', T0)]);
        expect(await store.markComplete(ca.fence, T0 + 1)).toBe(true);
        expect(await store.claimHistory(a.id)).toEqual([record(a.id, 1, 'exec-1', T0, T0 + 1, 'completed')]);

        const b = await store.enqueue(newJob({ queue: 'hist', timeoutMs: 90_000, maxAttempts: 5 }), T0);
        const c1 = await mustClaim('hist', 'exec-1', T0);
        expect(await store.markErrored(c1.fence, 'x', T0 + 1, RETRY)).toBe(true);
        await mustClaim('hist', 'exec-2', T0 + 2_000);
        expect(await store.resetStalled(T0 + 32_000, 25_000, 3)).toEqual({ reset: [b.id], failed: [] });
        await mustClaim('hist', 'exec-1', T0 + 32_000);
        expect(await store.expireDeadlines(T0 + 122_001, RETRY)).toEqual([b.id]);
        const c4 = await mustClaim('hist', 'exec-1', T0 + 130_000);
        expect(await store.markFailed(c4.fence, 'y', T0 + 130_001)).toBe(true);
        // A user retry starts attempt numbers again; the history keeps the earlier attempts.
        expect((await store.retryJob(b.id, T0 + 130_002))?.state).toBe('queued');
        await store.upsertExecutor(hb('exec-1'), T0);
        const c5 = await mustClaim('hist', 'exec-1', T0 + 130_003);
        expect(
          await store.markCompleteByToken(
            { tokenHash: c5.tokenHash, jobId: b.id, executorName: 'exec-1', queue: 'hist' },
            T0 + 130_004,
          ),
        ).not.toBeNull();
        expect(await store.claimHistory(b.id)).toEqual([
          record(b.id, 1, 'exec-1', T0, T0 + 1, 'errored'),
          record(b.id, 2, 'exec-2', T0 + 2_000, T0 + 32_000, 'stalled-reset'),
          record(b.id, 3, 'exec-1', T0 + 32_000, T0 + 122_001, 'deadline'),
          record(b.id, 4, 'exec-1', T0 + 130_000, T0 + 130_001, 'failed'),
          record(b.id, 1, 'exec-1', T0 + 130_003, T0 + 130_004, 'completed'),
        ]);

        const c = await store.enqueue(newJob({ queue: 'hist2' }), T0);
        await mustClaim('hist2', 'exec-2', T0 + 140_000);
        expect(await store.resetStalled(T0 + 170_000, 25_000, 0)).toEqual({ reset: [], failed: [c.id] });
        expect(await store.claimHistory(c.id)).toEqual([
          record(c.id, 1, 'exec-2', T0 + 140_000, T0 + 170_000, 'stalled-failed'),
        ]);
        // Each job's history is its own.
        expect(await store.claimHistory(a.id)).toHaveLength(1);
      });

      it('a canceled attempt is closed by the mark that ends it', async () => {
        const j = await store.enqueue(newJob(), T0);
        const c = await mustClaim('default', 'exec-1', T0);
        expect((await store.cancelJob(j.id, T0 + 1))?.state).toBe('processing');
        expect(await store.claimHistory(j.id)).toEqual([record(j.id, 1, 'exec-1', T0)]);
        expect(await store.markErrored(c.fence, 'canceled', T0 + 2, RETRY)).toBe(true);
        expect((await store.getJob(j.id))?.state).toBe('canceled');
        expect(await store.claimHistory(j.id)).toEqual([record(j.id, 1, 'exec-1', T0, T0 + 2, 'errored')]);
      });

      it('a fenced-out mark leaves the history as it was', async () => {
        const j = await store.enqueue(newJob(), T0);
        await store.upsertExecutor(hb('exec-1'), T0);
        const c = await mustClaim('default', 'exec-1', T0);
        expect(await store.markComplete({ ...c.fence, executorName: 'other' }, T0 + 1)).toBe(false);
        expect(await store.markFailed({ ...c.fence, attempt: 2 }, 'no', T0 + 1)).toBe(false);
        expect(
          await store.markCompleteByToken(
            { tokenHash: hash(), jobId: j.id, executorName: 'exec-1', queue: 'default' },
            T0 + 1,
          ),
        ).toBeNull();
        expect(await store.claimHistory(j.id)).toEqual([record(j.id, 1, 'exec-1', T0)]);
      });
    });
  });
}
