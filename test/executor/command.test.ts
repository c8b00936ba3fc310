import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_GRACE_MS, hostEnv, runCommand } from '../../src/executor/command.js';
import { createJobLogger } from '../../src/executor/logs/job-logger.js';
import { createRedactor } from '../../src/executor/logs/redactor.js';
import { createMemoryLogger } from '../../src/lib/logger.js';
import { waitFor } from '../helpers/env.js';
import { createFakeLogSink } from './logs/fake-log-sink.js';

function setup() {
  const sink = createFakeLogSink();
  const logger = createJobLogger({
    sink,
    redactor: createRedactor({ 'pa55word-xyz': 'SECRET_REMOVED' }),
    maxOutputBytes: 1 << 20,
    syncIntervalMs: 20,
    logger: createMemoryLogger(),
  });
  const entries = async () => {
    await logger.flush();
    return [...sink.stored.values()];
  };
  return { sink, logger, entries };
}

/** True when the pid is gone or a zombie (killed, waiting to be reaped by whoever adopted it). */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

describe('runCommand', () => {
  it('logs argv (redacted), stdout and stderr lines, and the exit code', async () => {
    const { logger, entries } = setup();
    const res = await runCommand({
      key: 'step.test',
      argv: ['sh', '-c', 'echo out1; echo err1 >&2; echo "pw=$0"; exit 7', 'pa55word-xyz'],
      env: { PATH: process.env.PATH ?? '' },
      logger,
    });
    expect(res).toEqual({ exitCode: 7 });
    const [e] = await entries();
    expect(e!.key).toBe('step.test');
    expect(e!.command).toEqual([
      'sh',
      '-c',
      'echo out1; echo err1 >&2; echo "pw=$0"; exit 7',
      'SECRET_REMOVED',
    ]);
    expect(e!.exitCode).toBe(7);
    expect(e!.out).toContain('stdout: out1\n');
    expect(e!.out).toContain('stderr: err1\n');
    expect(e!.out).toContain('stdout: pw=SECRET_REMOVED\n');
    expect(typeof e!.durationMs).toBe('number');
  });

  it('passes only the given environment, the cwd and stdin', async () => {
    const { logger, entries } = setup();
    const cwd = process.cwd();
    const res = await runCommand({
      key: 'k',
      argv: ['sh', '-c', 'echo "env=$(env | sort | tr "\\n" ,)"; pwd; cat'],
      env: { PATH: process.env.PATH ?? '', ONLY: 'this' },
      cwd,
      stdin: 'from stdin\n',
      logger,
    });
    expect(res.exitCode).toBe(0);
    const out = (await entries())[0]!.out!;
    expect(out).toMatch(/stdout: env=(.*,)?ONLY=this,/);
    expect(out).not.toContain('HOME=');
    expect(out).toContain(`stdout: ${cwd}\n`);
    expect(out).toContain('stdout: from stdin\n');
  });

  it('reports a command that cannot start in its entry, with exit code -1', async () => {
    const { logger, entries } = setup();
    const res = await runCommand({ key: 'k', argv: ['/nonexistent/binary-xyz'], env: {}, logger });
    expect(res.exitCode).toBe(-1);
    expect(res.error).toMatch(/^starting command: .*ENOENT/);
    const [e] = await entries();
    expect(e!.exitCode).toBe(-1);
    expect(e!.out).toMatch(/starting command: .*ENOENT/);
  });

  it('on abort, sends SIGTERM to the whole process group', async () => {
    // Far longer than a loaded machine needs to deliver SIGTERM, so only SIGTERM can end it in time.
    const GRACE_MS = 30_000;
    const { logger, sink } = setup();
    const ac = new AbortController();
    const p = runCommand({
      key: 'k',
      argv: ['sh', '-c', 'sleep 60 & echo "child=$!"; wait'],
      env: { PATH: process.env.PATH ?? '' },
      logger,
      signal: ac.signal,
      graceMs: GRACE_MS,
    });
    const grandchild = await waitFor(
      () => {
        for (const e of sink.stored.values()) {
          const m = /child=(\d+)/.exec(e.out ?? '');
          if (m) return Number(m[1]);
        }
        return undefined;
      },
      { what: 'grandchild pid' },
    );
    expect(gone(grandchild)).toBe(false);
    const t0 = Date.now();
    ac.abort(new Error('canceled'));
    const res = await p;
    // Before the SIGKILL fallback could have fired: SIGTERM ended the group, grandchild included.
    expect(Date.now() - t0).toBeLessThan(GRACE_MS / 2);
    expect(res.exitCode).toBe(-1);
    await waitFor(() => gone(grandchild), { what: 'grandchild to die', timeoutMs: GRACE_MS / 2 });
  });

  it('sends SIGKILL after graceMs to a group that ignores SIGTERM', async () => {
    const { logger, sink } = setup();
    const ac = new AbortController();
    const graceMs = 300;
    const p = runCommand({
      key: 'k',
      argv: ['sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 0.05; done'],
      env: { PATH: process.env.PATH ?? '' },
      logger,
      signal: ac.signal,
      graceMs,
    });
    await waitFor(() => [...sink.stored.values()].some((e) => e.out?.includes('ready')), { what: 'ready' });
    const t0 = Date.now();
    ac.abort(new Error('timeout'));
    const res = await p;
    const elapsed = Date.now() - t0;
    expect(res.exitCode).toBe(-1);
    expect(elapsed).toBeGreaterThanOrEqual(graceMs - 5);
    // After this grace, not the default one; the gap between them is the slack a loaded machine needs.
    expect(elapsed).toBeLessThan(DEFAULT_GRACE_MS);
  });

  it('does not start when the signal is already aborted', async () => {
    const { logger, entries } = setup();
    const ac = new AbortController();
    ac.abort(new Error('shutting down'));
    const res = await runCommand({ key: 'k', argv: ['true'], env: {}, logger, signal: ac.signal });
    expect(res.exitCode).toBe(-1);
    expect((await entries())[0]!.out).toContain('shutting down');
  });
});

describe('hostEnv', () => {
  it('has HOME, PATH, USER and DOCKER_HOST (empty when unset), then the extras', () => {
    const saved = process.env.DOCKER_HOST;
    delete process.env.DOCKER_HOST;
    try {
      const env = hostEnv({ GIT_TERMINAL_PROMPT: '0' });
      expect(Object.keys(env)).toEqual(['HOME', 'PATH', 'USER', 'DOCKER_HOST', 'GIT_TERMINAL_PROMPT']);
      expect(env.DOCKER_HOST).toBe('');
      expect(env.PATH).toBe(process.env.PATH);
      expect(env.GIT_TERMINAL_PROMPT).toBe('0');
    } finally {
      if (saved !== undefined) process.env.DOCKER_HOST = saved;
    }
  });
});
