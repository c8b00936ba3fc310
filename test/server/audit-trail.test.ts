/**
 * The audit trail over HTTP: submit, cancel and retry through /api/v1 record who did it, and
 * GET /api/v1/jobs/:id shows the history (`events`), oldest first. The actor is `admin` for the
 * bootstrap API token and `local` for the tokenless loopback dashboard.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { JobDetailView } from '../../src/protocol/user-api.js';
import { API_TOKEN, type Harness, startHarness } from './harness.js';

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const detail = async (id: number): Promise<JobDetailView> => {
  const res = await h.api('GET', `/jobs/${id}`);
  expect(res.status).toBe(200);
  return (await res.json()) as JobDetailView;
};

describe('audit trail', () => {
  it('records submit, cancel and retry by the bootstrap API token, shown in the job view', async () => {
    h = await startHarness();
    const id = await h.submit({});
    h.clock.advance(1000);
    expect((await h.api('POST', `/jobs/${id}/cancel`)).status).toBe(200);
    h.clock.advance(1000);
    expect((await h.api('POST', `/jobs/${id}/retry`)).status).toBe(200);
    // Refused changes (retry of a queued job) leave no trace.
    expect((await h.api('POST', `/jobs/${id}/retry`)).status).toBe(409);

    const job = await detail(id);
    const t0 = Date.parse(job.createdAt);
    expect(job.events).toEqual([
      { at: new Date(t0).toISOString(), actor: 'bootstrap', action: 'submitted' },
      { at: new Date(t0 + 1000).toISOString(), actor: 'bootstrap', action: 'canceled' },
      { at: new Date(t0 + 2000).toISOString(), actor: 'bootstrap', action: 'retried' },
    ]);
    // The view holds the token's holder, never the token.
    expect(JSON.stringify(job)).not.toContain(API_TOKEN);
    expect(h.logs.join('\n')).not.toContain(API_TOKEN);
  });

  it('a job enqueued by another path has an empty history', async () => {
    h = await startHarness();
    const job = await h.store.enqueue(
      {
        queue: 'default',
        spec: { queue: 'default', steps: [{ image: 'busybox', run: 'true' }] },
        repositoryName: '',
        commit: '',
        priority: 0,
        maxAttempts: 1,
        timeoutMs: 60_000,
      },
      h.clock.now(),
    );
    expect((await detail(job.id)).events).toEqual([]);
  });

  it('the tokenless loopback dashboard acts as local; with the bootstrap token it is bootstrap', async () => {
    h = await startHarness({ env: { EXECUTOR_SERVER_DASHBOARD_LOOPBACK_OPEN: 'true' } });
    const dashboard = { 'x-executor-dashboard': '1', 'content-type': 'application/json' };
    const res = await fetch(`${h.url}/api/v1/jobs`, {
      method: 'POST',
      headers: dashboard,
      body: JSON.stringify({ queue: 'default', steps: [{ image: 'busybox', run: 'true' }] }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: number };
    const cancel = await fetch(`${h.url}/api/v1/jobs/${id}/cancel`, {
      method: 'POST',
      headers: { ...dashboard, authorization: `Bearer ${API_TOKEN}` },
    });
    expect(cancel.status).toBe(200);
    expect((await detail(id)).events.map((e) => [e.actor, e.action])).toEqual([
      ['local', 'submitted'],
      ['bootstrap', 'canceled'],
    ]);
  });
});
