/**
 * A multi-line secret as one block: its lines, each of which must appear as it is, and between two
 * lines a gap that matches any run of whitespace (space, tab, LF, VT, FF, CR) of 1 to `maxGaps[i]`
 * bytes. So the value is found whatever line endings it is printed with: LF, CRLF, CR CR LF, a
 * space or tab in place of each line break, or runs of these.
 *
 * The gap is bounded so that a stream redactor knows how much it must hold back: at most
 * MAX_GAP_BYTES_PER_LINE_BREAK bytes for each line break the secret has there (or the secret's own
 * whitespace run there, when that is longer). A block printed with longer runs between its lines
 * is not matched as a block (its long lines still are, on their own).
 *
 * Whitespace at either end of the value is not part of the block, so a secret that ends with a
 * newline leaves the line break that follows it in the output where it was.
 */
import type { Buffer } from 'node:buffer';

/** Bytes of whitespace a gap may have per line break of the secret; see the module comment. */
export const MAX_GAP_BYTES_PER_LINE_BREAK = 64;

export interface SecretBlock {
  /** Non-empty, no whitespace at either end, no line break inside; empty for a blank value. */
  readonly lines: readonly string[];
  /** maxGaps[i]: the most whitespace bytes matched between lines[i] and lines[i + 1]. */
  readonly maxGaps: readonly number[];
}

/** The block compiled to UTF-8, for the byte stream redactor. */
export interface ByteBlock {
  readonly segs: readonly Buffer[];
  readonly maxGaps: readonly number[];
  /** The longest match: every line and every gap at its bound. */
  readonly maxBytes: number;
}

const WHITESPACE_RUN = /[ \t\n\v\f\r]+/g;
const LINE_BREAK = /\r\n|\r|\n/g;
const EDGE_WHITESPACE = /^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g;

export function hasLineBreak(value: string): boolean {
  return value.includes('\n') || value.includes('\r');
}

/** The value without whitespace at either end: what a block of it replaces when printed as is. */
export function trimSecret(value: string): string {
  return value.replace(EDGE_WHITESPACE, '');
}

/**
 * Splits a value at its whitespace runs that hold a line break. A run without a line break (the
 * spaces inside a line) stays part of its line.
 */
export function secretBlock(value: string): SecretBlock {
  const core = trimSecret(value);
  if (core === '') return { lines: [], maxGaps: [] };
  const lines: string[] = [];
  const maxGaps: number[] = [];
  let lineStart = 0;
  for (const run of core.matchAll(WHITESPACE_RUN)) {
    const breaks = run[0].match(LINE_BREAK)?.length ?? 0;
    if (breaks === 0) continue;
    lines.push(core.slice(lineStart, run.index));
    maxGaps.push(Math.max(run[0].length, breaks * MAX_GAP_BYTES_PER_LINE_BREAK));
    lineStart = run.index + run[0].length;
  }
  lines.push(core.slice(lineStart));
  return { lines, maxGaps };
}

/** The block's longest match in chars (whitespace is one byte, one char). */
export function blockMaxLength(block: SecretBlock): number {
  let n = 0;
  for (const l of block.lines) n += l.length;
  for (const g of block.maxGaps) n += g;
  return n;
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A regular expression source that matches the block (lines start and end with non-whitespace). */
export function blockRegExpSource(block: SecretBlock): string {
  let source = escapeRegExp(block.lines[0]!);
  for (let i = 1; i < block.lines.length; i++) {
    source += `[ \\t\\n\\v\\f\\r]{1,${block.maxGaps[i - 1]}}${escapeRegExp(block.lines[i]!)}`;
  }
  return source;
}

function isSpaceCode(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/** Length of the block's match at text[at], or 0 when there is none. */
export function matchBlockText(block: SecretBlock, text: string, at: number): number {
  let i = at;
  for (let k = 0; k < block.lines.length; k++) {
    if (k > 0) {
      const gapStart = i;
      const limit = Math.min(text.length, i + block.maxGaps[k - 1]!);
      while (i < limit && isSpaceCode(text.charCodeAt(i))) i++;
      // A line starts with non-whitespace, so a longer run than the bound cannot be followed by it.
      if (i === gapStart) return 0;
    }
    if (!text.startsWith(block.lines[k]!, i)) return 0;
    i += block.lines[k]!.length;
  }
  return i - at;
}

export function compileByteBlock(block: SecretBlock, encode: (s: string) => Buffer): ByteBlock {
  const segs = block.lines.map(encode);
  let maxBytes = 0;
  for (const s of segs) maxBytes += s.length;
  for (const g of block.maxGaps) maxBytes += g;
  return { segs, maxGaps: block.maxGaps, maxBytes };
}

/**
 * The block's match at view[at]: its length; 0 when there is none; -1 when the view ends while
 * every byte so far agrees with the block (more bytes may complete it).
 */
export function matchBlockBytes(block: ByteBlock, view: Buffer, at: number): number {
  const end = view.length;
  let i = at;
  for (let k = 0; k < block.segs.length; k++) {
    if (k > 0) {
      const gapStart = i;
      const limit = i + block.maxGaps[k - 1]!;
      while (i < end && i < limit && isSpaceCode(view[i]!)) i++;
      if (i === end) return -1;
      if (i === gapStart) return 0;
    }
    const seg = block.segs[k]!;
    const n = Math.min(seg.length, end - i);
    if (view.compare(seg, 0, n, i, i + n) !== 0) return 0;
    if (n < seg.length) return -1;
    i += n;
  }
  return i - at;
}
