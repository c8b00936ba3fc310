/**
 * JSON bodies with a string field given as UTF-8 bytes, so that a log append (up to 1 MiB of
 * output) goes out without ever becoming a JavaScript string: `JSON.stringify` of the text, and
 * the request encoding it back to bytes, made three copies of each append on the heap.
 */
import { Buffer } from 'node:buffer';

/** Bytes an escape adds: 1 for `\"`, `\\` and `\n`-like escapes, 5 for `\u00XX`; 0 for none. */
const EXTRA = new Uint8Array(256);
/** The char after the backslash of a two-char escape, or 0 for `\u00XX`. */
const SHORT = new Uint8Array(256);
for (let b = 0; b < 0x20; b++) EXTRA[b] = 5;
for (const [b, c] of [
  [0x08, 'b'],
  [0x09, 't'],
  [0x0a, 'n'],
  [0x0c, 'f'],
  [0x0d, 'r'],
  [0x22, '"'],
  [0x5c, '\\'],
] as const) {
  EXTRA[b] = 1;
  SHORT[b] = c.charCodeAt(0);
}
const HEX = Buffer.from('0123456789abcdef', 'latin1');

/**
 * `JSON.stringify({ ...fields, [key]: text })` as bytes, where `text` is `bytes`, valid UTF-8: the
 * same escapes as JSON.stringify (`"`, `\` and control characters; no lone surrogates can occur).
 */
export function jsonWithBytesField(fields: Record<string, unknown>, key: string, bytes: Buffer): Buffer {
  const rest = JSON.stringify(fields);
  const open = `${rest.length > 2 ? `${rest.slice(0, -1)},` : '{'}${JSON.stringify(key)}:"`;
  const n = bytes.length;
  let extra = 0;
  for (let i = 0; i < n; i++) extra += EXTRA[bytes[i]!]!;
  const openBytes = Buffer.byteLength(open, 'utf8');
  const body = Buffer.allocUnsafe(openBytes + n + extra + 2);
  body.write(open, 0, 'utf8');
  // The text is copied in once, behind the room its escapes take; then each run between escapes
  // moves up into place (no view object per run, which a copy per run would make).
  const raw = openBytes + extra;
  bytes.copy(body, raw);
  let o = openBytes;
  let from = 0;
  for (let i = 0; extra > 0 && i < n; i++) {
    const b = bytes[i]!;
    if (EXTRA[b] === 0) continue;
    if (i > from) body.copyWithin(o, raw + from, raw + i);
    o += i - from;
    body[o++] = 0x5c; // backslash
    if (SHORT[b]) {
      body[o++] = SHORT[b]!;
    } else {
      body[o++] = 0x75; // u
      body[o++] = 0x30;
      body[o++] = 0x30;
      body[o++] = HEX[b >> 4]!;
      body[o++] = HEX[b & 15]!;
    }
    from = i + 1;
  }
  if (n > from) body.copyWithin(o, raw + from, raw + n);
  o += n - from;
  body[o++] = 0x22; // "
  body[o] = 0x7d; // }
  return body;
}
