/**
 * The job logger's bound on what the redactor holds back: after MAX_HOLD_MS the held bytes go out
 * (masked where they could still become a secret) and the live sync sends the lines they
 * complete; the timer runs only while bytes are held and is cancelled at close and flush. Time is
 * the test's: fake timers fired by hand.
 */
import { describe, expect, it } from 'vitest';
import { createJobLogger, MAX_HOLD_MS } from '../../../src/executor/logs/job-logger.js';
import { createRedactor } from '../../../src/executor/logs/redactor.js';
import { createFakeTimers, systemTimers } from '../../../src/lib/clock.js';
import { createMemoryLogger } from '../../../src/lib/logger.js';
import { waitFor } from '../../helpers/env.js';
import { createFakeLogSink, type FakeLogSink } from './fake-log-sink.js';

const SECRET = 'hunter2-secret';

function setup() {
  const sink = createFakeLogSink({ append: true });
  const timers = createFakeTimers();
  const jl = createJobLogger({
    sink,
    redactor: createRedactor({ [SECRET]: 'SECRET_REMOVED' }),
    maxOutputBytes: 1 << 20,
    appendIntervalMs: 0,
    timers,
    logger: createMemoryLogger(),
  });
  return { sink, timers, jl };
}

const appended = (sink: FakeLogSink) => sink.calls.filter((c) => c.kind === 'append').map((c) => c.out);

describe('job logger: held output is bounded in time', () => {
  it(`a tail held past MAX_HOLD_MS (${MAX_HOLD_MS} ms) goes out masked and the live sync sends it`, async () => {
    const { sink, timers, jl } = setup();
    const h = jl.entry('step.docker.0', ['sh']);
    await waitFor(() => sink.calls.length === 1, { what: 'the add' });
    // The secret is whole but a longer form of it (its base64) could still start there, and
    // "hunt" could begin it again: both wait for more output.
    h.write('stdout', `first\necho: ${SECRET}\nhunt`);
    await waitFor(() => appended(sink).length === 1, { what: 'the first line' });
    expect(appended(sink)).toEqual(['stdout: first\n']);
    expect(timers.pending()).toBe(1);
    timers.advance(MAX_HOLD_MS - 1);
    expect(timers.pending()).toBe(1);
    timers.advance(1);
    expect(timers.pending()).toBe(0);
    // The line the process printed before it paused, sent before any more output comes.
    await waitFor(() => appended(sink).length === 2, { what: 'the released line' });
    expect(appended(sink)[1]).toBe('stdout: echo: SECRET_REMOVED\n');
    // The secret completed after the time-out: its masked start stands for all of it.
    h.write('stdout', 'er2-secret done\n');
    await waitFor(() => appended(sink).length === 3, { what: 'the line that completes the secret' });
    expect(appended(sink)[2]).toBe('stdout: SECRET_REMOVED done\n');
    h.close(0);
    await jl.flush();
    expect(sink.stored.get(1)?.out).toBe(
      'stdout: first\nstdout: echo: SECRET_REMOVED\nstdout: SECRET_REMOVED done\n',
    );
    const sent = JSON.stringify(sink.calls);
    for (const part of ['hunt', 'er2', '-secret']) expect(sent).not.toContain(part);
  });

  it('a held prefix that turns out not to be a secret stays masked; the rest of its line goes out', async () => {
    const { sink, timers, jl } = setup();
    const h = jl.entry('step.docker.0', ['sh']);
    h.write('stderr', 'progress: hun');
    timers.advance(MAX_HOLD_MS);
    h.write('stderr', 'dreds done\n');
    h.close(0);
    await jl.flush();
    expect(sink.stored.get(1)?.out).toBe('stderr: progress: SECRET_REMOVEDdreds done\n');
  });

  it('the timer runs only while bytes are held, and close and flush cancel it', async () => {
    const { sink, timers, jl } = setup();
    const a = jl.entry('step.docker.0', ['sh']);
    a.write('stdout', 'plain\n');
    expect(timers.pending()).toBe(0);
    a.write('stdout', 'hun');
    expect(timers.pending()).toBe(1);
    // More output decides the held bytes: nothing waits, the timer goes.
    a.write('stdout', 'gry\n');
    expect(timers.pending()).toBe(0);
    a.write('stdout', 'hun');
    a.write('stderr', 'hunt');
    expect(timers.pending()).toBe(2);
    a.close(0);
    expect(timers.pending()).toBe(0);
    // Never closed: flush cancels its timer.
    const b = jl.entry('step.docker.1', ['sh']);
    b.write('stdout', 'hun');
    expect(timers.pending()).toBe(1);
    await jl.flush();
    expect(timers.pending()).toBe(0);
    // At close the held bytes are decided as ever: they are not a secret, so they go out in clear.
    expect(sink.stored.get(1)?.out).toBe('stdout: plain\nstdout: hungry\nstdout: hun\nstderr: hunt\n');
  });

  it("the system's timers do not keep the process alive", () => {
    const timeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timeouts();
    const t = systemTimers.set(() => {}, 60_000);
    expect(timeouts()).toBe(before);
    t.cancel();
  });
});
