/**
 * JSON bodies with a string field given as UTF-8 bytes, so that a log append (up to 1 MiB of
 * output) goes out without ever becoming a JavaScript string: `JSON.stringify` of the text, and
 * the request encoding it back to bytes, made three copies of each append on the heap.
 */
import { Buffer } from 'node:buffer';

const BACKSLASH = 0x5c;
const QUOTE = 0x22;
/** The letter of a two-char escape (`\n`) of a control character, or 0 for `\u00XX`. */
const SHORT_ESCAPES = new Uint8Array(0x20);
SHORT_ESCAPES[0x08] = 0x62; // b
SHORT_ESCAPES[0x09] = 0x74; // t
SHORT_ESCAPES[0x0a] = 0x6e; // n
SHORT_ESCAPES[0x0c] = 0x66; // f
SHORT_ESCAPES[0x0d] = 0x72; // r
const HEX = Buffer.from('0123456789abcdef', 'latin1');

/**
 * `JSON.stringify({ ...fields, [key]: text })` as bytes, where `text` is `bytes`, valid UTF-8: the
 * same escapes as JSON.stringify (`"`, `\` and control characters; no lone surrogates can occur).
 */
export function jsonWithBytesField(fields: Record<string, unknown>, key: string, bytes: Buffer): Buffer {
  const rest = JSON.stringify(fields);
  const open = `${rest.length > 2 ? `${rest.slice(0, -1)},` : '{'}${JSON.stringify(key)}:"`;
  let size = Buffer.byteLength(open, 'utf8') + bytes.length + 2; // the closing `"}`
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === QUOTE || b === BACKSLASH) size += 1;
    else if (b < 0x20) size += SHORT_ESCAPES[b] ? 1 : 5;
  }
  const body = Buffer.allocUnsafe(size);
  let o = body.write(open, 0, 'utf8');
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b >= 0x20 && b !== QUOTE && b !== BACKSLASH) {
      body[o++] = b;
      continue;
    }
    body[o++] = BACKSLASH;
    if (b >= 0x20) {
      body[o++] = b;
    } else if (SHORT_ESCAPES[b]) {
      body[o++] = SHORT_ESCAPES[b]!;
    } else {
      body[o++] = 0x75; // u
      body[o++] = 0x30;
      body[o++] = 0x30;
      body[o++] = HEX[b >> 4]!;
      body[o++] = HEX[b & 15]!;
    }
  }
  body[o++] = QUOTE;
  body[o++] = 0x7d; // }
  return body;
}
