import { describe, expect, it } from 'vitest';
import { createLogPrinter, createProgressLine } from '../../src/cli/client-commands.js';

describe('log printer', () => {
  it("prints an entry's result after its output even when the close arrives first", () => {
    let out = '';
    const p = createLogPrinter((s) => {
      out += s;
    });
    const entry = {
      entryId: 1,
      key: 'step.docker.a',
      command: null,
      startTime: '',
      exitCode: null,
      durationMs: null,
    };
    p.entry(entry);
    p.entry({ ...entry, exitCode: 0, durationMs: 1200 });
    p.output(1, 'stdout: hello\n');
    p.entry({ ...entry, entryId: 2, key: 'step.docker.b' });
    p.output(2, 'stdout: partial');
    p.entry({ ...entry, entryId: 2, key: 'step.docker.b', exitCode: 3, durationMs: 5 });
    p.end({ id: 9, queue: 'q', state: 'failed', failureMessage: 'boom' });
    expect(out).toBe(
      [
        '==> step.docker.a',
        'stdout: hello',
        '<== step.docker.a: ok in 1.2s',
        '==> step.docker.b',
        'stdout: partial',
        '<== step.docker.b: exit code 3 in 5ms',
        'Job 9 failed: boom',
        '',
      ].join('\n'),
    );
  });
});

describe('progress line', () => {
  it('shows the running step with its elapsed time and erases itself before log text', () => {
    let screen = '';
    const stream = {
      isTTY: false,
      write: (s: string) => {
        screen += s;
        return true;
      },
    } as unknown as NodeJS.WriteStream;
    let t = Date.parse('2026-01-01T00:00:10Z');
    const line = createProgressLine(stream, () => t);
    line.entry({
      entryId: 1,
      key: 'step.docker.build',
      command: null,
      startTime: '2026-01-01T00:00:00Z',
      exitCode: null,
      durationMs: null,
    });
    line.write('stdout: compiling\n');
    expect(screen).toBe('stdout: compiling\n… step.docker.build running for 10.0s');
    t += 2000;
    line.write('stdout: linking\n');
    expect(screen.endsWith('\r\x1b[Kstdout: linking\n… step.docker.build running for 12.0s')).toBe(true);
    line.entry({
      entryId: 1,
      key: 'step.docker.build',
      command: null,
      startTime: '',
      exitCode: 0,
      durationMs: 12000,
    });
    line.write('done\n');
    expect(screen.endsWith('\r\x1b[Kdone\n')).toBe(true);
    line.stop();
  });
});
