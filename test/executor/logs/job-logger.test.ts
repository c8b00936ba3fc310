import { StringDecoder } from 'node:string_decoder';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import {
  APPEND_CHUNK_BYTES,
  createJobLogger,
  MAX_PARTIAL_LINE_BYTES,
  truncationMarker,
} from '../../../src/executor/logs/job-logger.js';
import { createRedactor } from '../../../src/executor/logs/redactor.js';
import { createFakeClock } from '../../../src/lib/clock.js';
import { createMemoryLogger } from '../../../src/lib/logger.js';
import { waitFor } from '../../helpers/env.js';
import { createFakeLogSink, type SinkCall } from './fake-log-sink.js';

const SECRET = 'sup3r-s3cret-t0ken';

function setup(opts: { append?: boolean; cap?: number; intervalMs?: number } = {}) {
  const sink = createFakeLogSink({ append: opts.append });
  const clock = createFakeClock(Date.UTC(2026, 0, 2, 3, 4, 5));
  const logger = createMemoryLogger();
  const jl = createJobLogger({
    sink,
    redactor: createRedactor({ [SECRET]: 'SECRET_REMOVED' }),
    clock,
    maxOutputBytes: opts.cap ?? 1 << 20,
    syncIntervalMs: opts.intervalMs ?? 40,
    logger,
  });
  return { sink, clock, logger, jl };
}

