/**
 * Secret redaction for job logs and command lines.
 *
 * A redactor is built from `secret -> replacement` pairs (the job's `redactedValues`, plus the
 * executor's shared password -> `SECRET_REMOVED`, added by the caller; job entries win on the same
 * key as in Sourcegraph's handler). Besides each value itself it also replaces the forms a secret
 * commonly takes when a tool prints it:
 *   - base64 at the three byte alignments it can have inside a larger encoded string (the chars
 *     that depend only on the secret's own bits), plus the canonical padded base64 of the value
 *     and the URL-safe alphabet variants of all of these;
 *   - URL-encoded (`encodeURIComponent`, and with `+` for space);
 *   - JSON-escaped (`JSON.stringify(v)` without its quotes);
 *   - for a value with line breaks, the same of the value without whitespace at either end (a
 *     secret read from a file usually ends with a newline that its users strip).
 *
 * A value with line breaks is matched as one block (secret-block.ts): each whitespace run of the
 * value that holds a line break matches any run of 1 to 64 whitespace bytes per line break, so the
 * value is found whatever line endings it is printed with, and none of its lines survives, however
 * short. Whitespace at either end of the value is left out of the block, so a value that ends with
 * a newline leaves the line break after it in place. Besides the block, each of its lines of at
 * least MIN_LINE_LENGTH chars is replaced on its own (tools print one line at a time, or re-indent);
 * a shorter line printed on its own is indistinguishable from ordinary output and stays. A value
 * whose lines hold fewer than MIN_DERIVED_LENGTH chars in all is matched only as it is (without
 * the whitespace at its ends): as a block, "a\nb" would erase "a b" from ordinary text.
 *
 * Derived forms are only registered for values of at least MIN_DERIVED_LENGTH chars: the base64
 * fragments of a 1-3 char value are 0-2 chars long and would erase ordinary text everywhere (the
 * over-masking that a base64 masker caused in actions/runner #326). The value itself is always
 * replaced, whatever its length, as Sourcegraph does; empty values are ignored.
 *
 * Matching is leftmost, longest-first: at each position the longest pattern that matches wins.
 *
 * Streams are redacted on UTF-8 bytes (`createByteStreamRedactor`): patterns are matched as their
 * UTF-8 encoding, which for valid UTF-8 finds the same matches as matching the decoded text (a
 * pattern starts with a lead byte and ends with a whole character, so a byte match starts and ends
 * on character boundaries). So job output need not become text to be redacted.
 */
import { Buffer } from 'node:buffer';
import { byteStreamRedactor, compileBytePatterns, textStreamRedactor } from './byte-stream-redactor.js';
import {
  blockMaxLength,
  blockRegExpSource,
  escapeRegExp,
  hasLineBreak,
  matchBlockText,
  type SecretBlock,
  secretBlock,
  trimSecret,
} from './secret-block.js';

/** Values shorter than this get no derived (encoded) forms; see the module comment. */
export const MIN_DERIVED_LENGTH = 4;
/** Lines of a multi-line secret shorter than this are not redacted on their own (only in its block). */
export const MIN_LINE_LENGTH = 8;

export interface StreamRedactor {
  /** Returns the text that is safe to emit now; holds back less than the longest pattern. */
  push(chunk: string): string;
  /** Returns whatever was held back, redacted. The stream must not be used afterwards. */
  end(): string;
  /** Returns the held-back text that may wait no longer (see ByteStreamRedactor.release). */
  release(): string;
}

/**
 * Receives the redacted bytes of a byte stream, in order. `bytes` may be a view of the redactor's
 * own buffer: it is valid only during the call, so a sink that keeps bytes copies them.
 */
export type ByteSink = (bytes: Buffer) => void;

export interface ByteStreamRedactor {
  /**
   * Passes on to the sink, during the call, every byte of `chunk` that no later byte can turn into
   * part of a match; holds back less than `maxPatternBytes` bytes. When every chunk is whole UTF-8
   * characters, every view passed on is whole characters too (matches, replacements and the held
   * part all start on a character boundary). No buffer is allocated per chunk.
   */
  push(chunk: Buffer): void;
  /** Passes on whatever was held back, redacted. The stream must not be used afterwards. */
  end(): void;
  /**
   * For held bytes that may wait no longer (MAX_HOLD_MS in stream-decoder.ts): passes on what is
   * decided, and masks the rest, the bytes that could still become a secret, with the replacement
   * of a secret they could become; never any of them in clear. The masked bytes stay held, unseen:
   * whatever completes their secret later is masked by the same mask (no second one), and what
   * turns out not to be a secret goes out as usual from the first byte after them. Each byte is
   * masked at most once; with nothing new held since the last release it does nothing.
   */
  release(): void;
  /** True while bytes are held that `release` would pass on or mask. */
  holding(): boolean;
}

export interface Redactor {
  /** Redacts a whole string (a command argument, a complete message). */
  redact(text: string): string;
  /** A boundary-safe redactor for one stream of text: secrets split across pushes still match. */
  createStreamRedactor(): StreamRedactor;
  /** The same on UTF-8 bytes, which is what job output is redacted with. */
  createByteStreamRedactor(sink: ByteSink): ByteStreamRedactor;
  /** Length of the longest pattern in chars (0 when there is nothing to redact). */
  readonly maxPatternLength: number;
  /** Length of the longest pattern in UTF-8 bytes. */
  readonly maxPatternBytes: number;
}

