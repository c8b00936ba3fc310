/**
 * EXECUTOR_SERVER_KEEP_ALIVE_TIMEOUT: how long an idle connection stays open. The server announces
 * it (`Keep-Alive: timeout=N`, which fetch honours) and closes a connection idle that long.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { type Harness, startHarness } from './harness.js';
import { openRaw } from './raw-http.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** One GET /healthz on a raw connection, answered; the connection left open. */
async function idleAfterOneRequest(url: string) {
  const c = await openRaw(url, 'GET', '/healthz', {});
  expect(await c.status).toBe(200);
  return c;
}

describe('idle connections (EXECUTOR_SERVER_KEEP_ALIVE_TIMEOUT)', () => {
  it('are kept 65 s by default: past the executors’ 5 s heartbeat interval', async () => {
    h = await startHarness();
    const c = await idleAfterOneRequest(h.url);
    expect(c.received()).toMatch(/\r\nKeep-Alive: timeout=65\r\n/i);
    c.socket.destroy();
  });

  it('are closed after the configured time, which the server announces', async () => {
    h = await startHarness({ env: { EXECUTOR_SERVER_KEEP_ALIVE_TIMEOUT: '300ms' } });
    const c = await idleAfterOneRequest(h.url);
    // Node announces whole seconds, rounded down: 0 says "do not count on reuse".
    expect(c.received()).toMatch(/\r\nKeep-Alive: timeout=0\r\n/i);
    await c.closed;
    expect(c.socket.destroyed).toBe(true);
  });
});