describe('job logger: Sourcegraph update semantics', () => {
  it('adds the entry, then sends full snapshots at most once per interval, then a final one', async () => {
    const { sink, clock, jl } = setup({ intervalMs: 40 });
    const h = jl.entry('step.docker.0', ['docker', 'run', `--env=TOKEN=${SECRET}`]);
    await waitFor(() => sink.calls.length === 1, { what: 'add' });
    const add = sink.calls[0]!;
    expect(add.kind).toBe('add');
    expect(add.entry).toEqual({
      key: 'step.docker.0',
      command: ['docker', 'run', '--env=TOKEN=SECRET_REMOVED'],
      startTime: '2026-01-02T03:04:05.000Z',
      out: '',
    });

    h.write('stdout', 'first line\n');
    await waitFor(() => sink.calls.some((c) => c.kind === 'update'), { what: 'first update' });
    // A burst of writes while updates are in flight.
    const lines: string[] = ['stdout: first line\n'];
    for (let i = 0; i < 30; i++) {
      h.write(i % 2 ? 'stderr' : 'stdout', Buffer.from(`line ${i}\n`));
      lines.push(`${i % 2 ? 'stderr' : 'stdout'}: line ${i}\n`);
      if (i % 10 === 9) {
        const n = sink.calls.length;
        await waitFor(() => sink.calls.length > n, { what: 'an update after the burst' });
      }
    }
    clock.advance(1234);
    h.close(3);
    await jl.flush();

    const updates = sink.calls.filter((c) => c.kind === 'update');
    const final = updates.at(-1)!;
    expect(final.entry).toEqual({
      key: 'step.docker.0',
      command: ['docker', 'run', '--env=TOKEN=SECRET_REMOVED'],
      startTime: '2026-01-02T03:04:05.000Z',
      exitCode: 3,
      out: lines.join(''),
      durationMs: 1234,
    });
    // Every update is a full snapshot: a prefix of the final output, starting at its beginning.
    for (const u of updates) expect(lines.join('').startsWith(u.entry!.out!)).toBe(true);
    // Rate: consecutive non-final updates start at least one interval apart (the sink stamps its
    // call a moment after the logger stamps the send, hence the half millisecond).
    const timed = updates.slice(0, -1).map((u) => u.at);
    for (let i = 1; i < timed.length; i++) expect(timed[i]! - timed[i - 1]!).toBeGreaterThanOrEqual(39.5);
    expect(updates.length).toBeGreaterThanOrEqual(3);
  });

  it('buffers partial lines per stream, strips CR, and flushes them at close', async () => {
    const { sink, jl } = setup();
    const h = jl.entry('k', ['x']);
    h.write('stdout', 'par');
    h.write('stderr', 'err one\r\nerr ');
    h.write('stdout', 'tial\r\nnext');
    h.write('stderr', 'two');
    h.close(0);
    await jl.flush();
    expect([...sink.stored.values()][0]!.out).toBe(
      'stderr: err one\nstdout: partial\nstdout: next\nstderr: err two\n',
    );
  });

  it('decodes UTF-8 split across chunks', async () => {
    const { sink, jl } = setup();
    const h = jl.entry('k', null);
    const bytes = Buffer.from('héllo wörld\n');
    for (const b of bytes) h.write('stdout', Buffer.from([b]));
    h.close(0);
    await jl.flush();
    expect([...sink.stored.values()][0]!.out).toBe('stdout: héllo wörld\n');
  });

  it('never uploads a secret split across writes, at any offset', async () => {
    const { sink, jl } = setup();
    const text = `token is ${SECRET} ok\n`;
    for (let i = 0; i <= text.length; i++) {
      const h = jl.entry(`k${i}`, null);
      h.write('stdout', text.slice(0, i));
      h.write('stdout', text.slice(i));
      h.close(0);
    }
    await jl.flush();
    expect(JSON.stringify(sink.calls)).not.toContain(SECRET);
    for (const e of sink.stored.values()) expect(e.out).toBe('stdout: token is SECRET_REMOVED ok\n');
  });

  it('writeRaw appends redacted text without a prefix', async () => {
    const { sink, jl } = setup();
    const h = jl.entry('setup.fs.extras', null);
    h.writeRaw(`Wrote /ws/${SECRET} in 1ms\n`);
    h.close(0);
    await jl.flush();
    const e = [...sink.stored.values()][0]!;
    expect(e.command).toBeNull();
    expect(e.out).toBe('Wrote /ws/SECRET_REMOVED in 1ms\n');
  });

  it('adds entries in creation order even when an add is slow', async () => {
    const { sink, jl } = setup();
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    sink.addGate = (e) => (e.key === 'first' ? gate : Promise.resolve());
    jl.entry('first', null).close(0);
    jl.entry('second', null).close(0);
    await waitFor(() => sink.calls.length === 1, { what: 'first add' });
    // Give the second add every chance to overtake; it must not.
    await new Promise((r) => setImmediate(r));
    expect(sink.calls.map((c) => c.entry?.key)).toEqual(['first']);
    release();
    await jl.flush();
    expect(sink.calls.filter((c) => c.kind === 'add').map((c) => c.entry!.key)).toEqual(['first', 'second']);
  });

  it('flush throws when the final update fails, and retries failed intermediate updates', async () => {
    const { sink, jl, logger } = setup({ intervalMs: 10 });
    let failedIntermediate = 0;
    sink.failWhen = (c) => {
      if (c.kind !== 'update') return undefined;
      if (c.entry!.exitCode !== undefined) return new Error('HTTP 500');
      if (failedIntermediate++ === 0) return new Error('HTTP 503');
      return undefined;
    };
    const h = jl.entry('step.docker.build', null);
    await waitFor(() => sink.calls.length === 1, { what: 'add' });
    h.write('stdout', 'a\n');
    await waitFor(() => sink.calls.filter((c) => c.kind === 'update').length >= 2, {
      what: 'retried update',
    });
    const ok = sink.calls.filter((c) => c.kind === 'update')[1]!;
    expect(ok.entry!.out).toBe('stdout: a\n');
    h.close(1);
    await expect(jl.flush()).rejects.toThrow(/step\.docker\.build.*HTTP 500/);
    // Each failure is logged with the time since the sync loop's last successful request.
    const failures = logger.lines.map((l) => JSON.parse(l)).filter((r) => r.key === 'step.docker.build');
    expect(failures.map((r) => r.msg)).toEqual([
      'log entry update failed; retrying',
      'log entry final update failed',
    ]);
    for (const r of failures) expect(r.sinceLastSuccessMs).toBeGreaterThanOrEqual(0);
  });

  it('flush throws when an add failed', async () => {
    const { sink, jl } = setup();
    sink.failWhen = (c) => (c.kind === 'add' ? new Error('HTTP 404') : undefined);
    jl.entry('setup.git.init', ['git', 'init']).close(0);
    await expect(jl.flush()).rejects.toThrow(/setup\.git\.init.*HTTP 404/);
  });

  it('flush resolves when everything was delivered', async () => {
    const { sink, jl } = setup();
    const h = jl.entry('a', null);
    h.write('stdout', 'x\n');
    h.close(0);
    await expect(jl.flush()).resolves.toBeUndefined();
    expect([...sink.stored.values()][0]).toMatchObject({ exitCode: 0, out: 'stdout: x\n' });
  });
});

