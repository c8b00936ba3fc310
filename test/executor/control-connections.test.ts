/**
 * An executor keeps its ping, heartbeats and dequeues on connections of their own: against the real
 * queue server (SQLite, loopback), an executor on the shell runtime runs a job that writes logs,
 * and every heartbeat and dequeue it sent, before the job and after, was answered by the server's
 * heartbeat lane, which answers only on connections that never carried anything else. With one
 * pool for everything, the heartbeats after a job rode the connection its logs had used and were
 * node:http's from then on.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import { EXECUTOR_TOKEN, type Harness, startHarness } from '../server/harness.js';
import { startShellExecutor, tempDir, testConfig } from './harness.js';

let h: Harness;
let ws: Awaited<ReturnType<typeof tempDir>>;
beforeEach(async () => {
  h = await startHarness({ env: { EXECUTOR_SERVER_HEARTBEAT_LANE: 'true' } });
  ws = await tempDir('executor-control-');
});
afterEach(async () => {
  await h.close();
  await ws.cleanup();
});

/** Heartbeats and dequeues the server answered, and those its lane answered. */
async function counts() {
  const text = await (await fetch(`${h.url}/metrics`)).text();
  const served = (route: string) =>
    [
      ...text.matchAll(
        new RegExp(
          `^src_executor_server_http_requests_total\\{route="[^"]*/${route}",[^}]*\\} (\\d+)$`,
          'gm',
        ),
      ),
    ].reduce((sum, m) => sum + Number(m[1]), 0);
  const lane = (route: string) =>
    Number(
      new RegExp(`^src_executor_server_lane_answers_total\\{route="${route}"\\} (\\d+)$`, 'm').exec(
        text,
      )?.[1] ?? Number.NaN,
    );
  return {
    heartbeats: served('heartbeat'),
    laneHeartbeats: lane('heartbeat'),
    dequeues: served('dequeue'),
    laneDequeues: lane('dequeue'),
  };
}

describe("the executor's control connections", () => {
  it('heartbeats and dequeues stay in the lane after a job has written logs', async () => {
    const config = testConfig(h, ws.dir, {
      EXECUTOR_FRONTEND_PASSWORD: EXECUTOR_TOKEN,
      EXECUTOR_QUEUE_NAME: 'control',
      EXECUTOR_NAME: 'control-1',
    });
    const { ex } = await startShellExecutor(config);
    try {
      const id = await h.submit({
        queue: 'control',
        steps: [{ image: 'ignored', run: 'for i in 1 2 3; do echo "line $i"; done' }],
      });
      const job = await waitFor(
        async () => {
          const j = (await (await h.api('GET', `/jobs/${id}`)).json()) as { state: string };
          return j.state === 'completed' ? j : undefined;
        },
        { what: 'the job completed' },
      );
      expect(job.state).toBe('completed');
      const logs = await (await h.api('GET', `/jobs/${id}/logs`)).text();
      expect(logs).toContain('line 3');

      // Heartbeats go on every 50 ms: wait for twenty after the job's last write.
      const after = await counts();
      await waitFor(async () => (await counts()).heartbeats >= after.heartbeats + 20, {
        what: 'twenty heartbeats after the job',
      });
      const now = await counts();
      expect(now.heartbeats).toBeGreaterThanOrEqual(after.heartbeats + 20);
      // Every heartbeat (the pings among them) and every dequeue of the executor's life.
      expect(now.laneHeartbeats).toBe(now.heartbeats);
      expect(now.dequeues).toBeGreaterThanOrEqual(1);
      expect(now.laneDequeues).toBe(now.dequeues);
    } finally {
      await ex.forceStop();
    }
  });
});
