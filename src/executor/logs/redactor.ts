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
 *   - for multi-line values, each line of at least MIN_LINE_LENGTH chars (tools often print one
 *     line at a time, or re-indent), besides the whole value.
 *
 * Derived forms are only registered for values of at least MIN_DERIVED_LENGTH chars: the base64
 * fragments of a 1-3 char value are 0-2 chars long and would erase ordinary text everywhere (the
 * over-masking that a base64 masker caused in actions/runner #326). The value itself is always
 * replaced, whatever its length, as Sourcegraph does; empty values are ignored.
 *
 * Matching is leftmost, longest-first: at each position the longest pattern that matches wins.
 */

/** Values shorter than this get no derived (encoded) forms; see the module comment. */
export const MIN_DERIVED_LENGTH = 4;
/** Lines of a multi-line secret shorter than this are not redacted on their own. */
export const MIN_LINE_LENGTH = 8;

export interface StreamRedactor {
  /** Returns the text that is safe to emit now; holds back at most (longest pattern - 1) chars. */
  push(chunk: string): string;
  /** Returns whatever was held back, redacted. The stream must not be used afterwards. */
  end(): string;
}

export interface Redactor {
  /** Redacts a whole string (a command argument, a complete message). */
  redact(text: string): string;
  /** A boundary-safe redactor for one stream of text: secrets split across pushes still match. */
  createStreamRedactor(): StreamRedactor;
  /** Length of the longest pattern (0 when there is nothing to redact). */
  readonly maxPatternLength: number;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
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

function derivedForms(value: string): string[] {
  const out = new Set<string>();
  const bytes = Buffer.from(value, 'utf8');
  const b64: string[] = [bytes.toString('base64')];
  for (let offset = 0; offset < 3; offset++) b64.push(base64Fragment(bytes, offset));
  for (const b of b64) {
    out.add(b);
    out.add(b.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  const uri = encodeURIComponent(value);
  out.add(uri);
  out.add(uri.replace(/%20/g, '+'));
  out.add(JSON.stringify(value).slice(1, -1));
  if (/[\r\n]/.test(value)) {
    for (const line of value.split(/\r?\n|\r/)) {
      if (line.length >= MIN_LINE_LENGTH) out.add(line);
    }
  }
  out.delete(value);
  // Fragments shorter than the minimum would match ordinary text (see MIN_DERIVED_LENGTH).
  return [...out].filter((p) => p.length >= MIN_DERIVED_LENGTH);
}

export function createRedactor(values: Record<string, string>): Redactor {
  // pattern -> replacement; the raw values first so they win over a derived form of another value.
  const patterns = new Map<string, string>();
  for (const [secret, replacement] of Object.entries(values)) {
    if (secret !== '' && !patterns.has(secret)) patterns.set(secret, replacement);
  }
  for (const [secret, replacement] of Object.entries(values)) {
    if (secret.length < MIN_DERIVED_LENGTH) continue;
    for (const form of derivedForms(secret)) {
      if (!patterns.has(form)) patterns.set(form, replacement);
    }
  }

  const sorted = [...patterns.keys()].sort((a, b) => b.length - a.length);
  const maxPatternLength = sorted[0]?.length ?? 0;
  // JS alternation takes the first alternative that matches at the leftmost position, so sorting by
  // length descending gives leftmost-longest.
  const source = sorted.map(escapeRegExp).join('|');
  const byFirstChar = new Map<string, string[]>();
  for (const p of sorted) {
    const list = byFirstChar.get(p[0]!) ?? [];
    list.push(p);
    byFirstChar.set(p[0]!, list);
  }

  const redact = (text: string): string => {
    if (sorted.length === 0 || text === '') return text;
    return text.replace(new RegExp(source, 'g'), (m) => patterns.get(m) ?? m);
  };

  /** True when buf[i..] is a proper prefix of some pattern (a match may start at i later). */
  const couldStartAt = (buf: string, i: number): boolean => {
    const candidates = byFirstChar.get(buf[i]!);
    if (!candidates) return false;
    const rest = buf.length - i;
    for (const p of candidates) {
      if (p.length <= rest) continue;
      let k = 1;
      while (k < rest && p.charCodeAt(k) === buf.charCodeAt(i + k)) k++;
      if (k === rest) return true;
    }
    return false;
  };

  const createStreamRedactor = (): StreamRedactor => {
    let buf = '';
    let ended = false;
    return {
      push(chunk: string): string {
        if (ended) throw new Error('stream redactor used after end()');
        if (sorted.length === 0) return chunk;
        buf += chunk;
        const re = new RegExp(source, 'g');
        let out = '';
        let pos = 0;
        let holdFrom = buf.length;
        for (let m = re.exec(buf); m !== null; m = re.exec(buf)) {
          // A match is final only when every pattern starting at its position fits in the buffer;
          // otherwise a longer pattern may still match there once more text arrives.
          if (m.index + maxPatternLength > buf.length) {
            holdFrom = m.index;
            break;
          }
          out += buf.slice(pos, m.index) + (patterns.get(m[0]) ?? m[0]);
          pos = m.index + m[0].length;
        }
        // Before a held match, or at the end: the first position whose tail may begin a pattern.
        // Positions earlier than (length - maxPatternLength + 1) have room for every pattern, so
        // the regex scan above has already decided them.
        const scanFrom = Math.max(pos, buf.length - maxPatternLength + 1);
        for (let i = scanFrom; i < holdFrom; i++) {
          if (couldStartAt(buf, i)) {
            holdFrom = i;
            break;
          }
        }
        holdFrom = Math.max(holdFrom, pos);
        out += buf.slice(pos, holdFrom);
        buf = buf.slice(holdFrom);
        return out;
      },
      end(): string {
        if (ended) return '';
        ended = true;
        const rest = redact(buf);
        buf = '';
        return rest;
      },
    };
  };

  return { redact, createStreamRedactor, maxPatternLength };
}
