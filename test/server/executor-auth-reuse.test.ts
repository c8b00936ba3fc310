/**
 * The shared executor token on a kept-alive connection: a request that repeats the header
 * accepted before on its connection is let through without digesting it again
 * (executor-api/guards.ts), and nothing else is: another token of the same length, none, or the
 * right one after a wrong one, on the same connection, get exactly the answers they would alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXECUTOR_TOKEN, type Harness, startHarness } from './harness.js';
import { pipelineHeartbeats } from './raw-http.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

/** Heartbeats pipelined on one connection, one per Authorization header (none for null); their statuses. */
async function onOneConnection(authorizations: (string | null)[]): Promise<number[]> {
  const text = await pipelineHeartbeats(
    h.url,
    authorizations.map((authorization) => ({ executorName: 'e1', authorization })),
  );
  return [...text.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((m) => Number(m[1]));
}

describe('the shared token on a kept-alive connection', () => {
  const good = `token-executor ${EXECUTOR_TOKEN}`;
  // Same length, one character different: the repeat check must not take it for the good one.
  const near = `token-executor ${EXECUTOR_TOKEN.slice(0, -1)}${EXECUTOR_TOKEN.endsWith('x') ? 'y' : 'x'}`;

  it('lets a repeat of the accepted header through, and refuses whatever else follows it', async () => {
    expect(await onOneConnection([good, good, near, good, null, `${good}x`, good])).toEqual([
      200, 200, 401, 200, 401, 401, 200,
    ]);
  });

  it('accepts nothing on a connection whose first header was wrong', async () => {
    expect(await onOneConnection([near, near, good, near])).toEqual([401, 401, 200, 401]);
  });
});