describe('job logger: log-append extension', () => {
  it('sends only new bytes with their byte offset; a retry resends from the same offset', async () => {
    const { sink, jl } = setup({ append: true, intervalMs: 10 });
    let failed: SinkCall | undefined;
    sink.failWhen = (c) => {
      if (c.kind === 'append' && !failed && (c.offset ?? 0) > 0) {
        failed = c;
        return new Error('HTTP 502');
      }
      return undefined;
    };
    const h = jl.entry('step.docker.0', null);
    const expected: string[] = [];
    for (let i = 0; i < 12; i++) {
      h.write('stdout', `ünïcode line ${i}\n`);
      expected.push(`stdout: ünïcode line ${i}\n`);
      const n = sink.calls.length;
      if (i % 3 === 2) await waitFor(() => sink.calls.length > n, { what: 'an append' });
    }
    h.close(0);
    await jl.flush();

    const appends = sink.calls.filter((c) => c.kind === 'append');
    expect(sink.calls.some((c) => c.kind === 'update')).toBe(false);
    expect(appends.length).toBeGreaterThanOrEqual(3);
    // Offsets are byte offsets: each successful append starts where the previous successful one ended.
    let offset = Buffer.byteLength(sink.calls[0]!.entry!.out ?? '');
    for (let i = 0; i < appends.length; i++) {
      const a = appends[i]!;
      expect(a.offset).toBe(offset);
      if (a === failed) {
        expect(appends[i + 1]!.offset).toBe(a.offset); // the retry repeats the offset
        continue;
      }
      offset += Buffer.byteLength(a.out!);
    }
    expect(failed).toBeDefined();
    const stored = [...sink.stored.values()][0]!;
    expect(stored.out).toBe(expected.join(''));
    expect(stored.exitCode).toBe(0);
    expect(appends.at(-1)!.fields).toMatchObject({ exitCode: 0 });
  });

  it('appends the marker and the tail only at close once the head is full', async () => {
    const cap = 400;
    const { sink, jl } = setup({ append: true, cap, intervalMs: 5 });
    const h = jl.entry('k', null);
    await waitFor(() => sink.calls.length === 1, { what: 'add' });
    for (let i = 0; i < 100; i++) h.write('stdout', `line ${String(i).padStart(3, '0')}\n`);
    // Let sync timers run: nothing past the head may be sent before close.
    await waitFor(() => sink.calls.length >= 2, { what: 'head append' });
    const beforeClose = sink.calls.length;
    await new Promise((r) => setTimeout(r, 30));
    expect(sink.calls.length).toBe(beforeClose);
    h.close(0);
    await jl.flush();
    const out = [...sink.stored.values()][0]!.out!;
    expect(out.startsWith('stdout: line 000\n')).toBe(true);
    expect(out.endsWith('stdout: line 099\n')).toBe(true);
    expect(out).toMatch(/\n\[\.\.\. \d+ bytes of output omitted: log limit of 400 bytes reached \.\.\.\]\n/);
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(cap + truncationMarker(99999, cap).length);
  });
});

