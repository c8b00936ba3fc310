/**
 * The byte side of the redactor (redactor.ts builds the patterns): patterns compiled to UTF-8, the
 * streaming matcher that job output goes through, and the text stream on top of it.
 *
 * Contract of a stream: bytes leave in order, during the push that completed them or, at the
 * latest, at the next `release()`; at most `maxPatternBytes - 1` bytes are held, and only while
 * they could still begin a secret. A release masks the held bytes that could still become a secret
 * (one replacement for them) and keeps them, so that whatever completes that secret later is masked
 * too: the parse stays the one without releases, and only what lies under a mask differs.
 */
import { Buffer } from 'node:buffer';
import type { ByteSink, ByteStreamRedactor, StreamRedactor } from './redactor.js';
import { type ByteBlock, compileByteBlock, matchBlockBytes, type SecretBlock } from './secret-block.js';

/**
 * A byte stream is redacted in pieces of at most this many bytes, so its buffer stays this small
 * whatever the size of the chunks it is given (docker and child processes deliver at most 64 KiB).
 */
const PIECE_BYTES = 64 * 1024;

/**
 * The patterns as UTF-8 with their replacements: fixed strings longest first, and blocks (a
 * multi-line secret whose line breaks match whitespace runs, secret-block.ts), each indexed by
 * first byte. `maxPatternBytes` is the longest possible match of either.
 */
export interface BytePatterns {
  pats: Buffer[];
  reps: Buffer[];
  blocks: ByteBlock[];
  blockReps: Buffer[];
  maxPatternBytes: number;
  byFirstByte: number[][];
  blocksByFirstByte: number[][];
  /** 1 for a byte that some pattern or block starts with: most output bytes start nothing. */
  startBytes: Uint8Array;
}

/**
 * `sorted`: the fixed text patterns, longest first; `patterns`: pattern -> replacement; `blocks`:
 * the blocks with their replacements.
 */
export function compileBytePatterns(
  sorted: string[],
  patterns: Map<string, string>,
  blocks: ReadonlyArray<{ block: SecretBlock; replacement: string }> = [],
): BytePatterns {
  // The patterns as UTF-8, longest first (stable: among equal lengths, the order of `sorted`). A
  // pattern with a lone surrogate has no UTF-8 form of its own and is left out; its printed form
  // (U+FFFD in place of the surrogate) is a pattern of its own (redactor.ts registers it). The
  // same holds for a block with such a line.
  const byLength = sorted
    .map((p) => ({ bytes: Buffer.from(p, 'utf8'), replacement: Buffer.from(patterns.get(p)!, 'utf8') }))
    .filter((x, i) => x.bytes.toString('utf8') === sorted[i])
    .sort((a, b) => b.bytes.length - a.bytes.length);
  const pats = byLength.map((x) => x.bytes);
  const reps = byLength.map((x) => x.replacement);
  const printable = blocks.filter(({ block }) =>
    block.lines.every((l) => Buffer.from(l, 'utf8').toString('utf8') === l),
  );
  const byteBlocks = printable.map(({ block }) => compileByteBlock(block, (l) => Buffer.from(l, 'utf8')));
  const blockReps = printable.map(({ replacement }) => Buffer.from(replacement, 'utf8'));
  let maxPatternBytes = pats[0]?.length ?? 0;
  for (const b of byteBlocks) maxPatternBytes = Math.max(maxPatternBytes, b.maxBytes);
  const byFirstByte: number[][] = Array.from({ length: 256 }, () => []);
  for (const [k, p] of pats.entries()) byFirstByte[p[0]!]!.push(k);
  const blocksByFirstByte: number[][] = Array.from({ length: 256 }, () => []);
  for (const [k, b] of byteBlocks.entries()) blocksByFirstByte[b.segs[0]![0]!]!.push(k);
  const startBytes = new Uint8Array(256);
  for (let b = 0; b < 256; b++)
    startBytes[b] = byFirstByte[b]!.length + blocksByFirstByte[b]!.length > 0 ? 1 : 0;

  return {
    pats,
    reps,
    blocks: byteBlocks,
    blockReps,
    maxPatternBytes,
    byFirstByte,
    blocksByFirstByte,
    startBytes,
  };
}

/**
 * True when a match may start at view[i] once more bytes arrive: view[i..] is a proper prefix of
 * some fixed pattern, or agrees with a block so far, or is a whole block match (which a longer
 * pattern may still beat; only called in the last maxPatternBytes - 1 bytes, where every match is
 * held).
 */