/**
 * The base64 chars of `value` placed at byte offset `offset` (0, 1, 2) inside a larger byte string
 * that depend only on the value's own bits: char j covers bits [6j, 6j+6), which must lie inside
 * [8*offset, 8*(offset+n)).
 */
function base64Fragment(value: Buffer, offset: number): string {
  const padded = Buffer.concat([Buffer.alloc(offset), value]);
  const b64 = padded.toString('base64').replace(/=+$/, '');
  const start = Math.ceil((8 * offset) / 6);
  const end = Math.floor((8 * (offset + value.length)) / 6);
  return b64.slice(start, end);
}

function encodedForms(value: string): Set<string> {
  const out = new Set<string>();
  const bytes = Buffer.from(value, 'utf8');
  const b64: string[] = [bytes.toString('base64')];
  for (let offset = 0; offset < 3; offset++) b64.push(base64Fragment(bytes, offset));
  for (const b of b64) {
    out.add(b);
    out.add(b.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  // A lone surrogate has no URL encoding (encodeURIComponent throws URIError); a process prints
  // such a value as its UTF-8, where the surrogate is U+FFFD, so that is the form encoded.
  const uri = encodeURIComponent(bytes.toString('utf8'));
  out.add(uri);
  out.add(uri.replace(/%20/g, '+'));
  out.add(JSON.stringify(value).slice(1, -1));
  out.delete(value);
  return out;
}

function derivedForms(value: string): string[] {
  const out = encodedForms(value);
  if (hasLineBreak(value)) {
    const trimmed = trimSecret(value);
    if (trimmed !== '') for (const f of encodedForms(trimmed)) out.add(f);
    for (const line of secretBlock(value).lines) {
      if (line.length >= MIN_LINE_LENGTH) out.add(line);
    }
  }
  // Fragments shorter than the minimum would match ordinary text (see MIN_DERIVED_LENGTH).
  return [...out].filter((p) => p.length >= MIN_DERIVED_LENGTH);
}

/**
 * The fixed pattern a value is matched as, or undefined when it is matched as a block: a value
 * without line breaks is its own pattern; one with line breaks loses the whitespace at its ends.
 */
function fixedForm(value: string): string | undefined {
  if (!hasLineBreak(value)) return value;
  const block = secretBlock(value);
  const chars = block.lines.reduce((n, l) => n + l.length, 0);
  if (block.lines.length >= 2 && chars >= MIN_DERIVED_LENGTH) return undefined;
  return trimSecret(value);
}

export function createRedactor(values: Record<string, string>): Redactor {
  // Fixed pattern -> replacement, and the blocks of multi-line values; the values themselves first
  // so they win over a derived form of another value.
  const patterns = new Map<string, string>();
  const blocks = new Map<string, { block: SecretBlock; replacement: string }>();
  const addValue = (value: string, replacement: string) => {
    const fixed = fixedForm(value);
    if (fixed !== undefined) {
      if (fixed !== '' && !patterns.has(fixed)) patterns.set(fixed, replacement);
      return;
    }
    const block = secretBlock(value);
    const key = JSON.stringify(block);
    if (!blocks.has(key)) blocks.set(key, { block, replacement });
  };
  for (const [secret, replacement] of Object.entries(values)) {
    addValue(secret, replacement);
    // A value with a lone surrogate is printed as its UTF-8, where the surrogate is U+FFFD.
    const printed = Buffer.from(secret, 'utf8').toString('utf8');
    if (printed !== secret) addValue(printed, replacement);
  }
  for (const [secret, replacement] of Object.entries(values)) {
    if (secret.length < MIN_DERIVED_LENGTH) continue;
    for (const form of derivedForms(secret)) {
      if (!patterns.has(form)) patterns.set(form, replacement);
    }
  }

  const sorted = [...patterns.keys()].sort((a, b) => b.length - a.length);
  const blockList = [...blocks.values()];
  let maxPatternLength = sorted[0]?.length ?? 0;
  for (const { block } of blockList) maxPatternLength = Math.max(maxPatternLength, blockMaxLength(block));
  // The expression finds the leftmost position where anything matches; the longest match there is
  // then chosen by hand (JS alternation takes the first alternative that matches, and a block's
  // length depends on the text). Ties go to fixed patterns, as in the byte stream.
  const source = [
    ...blockList.map(({ block }) => blockRegExpSource(block)),
    ...sorted.map(escapeRegExp),
  ].join('|');
  const redact = (text: string): string => {
    if (source === '' || text === '') return text;
    const re = new RegExp(source, 'g');
    let out = '';
    let pos = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      const at = m.index;
      let length = 0;
      let replacement = '';
      for (const p of sorted) {
        if (p.length <= length) break;
        if (text.startsWith(p, at)) {
          length = p.length;
          replacement = patterns.get(p)!;
        }
      }
      for (const b of blockList) {
        const n = matchBlockText(b.block, text, at);
        if (n > length) {
          length = n;
          replacement = b.replacement;
        }
      }
      out += text.slice(pos, at) + replacement;
      pos = at + length;
      re.lastIndex = pos;
    }
    return out + text.slice(pos);
  };

  const bytePatterns = compileBytePatterns(sorted, patterns, blockList);
  const { maxPatternBytes } = bytePatterns;
  const createByteStreamRedactor = (sink: ByteSink) => byteStreamRedactor(bytePatterns, sink);
  const createStreamRedactor = () => textStreamRedactor(createByteStreamRedactor);

  return { redact, createStreamRedactor, createByteStreamRedactor, maxPatternLength, maxPatternBytes };
}
