/**
 * A fake log sink standing in for the server's log endpoints: it records every call and keeps each
 * entry's text as a server would (full snapshots replace, appends apply at their byte offset).
 */
import type { LogSink, WireLogEntry } from '../../../src/executor/logs/types.js';

export interface SinkCall {
  kind: 'add' | 'update' | 'append';
  id: number;
  at: number;
  entry?: WireLogEntry;
  offset?: number;
  out?: string;
  fields?: { exitCode?: number; durationMs?: number };
}

export interface FakeLogSink extends LogSink {
  calls: SinkCall[];
  /** Server-side view: entry id -> stored entry (out reconstructed from snapshots or appends). */
  stored: Map<number, WireLogEntry>;
  /** Return an Error to fail that call (checked before the call is applied). */
  failWhen?: (call: SinkCall) => Error | undefined;
  /** Awaited before an add resolves (to hold adds back). */
  addGate?: (entry: WireLogEntry) => Promise<void>;
}

/** `keepBodies: false` records calls without their text (for tests that measure memory). */
export function createFakeLogSink(opts: { append?: boolean; keepBodies?: boolean } = {}): FakeLogSink {
  let nextId = 1;
  const body = (e: WireLogEntry): WireLogEntry =>
    opts.keepBodies === false
      ? { ...e, out: `<${Buffer.byteLength(e.out ?? '')} bytes>` }
      : structuredClone(e);
  const sink: FakeLogSink = {
    calls: [],
    stored: new Map(),
    async add(entry) {
      const id = nextId++;
      const call: SinkCall = { kind: 'add', id, at: performance.now(), entry: body(entry) };
      sink.calls.push(call);
      if (sink.addGate) await sink.addGate(entry);
      const err = sink.failWhen?.(call);
      if (err) throw err;
      sink.stored.set(id, structuredClone(entry));
      return id;
    },
    async update(id, entry) {
      const call: SinkCall = { kind: 'update', id, at: performance.now(), entry: body(entry) };
      sink.calls.push(call);
      const err = sink.failWhen?.(call);
      if (err) throw err;
      sink.stored.set(id, structuredClone(entry));
    },
  };
  if (opts.append) {
    sink.append = async (id, offset, bytes, fields) => {
      // Copied at once: the logger reuses the buffer when this returns (LogSink.append).
      const add = Buffer.from(bytes);
      const call: SinkCall = {
        kind: 'append',
        id,
        at: performance.now(),
        offset,
        out: opts.keepBodies === false ? '' : add.toString('utf8'),
        fields: { ...fields },
      };
      sink.calls.push(call);
      const err = sink.failWhen?.(call);
      if (err) throw err;
      const e = sink.stored.get(id);
      if (!e) throw new Error(`append to unknown entry ${id}`);
      const have = Buffer.from(e.out ?? '', 'utf8');
      if (offset > have.length) throw new Error(`gap: offset ${offset} > ${have.length}`);
      // Idempotent: bytes already stored at [offset, have.length) are kept; only the rest is added.
      const merged = Buffer.concat([have, add.subarray(have.length - offset)]);
      e.out = merged.toString('utf8');
      if (fields.exitCode !== undefined) e.exitCode = fields.exitCode;
      if (fields.durationMs !== undefined) e.durationMs = fields.durationMs;
    };
  }
  return sink;
}
