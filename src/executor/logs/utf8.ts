/**
 * UTF-8 byte helpers of the job logger. Output stays bytes from the chunk to the request, and every
 * cut (a line buffer, a head block, the head/tail boundary, an append request) falls between
 * characters, so offsets count whole characters.
 */
import { Buffer } from 'node:buffer';

export const EMPTY = Buffer.alloc(0);

/** Largest k <= n such that buf[k] does not start inside a UTF-8 sequence. */
export function charBoundary(buf: Buffer, n: number): number {
  let k = Math.min(n, buf.length);
  while (k > 0 && k < buf.length && (buf[k]! & 0xc0) === 0x80) k--;
  return k;
}

/** Length of the UTF-8 sequence that `lead` starts (1 for a byte that starts none). */
export function sequenceLength(lead: number): number {
  if ((lead & 0xe0) === 0xc0) return 2;
  if ((lead & 0xf0) === 0xe0) return 3;
  if ((lead & 0xf8) === 0xf0) return 4;
  return 1;
}
