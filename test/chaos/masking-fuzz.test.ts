/**
 * Masking fuzz: random secrets written by a job in random encodings (raw, base64 at every byte
 * alignment and URL-safe, URL-encoded, JSON-escaped, a line of a multi-line secret), split into
 * random chunks (also inside UTF-8 sequences), through the executor's real redactor and job logger,
 * the real queue client over HTTP, into a real server and store. Then no secret, in any of those
 * forms, may appear in the stored logs, the user API's answers, or the server's and the executor's
 * own log lines.
 *
 * Then multi-line secrets with lines of 1 to 7 chars among long ones, some ending with a newline,
 * printed with other line endings (CRLF, CR CR LF, spaces, tabs, mixed whitespace runs), each
 * case split in two at every byte: in the stored log each must be its placeholder alone, with the
 * text around it intact, the line break after it included.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueueClient } from '../../src/executor/client/queue-client.js';
import { createJobLogger } from '../../src/executor/logs/job-logger.js';
import { createRedactor } from '../../src/executor/logs/redactor.js';
import { createMemoryLogger } from '../../src/lib/logger.js';
import { type ChaosServer, startChaosServer } from './harness.js';
import { CHAOS_SEED, createRandom, publish, scaled } from './scale.js';

const CASES = scaled(5_000, 100_000);
const CASES_PER_JOB = 500;
/** Code points, not UTF-16 units: a lone surrogate is no text a job can print. */
const ALPHABET = Array.from(
  'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/+=%."\\ :@!é中😀',
);

/** A line of a multi-line secret: no whitespace, no marker char (« | »). */
const LINE_ALPHABET = ALPHABET.filter((c) => c !== ' ');
const WHITESPACE = [' ', '\t', '\r', '\n', '\v', '\f'];
/** How a case prints each line break of its secret; `i` numbers the breaks. */
const LINE_ENDINGS: Record<string, (random: () => number) => string> = {
  CRLF: () => '\r\n',
  'CR CR LF': () => '\r\r\n',
  spaces: (random) => ' '.repeat(1 + Math.floor(random() * 4)),
  tabs: (random) => '\t'.repeat(1 + Math.floor(random() * 3)),
  'mixed whitespace runs': (random) =>
    Array.from({ length: 1 + Math.floor(random() * 12) }, () => WHITESPACE[Math.floor(random() * 6)]).join(
      '',
    ),
  LF: () => '\n',
};

/** The lines of a multi-line secret as docs/security.md defines them (written apart from the redactor's). */
function secretLines(v: string): string[] {
  return v.replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, '').split(/[ \t\n\v\f\r]*[\r\n][ \t\n\v\f\r]*/);
}