function couldStartBytesAt(
  { pats, byFirstByte, blocks, blocksByFirstByte }: BytePatterns,
  view: Buffer,
  i: number,
): boolean {
  const rest = view.length - i;
  for (const k of byFirstByte[view[i]!]!) {
    const p = pats[k]!;
    if (p.length <= rest) continue;
    let j = 1;
    while (j < rest && p[j] === view[i + j]) j++;
    if (j === rest) return true;
  }
  for (const k of blocksByFirstByte[view[i]!]!) {
    if (matchBlockBytes(blocks[k]!, view, i) !== 0) return true;
  }
  return false;
}

/**
 * Where the block matches first in the view at or after `from` (its length goes to len[k]), or -1
 * when it does not. Before the end of the stream, a start that runs off the end of the view also
 * gives -1: it lies in the last maxPatternBytes - 1 bytes, and so does every later start, which the
 * tail check of the scan decides.
 */
function nextBlockAt(block: ByteBlock, view: Buffer, from: number, atEnd: boolean, len: number[], k: number) {
  const first = block.segs[0]!;
  for (let i = view.indexOf(first, from); i !== -1; i = view.indexOf(first, i + 1)) {
    const n = matchBlockBytes(block, view, i);
    if (n > 0) {
      len[k] = n;
      return i;
    }
    if (n < 0 && !atEnd) return -1;
  }
  return -1;
}

/**
 * The replacement of a pattern that view[i..] may still grow into once more bytes arrive (it is a
 * proper prefix of a fixed pattern, or a block agrees with it so far), or undefined when none.
 */
function growingAt(patterns: BytePatterns, view: Buffer, i: number): Buffer | undefined {
  const { pats, reps, byFirstByte, blocks, blockReps, blocksByFirstByte } = patterns;
  const rest = view.length - i;
  for (const k of byFirstByte[view[i]!]!) {
    const p = pats[k]!;
    if (p.length > rest && view.compare(p, 0, rest, i, view.length) === 0) return reps[k];
  }
  for (const k of blocksByFirstByte[view[i]!]!) {
    if (matchBlockBytes(blocks[k]!, view, i) === -1) return blockReps[k];
  }
  return undefined;
}

/** The longest match that lies whole in the view at view[i] (fixed patterns first on a tie). */
function longestMatchAt(
  patterns: BytePatterns,
  view: Buffer,
  i: number,
): { length: number; rep: Buffer } | undefined {
  const { pats, reps, byFirstByte, blocks, blockReps, blocksByFirstByte } = patterns;
  let length = 0;
  let rep: Buffer | undefined;
  for (const k of byFirstByte[view[i]!]!) {
    const p = pats[k]!;
    // Longest first: the first that matches is the longest.
    if (p.length <= view.length - i && view.compare(p, 0, p.length, i, i + p.length) === 0) {
      length = p.length;
      rep = reps[k];
      break;
    }
  }
  for (const k of blocksByFirstByte[view[i]!]!) {
    const n = matchBlockBytes(blocks[k]!, view, i);
    if (n > length) {
      length = n;
      rep = blockReps[k];
    }
  }
  return rep === undefined ? undefined : { length, rep };
}

/** Passes on view[from, to) but for its part in the first `masked` bytes, which a mask stands for. */
function passOn(view: Buffer, from: number, to: number, masked: number, sink: ByteSink) {
  const a = Math.max(from, masked);
  if (to > a) sink(view.subarray(a, to));
}

/**
 * Releases the held bytes `view` when they may wait no longer. Up to the first position whose
 * bytes could still grow into a match, everything is decided now and goes out as a scan would
 * send it once more bytes arrived: bytes no match can cover, and matches no longer one can beat,
 * replaced. From that position on, the rest goes out as one mask: the replacement of a pattern it
 * could become. The first `masked` bytes were masked by an earlier release, so nothing of them goes
 * out again (the output ends with their mask, which also stands for a rest masked now). Returns
 * where the masked rest starts: view.length when there is none.
 */
