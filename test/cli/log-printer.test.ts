import { describe, expect, it } from 'vitest';
import { createLogPrinter } from '../../src/cli/client-commands.js';

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