describe('job logger: log-append in bounded requests', () => {
  /** Same output through an append-mode and a snapshot-mode logger; returns both sinks. */
  async function both(cap: number, feed: (h: ReturnType<ReturnType<typeof setup>['jl']['entry']>) => void) {
    const a = setup({ append: true, cap, intervalMs: 5 });
    const u = setup({ cap, intervalMs: 5 });
    for (const { jl } of [a, u]) {
      const h = jl.entry('step.docker.0', null);
      feed(h);
      h.close(7);
    }
    await Promise.all([a.jl.flush(), u.jl.flush()]);
    return { append: a.sink, update: u.sink };
  }

  // Lines of varying length with 2-byte characters, so chunk and ring edges fall inside characters.
  const feedLines = (total: number) => (h: { write(s: 'stdout' | 'stderr', c: Buffer | string): void }) => {
    let sent = 0;
    for (let i = 0; sent < total; i++) {
      const line = `${'ü'.repeat(i % 97)}${i}\n`;
      const chunk = line.repeat(300);
      h.write(i % 3 ? 'stdout' : 'stderr', Buffer.from(chunk));
      sent += Buffer.byteLength(chunk);
    }
  };

  it('sends head and final tail as appends of at most APPEND_CHUNK_BYTES, exit code on the last', async () => {
    const cap = 6 * APPEND_CHUNK_BYTES;
    const { append, update } = await both(cap, feedLines(20 * APPEND_CHUNK_BYTES));
    const stored = [...append.stored.values()][0]!;
    // The server ends up with exactly what the full-snapshot protocol stores.
    expect(stored.out).toBe([...update.stored.values()][0]!.out);
    expect(stored.out).toMatch(/bytes of output omitted: log limit of 6291456 bytes reached/);
    expect(stored.exitCode).toBe(7);
    const appends = append.calls.filter((c) => c.kind === 'append');
    const marker = truncationMarker(20 * APPEND_CHUNK_BYTES, cap).length;
    let offset = Buffer.byteLength(append.calls[0]!.entry!.out ?? '');
    for (const c of appends) {
      expect(c.offset).toBe(offset);
      expect(Buffer.byteLength(c.out!)).toBeLessThanOrEqual(APPEND_CHUNK_BYTES + marker);
      offset += Buffer.byteLength(c.out!);
    }
    // Marker and 3 MiB of tail, sent after close: at least 4 requests from the marker's on.
    const markerAt = appends.findIndex((c) => c.out!.includes('bytes of output omitted'));
    expect(markerAt).toBeGreaterThanOrEqual(0);
    expect(appends.length - markerAt).toBeGreaterThanOrEqual(4);
    expect(appends.at(-1)!.fields).toMatchObject({ exitCode: 7 });
    for (const c of appends.slice(0, -1)) expect(c.fields).toEqual({});
  });

  it('bounds the add and sends the rest after it when the entry closed before its add', async () => {
    // both() writes and closes synchronously: the add (a microtask later) finds the entry closed.
    const cap = 4 * APPEND_CHUNK_BYTES;
    const { append, update } = await both(cap, feedLines(10 * APPEND_CHUNK_BYTES));
    const add = append.calls[0]!;
    expect(add.kind).toBe('add');
    expect(Buffer.byteLength(add.entry!.out!)).toBeLessThanOrEqual(APPEND_CHUNK_BYTES);
    expect(add.entry!.exitCode).toBeUndefined();
    const stored = [...append.stored.values()][0]!;
    expect(stored.out).toBe([...update.stored.values()][0]!.out);
    expect(stored.exitCode).toBe(7);
    // The rest (3 MiB and the marker) in bounded appends: at least 3 of them.
    const appends = append.calls.filter((c) => c.kind === 'append');
    const marker = truncationMarker(10 * APPEND_CHUNK_BYTES, cap).length;
    for (const c of appends)
      expect(Buffer.byteLength(c.out!)).toBeLessThanOrEqual(APPEND_CHUNK_BYTES + marker);
    const rest = Buffer.byteLength(stored.out!) - Buffer.byteLength(add.entry!.out!);
    expect(rest).toBeGreaterThan(3 * APPEND_CHUNK_BYTES - 1024);
    expect(appends.length).toBeGreaterThanOrEqual(Math.ceil(rest / (APPEND_CHUNK_BYTES + marker)));
  });
});

