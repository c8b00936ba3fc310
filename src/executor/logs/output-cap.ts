/**
 * The per-job output cap `maxOutputBytes`: what of a job's output is kept, and where.
 *
 * Contracts:
 *   - The first half of the budget keeps the job's head; after that each open entry keeps a rolling
 *     tail inside what is left of the second half (tails of closed entries are committed and count
 *     against it). When bytes were dropped, an entry's text is head + marker + tail, the marker
 *     counting the bytes omitted. Memory is O(cap) whatever the output size.
 *   - Head output is copied into blocks of APPEND_CHUNK_BYTES shared by the job's entries, kept as
 *     parts (views) of at most that size; the tail is one circular buffer per entry, grown on demand
 *     up to the tail budget. The cut between head and tail and every drop from the tail fall between
 *     characters, and `omitted` counts the bytes exactly.
 *   - `open` an entry before its output is appended and `close` it once it has no more: from then
 *     on its tail is committed.
 */
import { Buffer } from 'node:buffer';
import { charBoundary, EMPTY } from './utf8.js';

/** Largest output of one append request (head parts are stored split to at most this size). */
export const APPEND_CHUNK_BYTES = 1 << 20;

export function truncationMarker(omittedBytes: number, capBytes: number): string {
  return `\n[... ${omittedBytes} bytes of output omitted: log limit of ${capBytes} bytes reached ...]\n`;
}

/** What the cap keeps of one entry's output. */
export interface CappedOutput {
  /** Head output in parts of at most APPEND_CHUNK_BYTES; with append, parts sent are emptied. */
  headParts: Buffer[];
  headBytes: number;
  /** Rolling tail: `ringBytes` bytes of `ring`, circular, from `ringStart`. */
  ring: Buffer;
  ringStart: number;
  ringBytes: number;
  /** Bytes dropped between head and tail. */
  omitted: number;
}

export interface OutputCap {
  /** The job's cap in bytes, as the marker states it. */
  readonly capBytes: number;
  open(e: CappedOutput): void;
  /** Adds output src[start, end), whole characters, to e's head while there is room, else its tail. */
  append(e: CappedOutput, src: Buffer, start: number, end: number): void;
  close(e: CappedOutput): void;
  /** e's output as text: head, then the marker when bytes were dropped, then the tail. */
  text(e: CappedOutput): string;
}

/** Byte i of e's tail. */
export function tailByteAt(e: CappedOutput, i: number): number {
  return e.ring[(e.ringStart + i) % e.ring.length]!;
}

/** Copies bytes [from, to) of e's tail to dst at `at`. */
export function copyTail(e: CappedOutput, from: number, to: number, dst: Buffer, at: number) {
  const size = e.ring.length;
  const a = (e.ringStart + from) % size;
  const first = Math.min(to - from, size - a);
  e.ring.copy(dst, at, a, a + first);
  if (first < to - from) e.ring.copy(dst, at + first, 0, to - from - first);
}

/** Lets go of e's head and tail text; `ringBytes` stays, since the job's tail budget still counts it. */
export function releaseOutput(e: CappedOutput) {
  e.headParts = [];
  e.ring = EMPTY;
  e.ringStart = 0;
}

/** Bytes [from, to) of the tail as a string (decoded in place unless they wrap around). */
function tailSlice(e: CappedOutput, from: number, to: number): string {
  if (to <= from || e.ring.length === 0) return '';
  const size = e.ring.length;
  const a = (e.ringStart + from) % size;
  const b = a + (to - from);
  if (b <= size) return e.ring.toString('utf8', a, b);
  return Buffer.concat([e.ring.subarray(a), e.ring.subarray(0, b - size)]).toString('utf8');
}

/** Drops n bytes from the front of the tail, then up to the next character start. */
function dropFront(e: CappedOutput, n: number) {
  let k = Math.min(n, e.ringBytes);
  while (k < e.ringBytes && (tailByteAt(e, k) & 0xc0) === 0x80) k++;
  if (k === 0) return;
  e.ringStart = e.ringBytes === k ? 0 : (e.ringStart + k) % e.ring.length;
  e.ringBytes -= k;
  e.omitted += k;
}

