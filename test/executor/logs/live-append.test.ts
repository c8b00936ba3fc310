/**
 * Live appends (log-append): output leaves as it comes, not on the 1 s snapshot rhythm; at most one
 * append per entry is in flight, and what arrives meanwhile rides the next one; appends of a step
 * printing continuously stay within the entry's budget (APPEND_BURST at once, then one per
 * APPEND_INTERVAL_MS). Against a server without
 * log-append, the snapshot interval still holds.
 */
import { describe, expect, it } from 'vitest';
import { createJobLogger } from '../../../src/executor/logs/job-logger.js';
import { APPEND_BURST, APPEND_INTERVAL_MS } from '../../../src/executor/logs/log-sync.js';
import { createRedactor } from '../../../src/executor/logs/redactor.js';
import { createMemoryLogger } from '../../../src/lib/logger.js';
import { waitFor } from '../../helpers/env.js';
import { createFakeLogSink, type FakeLogSink } from './fake-log-sink.js';

/** Far beyond the test's timeout: a line that waited for this timer would fail the test. */
const SNAPSHOT_INTERVAL_MS = 600_000;

/** A sink whose appends wait for `release()`, counting how many of one entry are in flight. */
function gatedSink() {
  const sink = createFakeLogSink({ append: true });
  const apply = sink.append!;
  const gates: Array<() => void> = [];
  const state = { inFlight: 0, maxInFlight: 0, gated: true, started: [] as number[] };
  sink.append = async (id, offset, out, fields) => {
    const bytes = Buffer.from(out); // the logger reuses its buffer once this returns
    state.started.push(id);
    state.inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    try {
      if (state.gated) await new Promise<void>((r) => gates.push(r));
      await apply(id, offset, bytes, fields);
    } finally {
      state.inFlight--;
    }
  };
  const release = () => {
    for (const g of gates.splice(0)) g();
  };
  return { sink, state, release, waiting: () => gates.length };
}

function logger(sink: FakeLogSink, appendIntervalMs?: number) {
  return createJobLogger({
    sink,
    redactor: createRedactor({ 'hunter2-secret': 'SECRET_REMOVED' }),
    maxOutputBytes: 1 << 20,
    syncIntervalMs: SNAPSHOT_INTERVAL_MS,
    appendIntervalMs,
    logger: createMemoryLogger(),
  });
}

const appends = (sink: FakeLogSink) => sink.calls.filter((c) => c.kind === 'append');

/**
 * Requests (the add, then appends) started at `starts` stay within the budget: any run of n of
 * them spans at least (n - APPEND_BURST) intervals. 1 ms of slack for the timer's cached time.
 */
function expectWithinBudget(starts: number[]) {
  for (let i = 0; i < starts.length; i++)
    for (let j = i + APPEND_BURST; j < starts.length; j++)
      expect(starts[j]! - starts[i]!).toBeGreaterThanOrEqual(
        (j - i + 1 - APPEND_BURST) * APPEND_INTERVAL_MS - 1,
      );
}

/**
 * Writes a line on every turn of the event loop until `n` appends went out; the lines written.
 * While 64 KiB written wait for an append it only waits: where timers run late (a loaded machine)
 * it would otherwise write past the logger's head, after which no append goes out before the close.
 */
async function writeUntilAppends(sink: FakeLogSink, h: { write(s: 'stdout', t: string): void }, n: number) {
  let i = 0;
  let written = 0;
  while (appends(sink).length < n) {
    const sent = appends(sink).reduce((sum, c) => sum + Buffer.byteLength(String(c.out)), 0);
    if (written - sent < 64 * 1024) {
      const line = `line ${i++}\n`;
      h.write('stdout', line);
      written += Buffer.byteLength(`stdout: ${line}`);
    }
    await new Promise<void>((r) => setImmediate(r));
  }
  return i;
}