describe('job logger: output cap', () => {
  it('keeps head and tail with a marker that counts the omitted bytes', async () => {
    const cap = 1000;
    const { sink, jl } = setup({ cap });
    const h = jl.entry('k', null);
    let total = 0;
    for (let i = 0; i < 500; i++) {
      const line = `line ${String(i).padStart(4, '0')}\n`;
      total += Buffer.byteLength(`stdout: ${line}`);
      h.write('stdout', line);
    }
    h.close(0);
    await jl.flush();
    const out = [...sink.stored.values()][0]!.out!;
    const m = /\n\[\.\.\. (\d+) bytes of output omitted: log limit of 1000 bytes reached \.\.\.\]\n/.exec(
      out,
    )!;
    expect(m).not.toBeNull();
    const head = out.slice(0, m.index);
    const tail = out.slice(m.index + m[0].length);
    expect(Buffer.byteLength(head)).toBe(cap / 2);
    expect(Buffer.byteLength(tail)).toBe(cap / 2);
    expect(Number(m[1])).toBe(total - cap);
    expect(head.startsWith('stdout: line 0000\n')).toBe(true);
    expect(tail.endsWith('stdout: line 0499\n')).toBe(true);
  });

  it('applies one budget across all entries of the job', async () => {
    const cap = 1000;
    const { sink, jl } = setup({ cap });
    const a = jl.entry('a', null);
    a.write('stdout', `${'x'.repeat(292)}\n`); // 300 bytes with the prefix
    a.close(0);
    const b = jl.entry('b', null);
    for (let i = 0; i < 200; i++) b.write('stderr', `${'y'.repeat(20)}\n`);
    b.close(0);
    const c = jl.entry('c', null);
    c.write('stdout', 'late\n');
    c.close(0);
    await jl.flush();
    const outs = [...sink.stored.values()].map((e) => e.out!);
    expect(outs[0]).toBe(`stdout: ${'x'.repeat(292)}\n`);
    const kept = outs.reduce((n, o) => n + Buffer.byteLength(o.replace(/\n\[\.\.\. .* \.\.\.\]\n/, '')), 0);
    expect(kept).toBeLessThanOrEqual(cap);
    expect(outs[1]).toMatch(/bytes of output omitted/);
    expect(outs[1]!.endsWith(`stderr: ${'y'.repeat(20)}\n`)).toBe(true);
  });

  it('stays bounded in memory while 50 MiB pass through a 1 MiB cap', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const cap = 1 << 20;
    const sink = createFakeLogSink({ keepBodies: false });
    const jl = createJobLogger({
      sink,
      redactor: createRedactor({ [SECRET]: 'SECRET_REMOVED' }),
      maxOutputBytes: cap,
      syncIntervalMs: 20,
      logger: createMemoryLogger(),
    });
    const chunk = Buffer.from(`${'0123456789abcdef'.repeat(7)}${SECRET}\n`.repeat(512)); // ~65 KiB
    const rounds = Math.ceil((50 << 20) / chunk.length);
    const h = jl.entry('step.docker.big', null);
    const used = () => {
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const before = used();
    let retained = 0;
    for (let i = 0; i < rounds; i++) {
      h.write(i % 2 ? 'stderr' : 'stdout', chunk);
      if (i % 100 === 99) {
        retained = Math.max(retained, used() - before);
        await new Promise((r) => setImmediate(r));
      }
    }
    retained = Math.max(retained, used() - before);
    h.close(0);
    await jl.flush();
    const out = [...sink.stored.values()][0]!.out!;
    expect(out).not.toContain(SECRET);
    expect(Buffer.byteLength(out)).toBeGreaterThanOrEqual(cap);
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(cap + truncationMarker(50 << 20, cap).length);
    const omitted = Number(/(\d+) bytes of output omitted/.exec(out)![1]);
    expect(omitted).toBeGreaterThan(45 << 20);
    // The logger holds at most the cap (head strings + tail buffers, ~2x as UTF-16) plus one chunk;
    // holding the output would take > 100 MiB.
    expect(retained).toBeLessThan(8 * cap);
  });
});