function releaseHeld(patterns: BytePatterns, view: Buffer, masked: number, sink: ByteSink): number {
  const { startBytes } = patterns;
  let pos = 0;
  for (let i = 0; i < view.length; i++) {
    if (startBytes[view[i]!] !== 1) continue;
    const mask = growingAt(patterns, view, i);
    if (mask) {
      passOn(view, pos, i, masked, sink);
      if (i >= masked) sink(mask);
      return i;
    }
    const m = longestMatchAt(patterns, view, i);
    if (m) {
      passOn(view, pos, i, masked, sink);
      if (i >= masked) sink(m.rep);
      pos = i + m.length;
      i = pos - 1;
    }
  }
  passOn(view, pos, view.length, masked, sink);
  return view.length;
}

export function byteStreamRedactor(patterns: BytePatterns, sink: ByteSink): ByteStreamRedactor {
  const { pats, reps, blocks, blockReps, maxPatternBytes, startBytes } = patterns;
  if (pats.length === 0 && blocks.length === 0) {
    return {
      push: (chunk) => {
        if (chunk.length > 0) sink(chunk);
      },
      end: () => {},
      release: () => {},
      holding: () => false,
    };
  }
  // Held bytes, then the piece being scanned; allocated at the first push, reused for every piece.
  let work = Buffer.alloc(0);
  let held = 0;
  /**
   * The first `masked` held bytes went out as a mask at a release: they are kept so that the rest
   * of their secret is found, but nothing of them or of a match starting in them goes out again.
   */
  let masked = 0;
  let ended = false;
  const nPats = pats.length;
  const count = nPats + blocks.length;
  /**
   * next[k]: where pattern k (fixed patterns, then blocks) occurs next in the piece at or after the
   * scan position, or -1; len[k]: the length of that match.
   */
  const next = new Array<number>(count).fill(-1);
  const len = pats.map((p) => p.length).concat(blocks.map(() => 0));

  /** Scans work[0, size): passes on what is final, keeps the rest at the front of work. */
  const scan = (size: number, atEnd: boolean) => {
    const view = work.subarray(0, size);
    for (let k = 0; k < nPats; k++) next[k] = pats[k]!.length <= size ? view.indexOf(pats[k]!, 0) : -1;
    for (let k = nPats; k < count; k++) next[k] = nextBlockAt(blocks[k - nPats]!, view, 0, atEnd, len, k);
    let pos = 0;
    let holdFrom = size;
    for (;;) {
      // Leftmost match; on a tie the longest (among fixed patterns the first).
      let best = -1;
      let at = size;
      for (let k = 0; k < count; k++) {
        const n = next[k]!;
        if (n !== -1 && (n < at || (n === at && len[k]! > len[best]!))) {
          at = n;
          best = k;
        }
      }
      if (best === -1) break;
      // A match is final only when every pattern starting at its position fits in the piece;
      // otherwise a longer pattern may still match there once more bytes arrive.
      if (!atEnd && at + maxPatternBytes > size) {
        holdFrom = at;
        break;
      }
      passOn(view, pos, at, masked, sink);
      if (at >= masked) sink(best < nPats ? reps[best]! : blockReps[best - nPats]!);
      pos = at + len[best]!;
      for (let k = 0; k < nPats; k++) {
        if (next[k] !== -1 && next[k]! < pos) next[k] = view.indexOf(pats[k]!, pos);
      }
      for (let k = nPats; k < count; k++) {
        if (next[k] !== -1 && next[k]! < pos)
          next[k] = nextBlockAt(blocks[k - nPats]!, view, pos, atEnd, len, k);
      }
    }
    if (!atEnd) {
      // Before a held match, or at the end: the first position whose tail may begin a pattern.
      // Positions earlier than (size - maxPatternBytes + 1) have room for every pattern, so the
      // search above has already decided them.
      for (let i = Math.max(pos, size - maxPatternBytes + 1); i < holdFrom; i++) {
        if (startBytes[view[i]!] === 1 && couldStartBytesAt(patterns, view, i)) {
          holdFrom = i;
          break;
        }
      }
    }
    holdFrom = Math.max(holdFrom, pos);
    passOn(view, pos, holdFrom, masked, sink);
    held = size - holdFrom;
    masked = Math.max(0, masked - holdFrom);
    if (held > 0) work.copy(work, 0, holdFrom, size);
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
    release() {
      if (ended || held <= masked) return;
      const from = releaseHeld(patterns, work.subarray(0, held), masked, sink);
      if (from > 0) work.copy(work, 0, from, held);
      held -= from;
      masked = held;
    },
    holding: () => held > masked,
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
    release(): string {
      bytes.release();
      return take();
    },
  };
}
