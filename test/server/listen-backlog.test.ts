/**
 * The server's accept queue holds what the kernel allows (net.core.somaxconn), not Node's default
 * of 511: a fleet that reconnects at once after a restart sends thousands of SYNs together, and
 * with 511 the kernel dropped most of them, each dropped client waiting 1 s and then 3 s to try
 * again (docs/operating.md has the figures). The queue's size is read back from the kernel with
 * `ss` (iproute2), which reports a listening socket's maximum backlog as its Send-Q.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LISTEN_BACKLOG } from '../../src/server/index.js';
import { commandAvailable, requireOrSkip } from '../helpers/env.js';
import { type Harness, startHarness } from './harness.js';

describe.runIf(requireOrSkip('ss (iproute2)', commandAvailable('ss')))('the listening socket', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it("has the kernel's largest accept queue, not Node's 511", () => {
    const port = new URL(h.url).port;
    const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
    // -H: no header; the columns are State, Recv-Q, Send-Q (the maximum backlog), local, peer.
    const line = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' }).trim();
    const sendQ = Number(line.split(/\s+/)[2]);
    expect(sendQ).toBe(Math.min(LISTEN_BACKLOG, somaxconn));
    // Where somaxconn allows more than Node's default, the server has more.
    if (somaxconn > 511) expect(sendQ).toBeGreaterThan(511);
  });
});