describe('job logger: output as bytes', () => {
  /**
   * What the logger must store for these chunks of one stream, computed the simple way: decode
   * with a StringDecoder, redact the whole text, split into lines (CR before LF dropped), prefix.
   */
  function expected(chunks: Buffer[], name = 'stdout'): string {
    const d = new StringDecoder('utf8');
    const text = chunks.map((c) => d.write(c)).join('') + d.end();
    const redacted = createRedactor({ [SECRET]: 'SECRET_REMOVED', [MULTI]: 'MULTI_REMOVED' }).redact(text);
    const lines = redacted.split('\n');
    const last = lines.pop()!;
    return (
      lines.map((l) => `${name}: ${l.endsWith('\r') ? l.slice(0, -1) : l}\n`).join('') +
      (last ? `${name}: ${last}\n` : '')
    );
  }
  const MULTI = 'mülti-bÿte-s€cret-😀';

  async function store(chunks: Buffer[], opts: { append?: boolean; cap?: number } = {}) {
    const sink = createFakeLogSink({ append: opts.append });
    const jl = createJobLogger({
      sink,
      redactor: createRedactor({ [SECRET]: 'SECRET_REMOVED', [MULTI]: 'MULTI_REMOVED' }),
      maxOutputBytes: opts.cap ?? 64 << 20,
      syncIntervalMs: 5,
      logger: createMemoryLogger(),
    });
    const h = jl.entry('k', null);
    for (const c of chunks) h.write('stdout', c);
    h.close(0);
    await jl.flush();
    return [...sink.stored.values()][0]!.out!;
  }

  it('splits inside 2-, 3- and 4-byte characters and inside secrets, at every offset', async () => {
    const input = Buffer.from(`é€😀 ${MULTI} and ${SECRET}\r\nnext ü\n`);
    const want = expected([input]);
    expect(want).toBe('stdout: é€😀 MULTI_REMOVED and SECRET_REMOVED\nstdout: next ü\n');
    for (let i = 0; i <= input.length; i++) {
      for (const append of [false, true]) {
        expect(await store([input.subarray(0, i), input.subarray(i)], { append }), `split at ${i}`).toBe(
          want,
        );
      }
    }
    expect(await store([...input].map((b) => Buffer.from([b])))).toBe(want);
  });

  it('replaces invalid UTF-8 as a StringDecoder does, wherever the chunks are cut (seeded)', async () => {
    let seed = 99;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    // Truncated and overlong sequences, stray continuation bytes, bytes that start nothing.
    const atoms = [
      [0x61],
      [0x0a],
      [0x0d],
      [0xc3, 0xbc],
      [0xe2, 0x82, 0xac],
      [0xf0, 0x9f, 0x98, 0x80],
      [0xc3],
      [0xe2, 0x82],
      [0xf0, 0x9f],
      [0x80],
      [0xbf],
      [0xc0, 0xaf],
      [0xe0, 0x80, 0x80],
      [0xff],
      [0xf8, 0x88],
    ];
    for (let round = 0; round < 200; round++) {
      const bytes: number[] = [];
      for (let i = rand(40); i > 0; i--) bytes.push(...atoms[rand(atoms.length)]!);
      const input = Buffer.from(bytes);
      const chunks: Buffer[] = [];
      for (let i = 0; i < input.length; ) {
        const n = 1 + rand(5);
        chunks.push(input.subarray(i, i + n));
        i += n;
      }
      expect(await store(chunks), JSON.stringify(bytes)).toBe(expected(chunks));
    }
  });

  it('counts append offsets in the bytes it sends when the output had invalid UTF-8', async () => {
    const { sink, jl } = setup({ append: true, intervalMs: 5 });
    const h = jl.entry('k', null);
    await waitFor(() => sink.calls.length === 1, { what: 'add' });
    // Each chunk but the last completes a line, so each goes out in an append of its own.
    const chunks = [
      [0x61, 0xff, 0x0a],
      [0x62, 0xe2, 0x82, 0x0a],
      [0xc0, 0xaf, 0x0a],
      [0xf0, 0x9f],
    ].map((b) => Buffer.from(b));
    for (const c of chunks.slice(0, -1)) {
      const n = sink.calls.length;
      h.write('stdout', c);
      await waitFor(() => sink.calls.length > n, { what: 'an append' });
    }
    h.write('stdout', chunks.at(-1)!);
    h.close(0);
    await jl.flush();
    let offset = 0;
    for (const c of sink.calls.filter((c) => c.kind === 'append')) {
      expect(c.offset).toBe(offset);
      offset += Buffer.byteLength(c.out!);
    }
    expect([...sink.stored.values()][0]!.out).toBe(expected(chunks));
    expect(expected(chunks)).toBe('stdout: a\ufffd\nstdout: b\ufffd\nstdout: \ufffd\ufffd\nstdout: \ufffd\n');
    expect(sink.calls.filter((c) => c.kind === 'append').length).toBeGreaterThanOrEqual(3);
  });

  it('keeps a lone CR, drops a CR before LF even when they arrive in two chunks', async () => {
    const chunks = ['a\r', '\nb\rc\r', '\n\r\n', 'end\r'].map((c) => Buffer.from(c));
    expect(await store(chunks)).toBe('stdout: a\nstdout: b\rc\nstdout: \nstdout: end\r\n');
  });

  it('prefixes every line of a chunk with many lines, across the line buffer', async () => {
    // 40,000 short lines in chunks of 50,000 bytes: far more prefixed output than one line buffer.
    const input = Buffer.from(Array.from({ length: 40_000 }, (_, i) => `${i % 3 ? 'ü' : ''}${i}\n`).join(''));
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += 50_000) chunks.push(input.subarray(i, i + 50_000));
    const got = await store(chunks);
    expect(got).toBe(expected(chunks));
    expect(got.split('\n').length).toBe(40_001);
  });

  it('keeps lines longer than the line buffer whole, and cuts a partial line past MAX_PARTIAL_LINE_BYTES', async () => {
    const long = `${'ü€'.repeat(30_000)}\n`; // 150,000 bytes
    const huge = 'x'.repeat(MAX_PARTIAL_LINE_BYTES + 100_000); // no newline
    const input = Buffer.from(long + huge);
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += 65_536) chunks.push(input.subarray(i, i + 65_536));
    const got = await store(chunks);
    const lines = got.split('\n');
    expect(lines[0]).toBe(`stdout: ${'ü€'.repeat(30_000)}`);
    // The partial line went out as a line once it passed the limit, the rest at close.
    expect(lines.length).toBe(4);
    expect(lines[1]!.length).toBeGreaterThan(MAX_PARTIAL_LINE_BYTES);
    expect(lines[1]!.length).toBeLessThanOrEqual(8 + MAX_PARTIAL_LINE_BYTES + 65_536);
    expect(`${lines[1]!.slice(8)}${lines[2]!.slice(8)}`).toBe(huge);
  });

  it('joins a surrogate pair split across two string writes', async () => {
    const { sink, jl } = setup();
    const h = jl.entry('k', null);
    h.write('stdout', 'a\ud83d');
    h.write('stdout', '\ude00b\n');
    h.close(0);
    await jl.flush();
    expect([...sink.stored.values()][0]!.out).toBe('stdout: a😀b\n');
  });

  it('cuts head and tail between characters and counts the omitted bytes exactly', async () => {
    const input = Buffer.from(Array.from({ length: 3000 }, (_, i) => `${'€'.repeat(i % 7)}${i}\n`).join(''));
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += 333) chunks.push(input.subarray(i, i + 333));
    const full = expected(chunks);
    for (const append of [false, true]) {
      const got = await store(chunks, { append, cap: 1001 });
      const m = /\n\[\.\.\. (\d+) bytes of output omitted: log limit of 1001 bytes reached \.\.\.\]\n/.exec(
        got,
      )!;
      const head = got.slice(0, m.index);
      const tail = got.slice(m.index + m[0].length);
      expect(full.startsWith(head)).toBe(true);
      expect(full.endsWith(tail)).toBe(true);
      expect(Buffer.byteLength(head)).toBeLessThanOrEqual(500);
      expect(Buffer.byteLength(head)).toBeGreaterThan(497);
      expect(Buffer.byteLength(head) + Number(m[1]) + Buffer.byteLength(tail)).toBe(Buffer.byteLength(full));
    }
  });
});
