/**
 * Multi-line secrets: one block whatever the line endings it is printed with, none of its lines
 * left however short, the line break after it kept, and the same result whatever the byte split.
 */
import { describe, expect, it } from 'vitest';
import { createRedactor, MIN_LINE_LENGTH } from '../../../src/executor/logs/redactor.js';
import { MAX_GAP_BYTES_PER_LINE_BREAK, secretBlock } from '../../../src/executor/logs/secret-block.js';

/** Lines of 1 to 7 chars between and around long ones; none occurs in the text around it. */
const LINES = [
  'Zq7#',
  '-----BEGIN TEST KEY-----',
  'Q9',
  'MIIEvQIBADANBgkqhkiG9w0B',
  '%',
  'é€😀x',
  'sh0rt!k',
  '-----END TEST KEY-----',
  'k',
];
const KEY = LINES.join('\n');
const BEFORE = 'before: fine\n';
const AFTER = 'after: done\n';

/** The ways a tool may print the key's line breaks. */
const BREAKS: Record<string, (i: number) => string> = {
  LF: () => '\n',
  CRLF: () => '\r\n',
  'CR CR LF': () => '\r\r\n',
  CR: () => '\r',
  space: () => ' ',
  tab: () => '\t',
  'mixed runs': (i) => [' \t', '\r\n  ', '\t\t\r\n', ' \r\r\n\t', '\v\f ', '\n\n'][i % 6]!,
  'runs at the bound': () => ' \t'.repeat(MAX_GAP_BYTES_PER_LINE_BREAK / 2),
};

function printed(lines: string[], brk: (i: number) => string): string {
  return lines.map((l, i) => (i === 0 ? l : brk(i - 1) + l)).join('');
}

/** Pushes the byte chunks; returns the output as text. */
function bytesAll(r: ReturnType<typeof createRedactor>, chunks: Buffer[]): string {
  const out: Buffer[] = [];
  const s = r.createByteStreamRedactor((b) => out.push(Buffer.from(b)));
  for (const c of chunks) s.push(c);
  s.end();
  return Buffer.concat(out).toString('utf8');
}

/** Asserts that no line of the secret, of any length, is in `out`. */
function expectNoLine(out: string, lines: string[], what: string) {
  for (const l of lines)
    expect(out.includes(l), `${what}: line ${JSON.stringify(l)} survived in ${JSON.stringify(out)}`).toBe(
      false,
    );
}

