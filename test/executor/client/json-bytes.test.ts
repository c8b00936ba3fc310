import { describe, expect, it } from 'vitest';
import { jsonWithBytesField } from '../../../src/executor/client/json-bytes.js';

describe('JSON bodies with a field given as UTF-8 bytes', () => {
  it('encodes exactly as JSON.stringify does, every escape included', () => {
    const controls = Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)).join('');
    const texts = [
      '',
      'plain text',
      controls,
      'quote " backslash \\ slash / del \x7f',
      'ünïcödé 中文 😀 \u2028\u2029 end',
      'stdout: line one\r\nstdout: line two\n',
    ];
    for (const text of texts) {
      const fields = { executorName: 'e"x', jobId: 42, entryId: 3, offset: 0 };
      const got = jsonWithBytesField(fields, 'out', Buffer.from(text, 'utf8'));
      expect(got.toString('utf8'), JSON.stringify(text)).toBe(JSON.stringify({ ...fields, out: text }));
    }
  });

  it('encodes a large body where escapes and runs alternate (runs move up over their own bytes)', () => {
    const text = Array.from({ length: 20_000 }, (_, i) => `${'é'.repeat(i % 5)}"${i}\\\n\u0001`).join('');
    const got = jsonWithBytesField({ offset: 1 }, 'out', Buffer.from(text));
    expect(got.toString('utf8')).toBe(JSON.stringify({ offset: 1, out: text }));
  });

  it('works with no other fields and with a view into a larger buffer', () => {
    const big = Buffer.from('xx"ab\ncd"yy');
    expect(jsonWithBytesField({}, 'out', big.subarray(2, 9)).toString()).toBe('{"out":"\\"ab\\ncd\\""}');
  });

  it('agrees with JSON.stringify on random text (seeded)', () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const alphabet = [
      'a',
      'Z',
      '0',
      ' ',
      '"',
      '\\',
      '\n',
      '\r',
      '\t',
      '\x00',
      '\x1f',
      'é',
      '€',
      '😀',
      '\u2028',
    ];
    for (let round = 0; round < 300; round++) {
      let text = '';
      for (let i = rand(80); i > 0; i--) text += alphabet[rand(alphabet.length)];
      const got = jsonWithBytesField({ offset: round }, 'out', Buffer.from(text));
      expect(JSON.parse(got.toString('utf8'))).toEqual({ offset: round, out: text });
      expect(got.toString('utf8')).toBe(JSON.stringify({ offset: round, out: text }));
    }
  });
});