/** The forms a reader could decode a secret from (computed independently of the redactor). */
function leakForms(secret: string): string[] {
  const b = Buffer.from(secret, 'utf8');
  const forms = new Set<string>([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)]);
  for (let off = 0; off < 3; off++) {
    const enc = Buffer.concat([Buffer.alloc(off), b]).toString('base64');
    // The chars fully determined by the secret's bits.
    const frag = enc.slice(Math.ceil((8 * off) / 6), Math.floor((8 * (off + b.length)) / 6));
    forms.add(frag);
    forms.add(frag.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return [...forms].filter((f) => f.length >= 6);
}

describe('masking fuzz', () => {
  let dir: string;
  let server: ChaosServer;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chaos-mask-'));
    server = await startChaosServer({ dir: join(dir, 'server') });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it(`${CASES} random secrets, splits and encodings: 0 leaks in stored logs, API answers and process logs`, async () => {
    const random = createRandom(CHAOS_SEED);
    const int = (n: number) => Math.floor(random() * n);
    const word = (min: number, max: number) =>
      Array.from({ length: min + int(max - min + 1) }, () => ALPHABET[int(ALPHABET.length)]).join('');
    const execLogger = createMemoryLogger();
    const client = createQueueClient({
      frontendUrl: server.url,
      password: server.executorsAccessToken,
      executorName: `mask-${CHAOS_SEED}`,
      queueName: 'chaos',
      version: '0.0.0+executor',
      telemetry: () => ({}) as never,
      logger: execLogger,
    });
    await client.ping();
    const allForms = new Map<string, string>();
    const jobIds: number[] = [];
    let cases = 0;
    let chunks = 0;
    while (cases < CASES) {
      const n = Math.min(CASES_PER_JOB, CASES - cases);
      const secrets: Record<string, string> = {};
      for (let s = 0; s < 4; s++) {
        // Long enough to be distinguishable from ordinary text; sometimes multi-line.
        const v = random() < 0.15 ? `${word(8, 20)}\n${word(8, 20)}` : word(8, 40);
        secrets[`S${s}`] = v;
      }
      await server.api.submit({
        queue: 'chaos',
        steps: [{ key: 'mask', image: 'executor-test/busybox:latest', run: 'true' }],
        secrets,
      } as never);
      const job = await client.dequeue();
      expect(job).not.toBeNull();
      jobIds.push(job!.id);
      for (const v of Object.values(secrets)) {
        for (const f of leakForms(v)) allForms.set(f, v);
        // A line of a multi-line secret is masked as it is (docs/security.md), not its encodings:
        // the lines of the value without whitespace at its ends, split where whitespace holds a
        // line break (a word may end with a space, which is then no part of its line).
        if (v.includes('\n')) for (const line of secretLines(v)) if (line.length >= 8) allForms.set(line, v);
      }
      const redactor = createRedactor({
        [server.executorsAccessToken]: 'SECRET_REMOVED',
        ...job!.redactedValues,
      });
      const jl = createJobLogger({
        sink: client.logSink(job!),
        redactor,
        maxOutputBytes: 64 * 1024 * 1024,
        syncIntervalMs: 50,
        logger: execLogger,
      });
      const entry = jl.entry('step.docker.mask', ['sh', '-c', `echo ${Object.values(secrets)[0]}`]);
      const values = Object.values(secrets);
      for (let c = 0; c < n; c++) {
        const v = values[int(values.length)]!;
        const bytes = Buffer.from(v, 'utf8');
        const kind = int(6);
        let enc: string;
        if (kind === 0) enc = v;
        else if (kind === 1) {
          // base64 of the secret inside a larger string, at a random byte alignment.
          const pre = Buffer.from(word(0, 5), 'utf8');
          enc = Buffer.concat([pre, bytes, Buffer.from(word(0, 5))]).toString('base64');
          if (random() < 0.5) enc = enc.replace(/\+/g, '-').replace(/\//g, '_');
        } else if (kind === 2) enc = encodeURIComponent(v);
        else if (kind === 3) enc = JSON.stringify(v).slice(1, -1);
        else if (kind === 4 && v.includes('\n')) enc = v.split('\n')[int(2)]!;
        else enc = `${word(0, 3)}${v}${word(0, 3)}`;
        const line = Buffer.from(`${word(0, 12)}${enc}${word(0, 12)}${random() < 0.8 ? '\n' : ''}`, 'utf8');
        // Random byte splits, also inside a UTF-8 sequence; one line goes to one stream, as a
        // process writes it.
        const stream = random() < 0.7 ? 'stdout' : 'stderr';
        let at = 0;
        while (at < line.length) {
          const len = 1 + int(Math.min(line.length - at, 1 + int(24)));
          entry.write(stream, line.subarray(at, at + len));
          at += len;
          chunks++;
        }
        cases++;
      }
      entry.close(0);
      await jl.flush();
      await client.markComplete(job!);
    }

    const leaks: string[] = [];
    const scan = (where: string, text: string) => {
      for (const [form, v] of allForms) {
        if (text.includes(form)) {
          leaks.push(`${where}: ${JSON.stringify(form)} (of ${JSON.stringify(v)})`);
          return;
        }
      }
    };
    let storedBytes = 0;
    for (const id of jobIds) {
      const entries = await server.store.getLogEntries(id, { withOutput: true });
      for (const e of entries) {
        storedBytes += (e.out ?? '').length;
        scan(`store job ${id} ${e.key}`, `${e.out ?? ''}\n${JSON.stringify(e.command)}`);
      }
      const res = await fetch(`${server.url}/api/v1/jobs/${id}/logs`, {
        headers: { authorization: `Bearer ${server.apiToken}` },
      });
      expect(res.status).toBe(200);
      scan(`API logs of job ${id}`, await res.text());
      const job = await fetch(`${server.url}/api/v1/jobs/${id}`, {
        headers: { authorization: `Bearer ${server.apiToken}` },
      });
      scan(`API job ${id}`, await job.text());
    }
    scan('server log', server.logLines.join('\n'));
    scan('executor log', execLogger.lines.join('\n'));
    publish('masking fuzz', {
      cases,
      chunks,
      jobs: jobIds.length,
      storedBytes,
      leaks: leaks.length,
    });
    expect(leaks.slice(0, 10)).toEqual([]);
    // The output did arrive (a store with nothing in it would pass the leak check trivially).
    expect(storedBytes).toBeGreaterThan(cases * 10);
  }, 1_800_000);

  it('multi-line secrets with other line endings, split at every byte: each is its placeholder, the text around it intact', async () => {
    const random = createRandom(CHAOS_SEED + 1);
    const int = (n: number) => Math.floor(random() * n);
    const line = (min: number, max: number) =>
      Array.from({ length: min + int(max - min + 1) }, () => LINE_ALPHABET[int(LINE_ALPHABET.length)]).join(
        '',
      );
    const execLogger = createMemoryLogger();
    const client = createQueueClient({
      frontendUrl: server.url,
      password: server.executorsAccessToken,
      executorName: `mask-lines-${CHAOS_SEED}`,
      queueName: 'chaos',
      version: '0.0.0+executor',
      telemetry: () => ({}) as never,
      logger: execLogger,
    });
    await client.ping();
    /** Case id -> the text its stored region must be. */
    const expected = new Map<number, { jobId: number; region: string; secret: string }>();
    const perForm = new Map<string, number>();
    let id = 0;
    for (let j = 0; j < scaled(2, 20); j++) {
      const secrets: Record<string, string> = {};
      for (let s = 0; s < 4; s++) {
        // 2 to 6 lines, at least one long; the others of 1 to 7 chars; some end with a newline.
        const lines = Array.from({ length: 2 + int(5) }, () => (random() < 0.6 ? line(1, 7) : line(8, 24)));
        lines[int(lines.length)] = line(8, 24);
        secrets[`L${s}`] = `${lines.join(random() < 0.5 ? '\n' : '\r\n')}${['', '\n', '\r\n'][int(3)]}`;
      }
      await server.api.submit({
        queue: 'chaos',
        steps: [{ key: 'mask', image: 'executor-test/busybox:latest', run: 'true' }],
        secrets,
      } as never);
      const job = await client.dequeue();
      expect(job).not.toBeNull();
      const redactor = createRedactor({
        [server.executorsAccessToken]: 'SECRET_REMOVED',
        ...job!.redactedValues,
      });
      const jl = createJobLogger({
        sink: client.logSink(job!),
        redactor,
        maxOutputBytes: 64 * 1024 * 1024,
        syncIntervalMs: 50,
        logger: execLogger,
      });
      const entry = jl.entry('step.docker.mask', null);
      for (const secret of Object.values(secrets)) {
        const placeholder = job!.redactedValues[secret]!;
        const lines = secret.split(/\r\n|\n/);
        const endsWithNewline = lines.at(-1) === '';
        if (endsWithNewline) lines.pop();
        for (const [form, lineBreak] of Object.entries(LINE_ENDINGS)) {
          const printed = lines.join(lineBreak(random));
          // The secret's own trailing newline, printed the same way, then the rest of the line.
          const tail = endsWithNewline ? lineBreak(random) : '';
          for (let at = 0; ; at++) {
            const text = Buffer.from(`«${id}|${printed}${tail}|${id}»\n`, 'utf8');
            if (at > text.length) break;
            entry.write('stdout', text.subarray(0, at));
            entry.write('stdout', text.subarray(at));
            // As the log stores it: a CR before a newline dropped, each new line prefixed.
            const region = `${placeholder}${tail}`.replace(/\r\n/g, '\n').replace(/\n/g, '\nstdout: ');
            expected.set(id, { jobId: job!.id, region, secret });
            perForm.set(form, (perForm.get(form) ?? 0) + 1);
            id++;
          }
        }
      }
      entry.close(0);
      await jl.flush();
      await client.markComplete(job!);
    }

    const stored = new Map<number, string>();
    for (const jobId of new Set([...expected.values()].map((e) => e.jobId))) {
      const entries = await server.store.getLogEntries(jobId, { withOutput: true });
      stored.set(jobId, entries.map((e) => e.out ?? '').join('\n'));
    }
    const wrong: string[] = [];
    for (const [n, { jobId, region, secret }] of expected) {
      const out = stored.get(jobId)!;
      const start = out.indexOf(`«${n}|`);
      const end = out.indexOf(`|${n}»`, start);
      const got = start === -1 || end === -1 ? '(case missing)' : out.slice(start + `«${n}|`.length, end);
      if (got !== region) wrong.push(`case ${n} of ${JSON.stringify(secret)}: ${JSON.stringify(got)}`);
    }
    publish('masking fuzz, multi-line secrets', {
      cases: expected.size,
      forms: Object.fromEntries(perForm),
      wrong: wrong.length,
    });
    expect(wrong.slice(0, 10)).toEqual([]);
    expect(expected.size).toBeGreaterThan(1000);
  }, 1_800_000);
});