describe('multi-line secrets: one block, whatever the line endings', () => {
  for (const [trailing, value] of [
    ['', KEY],
    [' (secret ends with LF)', `${KEY}\n`],
    [' (secret ends with CRLF)', `${KEY.replace(/\n/g, '\r\n')}\r\n`],
  ] as const) {
    for (const [name, brk] of Object.entries(BREAKS)) {
      it(`${name}${trailing}: split at every byte, no line survives, the text around it is intact`, () => {
        const r = createRedactor({ [value]: 'K' });
        // The secret as the tool prints it, its own trailing newline (if any) printed the same way,
        // then the next line: the line break after the secret must stay.
        const tail = value.endsWith('\n') ? brk(LINES.length) : '\n';
        const input = Buffer.from(`${BEFORE}${printed(LINES, brk)}${tail}${AFTER}`);
        const want = `${BEFORE}K${tail}${AFTER}`;
        expect(r.redact(input.toString())).toBe(want);
        for (let i = 0; i <= input.length; i++) {
          const out = bytesAll(r, [input.subarray(0, i), input.subarray(i)]);
          expect(out, `split at ${i}`).toBe(want);
        }
        const one = bytesAll(
          r,
          [...input].map((b) => Buffer.from([b])),
        );
        expect(one).toBe(want);
        expectNoLine(one.slice(BEFORE.length, -AFTER.length), LINES, name);
      });
    }
  }

  it('at every pair of split points (three writes), with the secret printed twice in a row', () => {
    const lines = ['ab', 'c', 'defgh', 'Zq'];
    const r = createRedactor({ [`${lines.join('\n')}\n`]: 'K' });
    const input = `x ${lines.join('\r\n')}\r\n${lines.join(' \t')}\n!`;
    const want = 'x K\r\nK\n!';
    expect(r.redact(input)).toBe(want);
    const bytes = Buffer.from(input);
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        const chunks = [bytes.subarray(0, i), bytes.subarray(i, j), bytes.subarray(j)];
        expect(bytesAll(r, chunks), `split at ${i}, ${j}`).toBe(want);
      }
    }
  });

  it('keeps the line break after a secret that ends with newlines, printed as it is', () => {
    const r = createRedactor({ 'tok-line-1\nab\n': 'K', 'abc\r\n\r\n': 'S' });
    expect(r.redact('tok-line-1\nab\nnext line\n')).toBe('K\nnext line\n');
    expect(r.redact('value: abc\r\n\r\nnext')).toBe('value: S\r\n\r\nnext');
  });

  it('a whitespace run longer than the bound does not match the block; its long lines are still replaced', () => {
    const r = createRedactor({ 'long-line-one\nab\nlong-line-two': 'K' });
    const atBound = ' '.repeat(MAX_GAP_BYTES_PER_LINE_BREAK);
    expect(r.redact(`long-line-one${atBound}ab${atBound}long-line-two`)).toBe('K');
    const over = ' '.repeat(MAX_GAP_BYTES_PER_LINE_BREAK + 1);
    // Documented limit: the short line, out of its block, is ordinary text.
    expect(r.redact(`long-line-one${over}ab\nlong-line-two`)).toBe(`K${over}ab\nK`);
    // Two line breaks in the secret: twice the bound.
    const two = createRedactor({ 'long-line-one\n\nab': 'K' });
    expect(two.redact(`long-line-one${' '.repeat(2 * MAX_GAP_BYTES_PER_LINE_BREAK)}ab`)).toBe('K');
    expect(two.redact(`long-line-one${' '.repeat(2 * MAX_GAP_BYTES_PER_LINE_BREAK + 1)}ab`)).toBe(
      `K${' '.repeat(2 * MAX_GAP_BYTES_PER_LINE_BREAK + 1)}ab`,
    );
  });

  it('a line printed on its own: replaced from MIN_LINE_LENGTH chars, a shorter one stays', () => {
    const r = createRedactor({ [KEY]: 'K' });
    expect(MIN_LINE_LENGTH).toBe(8);
    expect(r.redact('MIIEvQIBADANBgkqhkiG9w0B\n')).toBe('K\n');
    expect(r.redact('sh0rt!k\n')).toBe('sh0rt!k\n');
    // Lines interleaved with other text (a prefix on each) are not the block.
    const prefixed = LINES.map((l) => `stdout: ${l}`).join('\n');
    expect(r.redact(prefixed)).toContain('stdout: Q9');
    expect(r.redact(prefixed)).not.toContain('MIIEvQIBADANBgkqhkiG9w0B');
  });

  it('a value with fewer than 4 chars in its lines is matched only as it is, without its edge whitespace', () => {
    const r = createRedactor({ 'a\nb\n': 'K' });
    expect(r.redact('a\nb\nc')).toBe('K\nc');
    expect(r.redact('a b a\r\nb')).toBe('a b a\r\nb');
  });

  it('a value of whitespace only redacts nothing (it would erase every line break)', () => {
    const r = createRedactor({ '\n': 'K', ' \r\n\t': 'L' });
    expect(r.redact('one\ntwo \r\n\tthree')).toBe('one\ntwo \r\n\tthree');
    expect(bytesAll(r, [Buffer.from('one\ntwo')])).toBe('one\ntwo');
  });

  it('a value that is one line and a newline is that line, whatever its length', () => {
    const r = createRedactor({ 'tok\n': 'K' });
    expect(r.redact('tok\r\nnext tok')).toBe('K\r\nnext K');
  });

  it('replaces the encoded forms of the value without its trailing newline', () => {
    const r = createRedactor({ 'file-secret-42\n': 'K' });
    expect(r.redact(Buffer.from('file-secret-42').toString('base64'))).toBe('K');
    expect(r.redact(Buffer.from('file-secret-42\n').toString('base64'))).toBe('K');
  });

  it('splits a value at whitespace runs that hold a line break, bounded per line break', () => {
    expect(secretBlock('  a b\r\n\r\n c\t\n')).toEqual({
      lines: ['a b', 'c'],
      maxGaps: [2 * MAX_GAP_BYTES_PER_LINE_BREAK],
    });
    // The secret's own run, when longer than the bound, is still matched.
    const own = ' '.repeat(100);
    expect(secretBlock(`x\n${own}y`).maxGaps).toEqual([101]);
  });

  it('holds back less than the longest possible block match, however long the whitespace runs', () => {
    const lines = ['Q9', ...LINES];
    const r = createRedactor({ [lines.join('\n')]: 'K' });
    const lineBytes = lines.reduce((n, l) => n + Buffer.byteLength(l), 0);
    expect(r.maxPatternBytes).toBe(lineBytes + (lines.length - 1) * MAX_GAP_BYTES_PER_LINE_BREAK);
    let pushed = 0;
    let emitted = 0;
    let mostHeld = 0;
    const s = r.createByteStreamRedactor((b) => {
      emitted += b.length;
    });
    // The first line, then whitespace without end: the block could go on until the run passes
    // its bound, and no longer.
    for (const chunk of ['Q9', ...Array.from({ length: 500 }, () => ' \t\r\n')]) {
      s.push(Buffer.from(chunk));
      pushed += Buffer.byteLength(chunk);
      mostHeld = Math.max(mostHeld, pushed - emitted);
    }
    expect(mostHeld).toBeGreaterThanOrEqual(2 + MAX_GAP_BYTES_PER_LINE_BREAK);
    expect(mostHeld).toBeLessThan(2 + MAX_GAP_BYTES_PER_LINE_BREAK + 4);
    expect(pushed - emitted).toBe(0);
    s.end();
    expect(emitted).toBe(pushed);
  });

  it('agrees with whole-string redaction under random splits of random whitespace forms (seeded fuzz)', () => {
    let seed = 777;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    // Short lines from a small alphabet, so partial and overlapping matches are frequent.
    const secrets = { 'ab\nb\r\nab': 'X', 'a\n\nbb\n': 'Y', 'ba\tb\nab': 'Z', 'abab-long-line\nb': 'W' };
    const f = createRedactor(secrets);
    const ws = [' ', '\t', '\r', '\n', '\r\n', '\r\r\n', '\v', '\f'];
    let matched = 0;
    for (let round = 0; round < 1500; round++) {
      let t = '';
      for (let i = rand(40); i > 0; i--) {
        if (rand(6) === 0) {
          const v = Object.keys(secrets)[rand(4)]!;
          t += v.replace(/\s+/g, () =>
            Array.from({ length: 1 + rand(3) }, () => ws[rand(ws.length)]).join(''),
          );
        } else t += ['a', 'b', ' ', '\n', '\r', '-'][rand(6)];
      }
      const bytes = Buffer.from(t);
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; ) {
        const n = 1 + rand(7);
        chunks.push(bytes.subarray(i, i + n));
        i += n;
      }
      const want = f.redact(t);
      if (want !== t) matched++;
      expect(bytesAll(f, chunks), JSON.stringify(t)).toBe(want);
    }
    expect(matched).toBeGreaterThan(500);
  });
});
