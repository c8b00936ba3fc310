/**
 * Reads that scale with what is asked for: the job view and the logs route page their entries and
 * output, and cut long commands.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApiClient } from '../../src/cli/api-client.js';
import {
  COMMAND_VIEW_CHARS,
  type JobDetailView,
  type JobLogsView,
  LOG_PAGE,
} from '../../src/protocol/user-api.js';
import type { AttemptFence } from '../../src/store/types.js';
import { API_TOKEN, type Harness, startHarness } from './harness.js';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

const MAX = 64 * 1024 * 1024;

async function runningJob(): Promise<{ id: number; fence: AttemptFence }> {
  const id = await h.submit({});
  await h.dequeue('default', 'e1');
  return { id, fence: { jobId: id, executorName: 'e1', attempt: 1 } };
}

const entry = (key: string, out = '', command: string[] | null = ['sh', '-c', key]) => ({
  key,
  command,
  startTime: '2026-01-01T00:00:00Z',
  out,
});

async function get<T>(p: string): Promise<T> {
  const res = await h.api('GET', p);
  expect(res.status).toBe(200);
  return (await res.json()) as T;
}

describe('GET /jobs/:id pages its entries', () => {
  it('entriesAfter and limit walk every entry once; nextEntriesAfter is null on the last page', async () => {
    const { id, fence } = await runningJob();
    for (let i = 1; i <= 7; i++) await h.store.addLogEntry(fence, entry(`step.${i}`, 'x'), MAX);
    const seen: number[] = [];
    let p = `/jobs/${id}?limit=3`;
    for (let pages = 0; pages < 10; pages++) {
      const d = await get<JobDetailView>(p);
      expect(d.id).toBe(id);
      expect(d.logEntries.length).toBeLessThanOrEqual(3);
      seen.push(...d.logEntries.map((e) => e.entryId));
      if (d.nextEntriesAfter === null) break;
      p = `/jobs/${id}?limit=3&entriesAfter=${d.nextEntriesAfter}`;
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const whole = await get<JobDetailView>(`/jobs/${id}`);
    expect(whole.logEntries).toHaveLength(7);
    expect(whole.nextEntriesAfter).toBeNull();
  });

  it('a command longer than the view shows comes shortened, flagged', async () => {
    const { id, fence } = await runningJob();
    const big = ['bash', '-c', 'y'.repeat(COMMAND_VIEW_CHARS * 20)];
    await h.store.addLogEntry(fence, entry('big', '', big), MAX);
    await h.store.addLogEntry(fence, entry('small'), MAX);
    const d = await get<JobDetailView>(`/jobs/${id}`);
    const [b, s] = d.logEntries;
    expect(b!.commandTruncated).toBe(true);
    expect(b!.command!.slice(0, 2)).toEqual(['bash', '-c']);
    // The prefix, plus the quote and bracket that close the cut element.
    expect(JSON.stringify(b!.command).length).toBeLessThanOrEqual(COMMAND_VIEW_CHARS + 2);
    expect(s).not.toHaveProperty('commandTruncated');
    expect(s!.command).toEqual(['sh', '-c', 'small']);
    const logs = await get<JobLogsView>(`/jobs/${id}/logs`);
    expect(logs.entries[0]!.commandTruncated).toBe(true);
  });

  it('bad paging parameters are a VALIDATION error naming each', async () => {
    const { id } = await runningJob();
    for (const p of [
      `/jobs/${id}?limit=0&entriesAfter=x`,
      `/jobs/${id}/logs?limit=100000&outputFrom=-1&entriesAfter=x`,
    ]) {
      const res = await h.api('GET', p);
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { code: string; details: { path: string }[] } };
      expect(body.error.code).toBe('VALIDATION');
      expect(body.error.details.length).toBeGreaterThanOrEqual(2);
    }
  });
});

describe('GET /jobs/:id/logs pages entries and output', () => {
  it('an output larger than a page is split across pages and joins back whole', async () => {
    const { id, fence } = await runningJob();
    const line = 'é0123456789abcdef\n';
    const bigOut = line.repeat(Math.ceil((2.5 * LOG_PAGE.bytes) / Buffer.byteLength(line)));
    await h.store.addLogEntry(fence, entry('a', 'first\n'), MAX);
    await h.store.addLogEntry(fence, entry('b', bigOut), MAX);
    await h.store.addLogEntry(fence, entry('c', 'last\n'), MAX);
    const outs = new Map<number, string>();
    let pages = 0;
    let p = `/jobs/${id}/logs`;
    for (;;) {
      const r = await get<JobLogsView>(p);
      pages++;
      let bytes = 0;
      for (const e of r.entries) {
        expect(e.outFrom ?? 0).toBe(Buffer.byteLength(outs.get(e.entryId) ?? ''));
        outs.set(e.entryId, (outs.get(e.entryId) ?? '') + (e.out ?? ''));
        bytes += Buffer.byteLength(e.out ?? '');
      }
      expect(bytes).toBeLessThanOrEqual(LOG_PAGE.bytes);
      if (!r.next) break;
      p = `/jobs/${id}/logs?entriesAfter=${r.next.entriesAfter}&outputFrom=${r.next.outputFrom}`;
      expect(pages).toBeLessThan(10);
    }
    expect(pages).toBe(3);
    expect(outs.get(1)).toBe('first\n');
    expect(outs.get(2)).toBe(bigOut);
    expect(outs.get(3)).toBe('last\n');
  });

  it('limit bounds the entries of a page', async () => {
    const { id, fence } = await runningJob();
    for (let i = 1; i <= 5; i++) await h.store.addLogEntry(fence, entry(`s${i}`, `o${i}`), MAX);
    const r = await get<JobLogsView>(`/jobs/${id}/logs?limit=2`);
    expect(r.entries.map((e) => e.out)).toEqual(['o1', 'o2']);
    expect(r.next).toEqual({ entriesAfter: 2, outputFrom: 0 });
    const last = await get<JobLogsView>(`/jobs/${id}/logs?limit=2&entriesAfter=4`);
    expect(last.entries.map((e) => e.out)).toEqual(['o5']);
    expect(last.next).toBeNull();
  });
});

describe('the CLI client reads every page', () => {
  it('getJob gathers all entries; getLogs joins an output split across pages', async () => {
    const { id, fence } = await runningJob();
    const many = 520;
    const big = 'ab\n'.repeat(Math.ceil((1.5 * LOG_PAGE.bytes) / 3));
    await h.store.addLogEntry(fence, entry('first', big), MAX);
    for (let i = 2; i <= many; i++) await h.store.addLogEntry(fence, entry(`s${i}`, `o${i}`), MAX);
    const client = createApiClient({ server: h.url, token: API_TOKEN });
    const job = await client.getJob(id);
    expect(job.logEntries.map((e) => e.entryId)).toEqual(Array.from({ length: many }, (_, i) => i + 1));
    expect(job.nextEntriesAfter).toBeNull();
    const logs = await client.getLogs(id);
    expect(logs.entries).toHaveLength(many);
    expect(logs.entries[0]!.out).toBe(big);
    expect(logs.entries[many - 1]!.out).toBe(`o${many}`);
    expect(logs.next).toBeNull();
  });
});
