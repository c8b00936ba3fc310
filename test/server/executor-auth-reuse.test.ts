/**
 * The shared executor token on a kept-alive connection: a request that repeats the header
 * accepted before on its connection is let through without digesting it again
 * (executor-api/guards.ts), and nothing else is: another token of the same length, none, or the
 * right one after a wrong one, on the same connection, get exactly the answers they would alone.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXECUTOR_TOKEN, type Harness, startHarness } from './harness.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

/** Heartbeats pipelined on one connection, one per Authorization header (none for null); their statuses. */
async function onOneConnection(authorizations: (string | null)[]): Promise<number[]> {
  const { hostname, port } = new URL(h.url);
  const socket = net.connect(Number(port), hostname);
  const body = JSON.stringify({ executorName: 'e1', executorVersion: '5.3.0', jobIds: [] });
  const request = (auth: string | null, last: boolean) =>
    [
      'POST /.executors/queue/default/heartbeat HTTP/1.1',
      `host: ${hostname}`,
      ...(auth === null ? [] : [`authorization: ${auth}`]),
      'content-type: application/json',
      `content-length: ${Buffer.byteLength(body)}`,
      ...(last ? ['connection: close'] : []),
      '',
      body,
    ].join('\r\n');
  socket.write(authorizations.map((a, i) => request(a, i === authorizations.length - 1)).join(''));
  let text = '';
  socket.on('data', (d: Buffer) => {
    text += d.toString('utf8');
  });
  await new Promise((r) => socket.once('close', r));
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