describe('live appends', () => {
  it('a single line leaves without waiting for the snapshot timer', async () => {
    const sink = createFakeLogSink({ append: true });
    const jl = logger(sink);
    const h = jl.entry('step.docker.0', ['sh']);
    await waitFor(() => sink.calls.length === 1, { what: 'the add' });
    h.write('stdout', 'one line\n');
    await waitFor(() => appends(sink).length === 1, { what: 'the append of the line' });
    expect(appends(sink)[0]).toMatchObject({ offset: 0, out: 'stdout: one line\n', fields: {} });
    // A second line after a quiet spell goes out on its own too.
    h.write('stdout', 'another\n');
    await waitFor(() => appends(sink).length === 2, { what: 'the append of the second line' });
    expect(appends(sink)[1]).toMatchObject({ offset: 17, out: 'stdout: another\n' });
    h.close(0);
    await jl.flush();
    expect(sink.stored.get(1)?.out).toBe('stdout: one line\nstdout: another\n');
  });

  it('at most one append per entry is in flight; what comes meanwhile rides the next one', async () => {
    const { sink, state, release, waiting } = gatedSink();
    const jl = logger(sink, 0);
    const a = jl.entry('step.docker.0', ['sh']);
    const b = jl.entry('step.docker.1', ['sh']);
    await waitFor(() => sink.calls.filter((c) => c.kind === 'add').length === 2, { what: 'both adds' });

    a.write('stdout', 'first\n');
    await waitFor(() => waiting() === 1, { what: 'the first append to be in flight' });
    // Written while the first append is held: none of it may start a second request for entry a.
    for (let i = 0; i < 50; i++) a.write('stdout', `burst ${i}\n`);
    // Entry b has its own request in flight meanwhile: the bound is per entry.
    b.write('stderr', 'other entry\n');
    await waitFor(() => waiting() === 2, { what: 'entry b to send while a is held' });
    expect(state.started.filter((id) => id === 1)).toHaveLength(1);

    state.gated = false;
    release();
    await waitFor(() => appends(sink).filter((c) => c.id === 1).length === 2, { what: "a's second append" });
    const [first, second] = appends(sink).filter((c) => c.id === 1);
    expect(first!.out).toBe('stdout: first\n');
    // The whole burst in one request, right after the first.
    expect(second!.offset).toBe(Buffer.byteLength('stdout: first\n'));
    expect(second!.out).toBe(Array.from({ length: 50 }, (_, i) => `stdout: burst ${i}\n`).join(''));
    a.close(0);
    b.close(0);
    await jl.flush();
    // Per entry, never two at once (the sink held two, one of each entry, at the same time).
    expect(state.maxInFlight).toBe(2);
    expect(sink.stored.get(2)?.out).toBe('stderr: other entry\n');
  });

  it('never two appends of one entry at once, under a continuous writer', async () => {
    const sink = createFakeLogSink({ append: true });
    const apply = sink.append!;
    let inFlight = 0;
    let maxInFlight = 0;
    sink.append = async (id, offset, out, fields) => {
      const bytes = Buffer.from(out);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      // Settles on a later turn of the event loop, as a request would.
      await new Promise<void>((r) => setImmediate(r));
      try {
        await apply(id, offset, bytes, fields);
      } finally {
        inFlight--;
      }
    };
    const jl = logger(sink, 0);
    const h = jl.entry('step.docker.0', ['sh']);
    await waitFor(() => sink.calls.length === 1, { what: 'the add' });
    const expected: string[] = [];
    for (let i = 0; i < 200; i++) {
      h.write('stdout', `line ${i}\n`);
      expected.push(`stdout: line ${i}\n`);
      if (i % 20 === 19) await new Promise<void>((r) => setImmediate(r));
    }
    h.close(0);
    await jl.flush();
    expect(maxInFlight).toBe(1);
    expect(appends(sink).length).toBeGreaterThan(1);
    expect(sink.stored.get(1)?.out).toBe(expected.join(''));
  });

  it(`a continuous writer gets ${APPEND_BURST} requests at once, then one per ${APPEND_INTERVAL_MS} ms`, async () => {
    const sink = createFakeLogSink({ append: true });
    const jl = logger(sink);
    const h = jl.entry('step.docker.0', ['sh']);
    await waitFor(() => sink.calls.length === 1, { what: 'the add' });
    // Writes on every turn of the event loop until the burst is spent and four more went out.
    await writeUntilAppends(sink, h, APPEND_BURST + 4);
    // The calls record performance.now(); the logger measures with the same clock. The timer may
    // fire a little early by the event loop's cached time, which the logger re-checks.
    const starts = sink.calls.map((c) => c.at);
    expectWithinBudget(starts);
    // Not a plain gap either: the first requests left back to back.
    expect(starts[APPEND_BURST - 1]! - starts[0]!).toBeLessThan(APPEND_INTERVAL_MS);
    h.close(0);
    await jl.flush();
  });

  it('output that arrives while an append is in flight rides a later one, within the budget', async () => {
    const sink = createFakeLogSink({ append: true });
    const apply = sink.append!;
    sink.append = async (id, offset, out, fields) => {
      const bytes = Buffer.from(out);
      // Settles on a later turn of the event loop, as a request would; the writer writes meanwhile.
      await new Promise<void>((r) => setImmediate(r));
      await apply(id, offset, bytes, fields);
    };
    const jl = logger(sink);
    const h = jl.entry('step.docker.0', ['sh']);
    await waitFor(() => sink.calls.length === 1, { what: 'the add' });
    const i = await writeUntilAppends(sink, h, APPEND_BURST + 4);
    expectWithinBudget(sink.calls.map((c) => c.at));
    h.close(0);
    await jl.flush();
    expect(sink.stored.get(1)?.out).toBe(Array.from({ length: i }, (_, k) => `stdout: line ${k}\n`).join(''));
  });

  it('against a server without log-append, snapshots keep their interval', async () => {
    const sink = createFakeLogSink();
    const jl = createJobLogger({
      sink,
      redactor: createRedactor({}),
      maxOutputBytes: 1 << 20,
      syncIntervalMs: SNAPSHOT_INTERVAL_MS,
      logger: createMemoryLogger(),
    });
    const h = jl.entry('step.docker.0', ['sh']);
    await waitFor(() => sink.calls.length === 1, { what: 'the add' });
    h.write('stdout', 'one line\n');
    // Nothing but the close sends it: a few turns of the event loop pass without an update.
    for (let k = 0; k < 20; k++) await new Promise<void>((r) => setTimeout(r, 0));
    expect(sink.calls.filter((c) => c.kind === 'update')).toHaveLength(0);
    h.close(0);
    await jl.flush();
    expect(sink.calls.filter((c) => c.kind === 'update')).toHaveLength(1);
    expect(sink.stored.get(1)?.out).toBe('stdout: one line\n');
  });
});
