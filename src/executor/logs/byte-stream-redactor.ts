/**
 * The byte side of the redactor (redactor.ts builds the patterns): patterns compiled to UTF-8, the
 * streaming matcher that job output goes through, and the text stream on top of it.
 *
 * Contract of a stream: bytes leave in order, during the push that completed them; at most
 * `maxPatternBytes - 1` bytes are held, and only while they could still begin a secret.
 */
import { Buffer } from 'node:buffer';
import type { ByteSink, ByteStreamRedactor, StreamRedactor } from './redactor.js';

/**
 * A byte stream is redacted in pieces of at most this many bytes, so its buffer stays this small
 * whatever the size of the chunks it is given (docker and child processes deliver at most 64 KiB).
 */
const PIECE_BYTES = 64 * 1024;

/** The patterns as UTF-8 with their replacements, longest first, and an index by first byte. */
export interface BytePatterns {
  pats: Buffer[];
  reps: Buffer[];
  maxPatternBytes: number;
  byFirstByte: number[][];
}

/** `sorted`: the text patterns, longest first; `patterns`: pattern -> replacement. */
export function compileBytePatterns(sorted: string[], patterns: Map<string, string>): BytePatterns {
  // The patterns as UTF-8, longest first (stable: among equal lengths, the order of `sorted`). A
  // pattern with a lone surrogate has no UTF-8 form of its own and is left out; its printed form
  // (U+FFFD in place of the surrogate) is a pattern of its own (redactor.ts registers it).
  const byLength = sorted
    .map((p) => ({ bytes: Buffer.from(p, 'utf8'), replacement: Buffer.from(patterns.get(p)!, 'utf8') }))
    .filter((x, i) => x.bytes.toString('utf8') === sorted[i])
    .sort((a, b) => b.bytes.length - a.bytes.length);
  const pats = byLength.map((x) => x.bytes);
  const reps = byLength.map((x) => x.replacement);
  const maxPatternBytes = pats[0]?.length ?? 0;
  const byFirstByte: number[][] = Array.from({ length: 256 }, () => []);
  for (const [k, p] of pats.entries()) byFirstByte[p[0]!]!.push(k);

  return { pats, reps, maxPatternBytes, byFirstByte };
}

/** True when view[i..] is a proper prefix of some pattern (a match may start at i later). */
function couldStartBytesAt({ pats, byFirstByte }: BytePatterns, view: Buffer, i: number): boolean {
  const rest = view.length - i;
  for (const k of byFirstByte[view[i]!]!) {
    const p = pats[k]!;
    if (p.length <= rest) continue;
    let j = 1;
    while (j < rest && p[j] === view[i + j]) j++;
    if (j === rest) return true;
  }
  return false;
}

export function byteStreamRedactor(patterns: BytePatterns, sink: ByteSink): ByteStreamRedactor {
  const { pats, reps, maxPatternBytes } = patterns;
  if (pats.length === 0) {
    return {
      push: (chunk) => {
        if (chunk.length > 0) sink(chunk);
      },
      end: () => {},
    };
  }
  // Held bytes, then the piece being scanned; allocated at the first push, reused for every piece.
  let work = Buffer.alloc(0);
  let held = 0;
  let ended = false;
  /** next[k]: where pattern k occurs next in the piece at or after the scan position, or -1. */
  const next = new Array<number>(pats.length).fill(-1);

  /** Scans work[0, len): passes on what is final, keeps the rest at the front of work. */
  const scan = (len: number, atEnd: boolean) => {
    const view = work.subarray(0, len);
    for (let k = 0; k < pats.length; k++) {
      next[k] = pats[k]!.length <= len ? view.indexOf(pats[k]!, 0) : -1;
    }
    let pos = 0;
    let holdFrom = len;
    for (;;) {
      // Leftmost match; on a tie the longest, which comes first.
      let best = -1;
      let at = len;
      for (let k = 0; k < pats.length; k++) {
        const n = next[k]!;
        if (n !== -1 && n < at) {
          at = n;
          best = k;
        }
      }
      if (best === -1) break;
      // A match is final only when every pattern starting at its position fits in the piece;
      // otherwise a longer pattern may still match there once more bytes arrive.
      if (!atEnd && at + maxPatternBytes > len) {
        holdFrom = at;
        break;
      }
      if (at > pos) sink(view.subarray(pos, at));
      sink(reps[best]!);
      pos = at + pats[best]!.length;
      for (let k = 0; k < pats.length; k++) {
        if (next[k] !== -1 && next[k]! < pos) next[k] = view.indexOf(pats[k]!, pos);
      }
    }
    if (!atEnd) {
      // Before a held match, or at the end: the first position whose tail may begin a pattern.
      // Positions earlier than (len - maxPatternBytes + 1) have room for every pattern, so the
      // search above has already decided them.
      for (let i = Math.max(pos, len - maxPatternBytes + 1); i < holdFrom; i++) {
        if (couldStartBytesAt(patterns, view, i)) {
          holdFrom = i;
          break;
        }
      }
    }
    holdFrom = Math.max(holdFrom, pos);
    if (holdFrom > pos) sink(view.subarray(pos, holdFrom));
    held = len - holdFrom;
    if (held > 0) work.copy(work, 0, holdFrom, len);
  };

  return {
    push(chunk: Buffer) {
      if (ended) throw new Error('stream redactor used after end()');
      for (let a = 0; a < chunk.length; ) {
        // Pieces end on a character start (looking back at most 3 bytes), see push's contract.
        let b = Math.min(chunk.length, a + PIECE_BYTES);
        for (let i = 0; i < 3 && b < chunk.length && b > a + 1 && (chunk[b]! & 0xc0) === 0x80; i++) b--;
        // Held bytes are fewer than maxPatternBytes, so one piece always fits.
        if (work.length === 0) work = Buffer.allocUnsafeSlow(PIECE_BYTES + maxPatternBytes);
        chunk.copy(work, held, a, b);
        scan(held + (b - a), false);
        a = b;
      }
    },
    end() {
      if (ended) return;
      ended = true;
      scan(held, true);
      held = 0;
      work = Buffer.alloc(0);
    },
  };
}

/** A boundary-safe text stream over a byte stream redactor: text in, redacted text out. */
export function textStreamRedactor(createBytes: (sink: ByteSink) => ByteStreamRedactor): StreamRedactor {
  const out: Buffer[] = [];
  const bytes = createBytes((b) => out.push(Buffer.from(b)));
  const take = () => {
    const text = Buffer.concat(out).toString('utf8');
    out.length = 0;
    return text;
  };
  // A high surrogate at the end of a push waits for its low half, so a pair split across two
  // pushes is encoded as one character.
  let high = '';
  let ended = false;
  return {
    push(chunk: string): string {
      if (ended) throw new Error('stream redactor used after end()');
      let text = high + chunk;
      high = '';
      const last = text.charCodeAt(text.length - 1);
      if (last >= 0xd800 && last <= 0xdbff) {
        high = text.slice(-1);
        text = text.slice(0, -1);
      }
      bytes.push(Buffer.from(text, 'utf8'));
      return take();
    },
    end(): string {
      if (ended) return '';
      ended = true;
      if (high !== '') bytes.push(Buffer.from(high, 'utf8'));
      bytes.end();
      return take();
    },
  };
}
