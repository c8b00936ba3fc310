/**
 * The executor's side of the server's log bounds, against a real queue server on loopback: it
 * shortens commands with a marker (to its own bound before sending, to a smaller server bound when
 * told), stops adding entries once the server refuses them, and says so once in the job's log,
 * without failing the job.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueueClient, type QueueClient } from '../../../src/executor/client/queue-client.js';
import { capCommand, MAX_COMMAND_BYTES } from '../../../src/executor/logs/command-cap.js';
import { createJobLogger } from '../../../src/executor/logs/job-logger.js';
import { createRedactor } from '../../../src/executor/logs/redactor.js';
import { createMemoryLogger } from '../../../src/lib/logger.js';
import { EXECUTOR_TOKEN, type Harness, startHarness } from '../../server/harness.js';
import { TELEMETRY } from '../harness.js';

const bytes = (argv: string[]) => argv.reduce((n, a) => n + Buffer.byteLength(a, 'utf8'), 0);

describe('capCommand', () => {
  it('keeps a command within the bound as it is', () => {
    const argv = ['sh', '-c', 'echo hi'];
    expect(capCommand(argv)).toBe(argv);
  });

  it('cuts at the bound between characters, ending with a marker that counts what was left out', () => {
    const argv = ['sh', '-c', 'é'.repeat(40_000), 'tail-arg'];
    const total = bytes(argv);
    const capped = capCommand(argv);
    expect(capped).toHaveLength(3);
    expect(bytes(capped)).toBeLessThanOrEqual(MAX_COMMAND_BYTES);
    const m = /… \[truncated (\d+) bytes\]$/.exec(capped[2]!);
    expect(m).not.toBeNull();
    const kept = capped[2]!.slice(0, -m![0].length);
    expect(kept).toBe('é'.repeat(kept.length));
    expect(Number(m![1])).toBe(total - bytes([...capped.slice(0, 2), kept]));
  });
});

describe('job logger against a server with small log bounds', () => {
  let h: Harness;
  let client: QueueClient;

  beforeAll(async () => {
    h = await startHarness({
      env: { EXECUTOR_SERVER_MAX_LOG_ENTRIES: '3', EXECUTOR_SERVER_MAX_LOG_COMMAND_BYTES: '1Ki' },
    });
    client = createQueueClient({
      frontendUrl: h.url,
      password: EXECUTOR_TOKEN,
      executorName: 'exec-logs',
      queueName: 'default',
      version: '5.3.0',
      telemetry: () => TELEMETRY,
      retry: { maxAttempts: 1, delayBaseMs: 1, delayMaxMs: 1, retryAfterMaxMs: 0, timeoutMs: 0 },
    });
    await client.heartbeat([]);
  });
  afterAll(async () => {
    await h?.close();
  });

  const started = async () => {
    const id = await h.submit({});
    const job = await client.dequeue();
    expect(job?.id).toBe(id);
    const logger = createMemoryLogger();
    const jl = createJobLogger({
      sink: client.logSink(job!),
      redactor: createRedactor({}),
      maxOutputBytes: 1 << 20,
      syncIntervalMs: 20,
      logger,
    });
    return { id, jl, logger };
  };

  it('stops adding entries at the server count and says so once at the end of the log', async () => {
    const { id, jl, logger } = await started();
    for (let i = 0; i < 5; i++) {
      const e = jl.entry(`step.docker.step.${i}`, ['echo', String(i)]);
      e.write('stdout', Buffer.from(`out ${i}\n`));
      e.close(0);
    }
    // Not an error of the job.
    await jl.flush();
    const entries = await h.store.getLogEntries(id, { withOutput: true });
    expect(entries.map((e) => e.key)).toEqual([
      'step.docker.step.0',
      'step.docker.step.1',
      'step.docker.step.2',
    ]);
    const all = entries.map((e) => e.out).join('');
    expect(all.split('the server refused further log entries')).toHaveLength(2);
    expect(entries[2]!.out).toMatch(
      /^stdout: out 2\n\n\[executor: the server refused further log entries \(this job attempt already has 3 log entries.*\); the output of later steps is not in this log\]\n$/,
    );
    expect(entries[2]!.exitCode).toBe(0);
    expect(logger.lines.filter((l) => l.includes('refuses further log entries'))).toHaveLength(1);
  });

  it('shortens a command to the bound the server names, with the marker', async () => {
    const { id, jl } = await started();
    const e = jl.entry('step.docker.step.0', ['sh', '-c', 'x'.repeat(5000)]);
    e.write('stdout', Buffer.from('ran\n'));
    e.close(0);
    await jl.flush();
    const [stored] = await h.store.getLogEntries(id, { withOutput: true });
    expect(stored!.out).toBe('stdout: ran\n');
    const command = stored!.command!;
    expect(command.slice(0, 2)).toEqual(['sh', '-c']);
    expect(bytes(command)).toBeLessThanOrEqual(1024);
    expect(bytes(command)).toBeGreaterThan(1000);
    expect(command[2]).toMatch(/^x+… \[truncated \d+ bytes\]$/);
  });
});