export function createOutputCap(maxOutputBytes: number): OutputCap {
  const capBytes = Math.max(0, Math.floor(maxOutputBytes));
  const headBudget = Math.floor(capBytes / 2);
  const tailBudget = capBytes - headBudget;
  let headUsed = 0;
  let committedTail = 0;
  const open = new Set<CappedOutput>();
  // Head parts are views of blocks of APPEND_CHUNK_BYTES, filled in turn (`headBlockUsed` bytes).
  let headBlock = EMPTY;
  let headBlockUsed = 0;

  /** Adds src[start, end) to e's tail, keeping it within the budget that other open tails leave. */
  const pushTail = (e: CappedOutput, src: Buffer, start: number, end: number) => {
    let others = 0;
    for (const o of open) if (o !== e) others += o.ringBytes;
    const limit = Math.max(0, tailBudget - committedTail - others);
    let from = start;
    if (end - start >= limit) {
      dropFront(e, e.ringBytes);
      from = end - limit;
      while (from < end && (src[from]! & 0xc0) === 0x80) from++;
      e.omitted += from - start;
    } else if (e.ringBytes + end - start > limit) {
      dropFront(e, e.ringBytes + end - start - limit);
    }
    const n = end - from;
    if (n === 0) return;
    const need = e.ringBytes + n;
    if (need > e.ring.length) {
      const grown = Buffer.allocUnsafeSlow(
        Math.min(tailBudget, Math.max(need, e.ring.length * 2, 64 * 1024)),
      );
      const size = e.ring.length;
      const first = Math.min(e.ringBytes, size - e.ringStart);
      e.ring.copy(grown, 0, e.ringStart, e.ringStart + first);
      if (first < e.ringBytes) e.ring.copy(grown, first, 0, e.ringBytes - first);
      e.ring = grown;
      e.ringStart = 0;
    }
    const size = e.ring.length;
    const at = (e.ringStart + e.ringBytes) % size;
    const first = Math.min(n, size - at);
    src.copy(e.ring, at, from, from + first);
    if (first < n) src.copy(e.ring, 0, from + first, from + n);
    e.ringBytes += n;
  };

  /** Copies src[start, end) to the head, in parts of whole characters in the shared blocks. */
  const pushHead = (e: CappedOutput, src: Buffer, start: number, end: number) => {
    e.headBytes += end - start;
    while (start < end) {
      if (headBlockUsed === headBlock.length) {
        headBlock = Buffer.allocUnsafeSlow(APPEND_CHUNK_BYTES);
        headBlockUsed = 0;
      }
      const room = headBlock.length - headBlockUsed;
      const k = end - start <= room ? end : charBoundary(src, start + room);
      if (k <= start) {
        headBlockUsed = headBlock.length; // no room for the next character: on to a new block
        continue;
      }
      src.copy(headBlock, headBlockUsed, start, k);
      e.headParts.push(headBlock.subarray(headBlockUsed, headBlockUsed + (k - start)));
      headBlockUsed += k - start;
      start = k;
    }
  };

  return {
    capBytes,
    open(e) {
      open.add(e);
    },
    append(e, src, start, end) {
      if (e.ringBytes === 0 && e.omitted === 0 && headUsed < headBudget) {
        const room = headBudget - headUsed;
        const k = end - start <= room ? end : charBoundary(src, start + room);
        if (k > start) pushHead(e, src, start, k);
        if (k === end) {
          headUsed += end - start;
          return;
        }
        headUsed = headBudget;
        start = k;
      }
      pushTail(e, src, start, end);
    },
    close(e) {
      open.delete(e);
      committedTail += e.ringBytes;
    },
    text: (e) =>
      Buffer.concat(e.headParts).toString('utf8') +
      (e.omitted > 0 ? truncationMarker(e.omitted, capBytes) : '') +
      tailSlice(e, 0, e.ringBytes),
  };
}
