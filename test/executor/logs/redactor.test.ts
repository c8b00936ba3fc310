import { describe, expect, it } from 'vitest';
import { createRedactor, MIN_DERIVED_LENGTH } from '../../../src/executor/logs/redactor.js';

const SECRET = 'hunter2-s3cr3t-value';

/** Feeds the chunks through a stream redactor and returns the concatenated output. */
function streamAll(r: ReturnType<typeof createRedactor>, chunks: string[]): string {
  const s = r.createStreamRedactor();
  return chunks.map((c) => s.push(c)).join('') + s.end();
}

describe('redactor: whole strings', () => {
  it('replaces the value and keeps the text around it', () => {
    const r = createRedactor({ [SECRET]: 'SECRET_REMOVED' });
    expect(r.redact(`token=${SECRET}; again ${SECRET}.`)).toBe('token=SECRET_REMOVED; again SECRET_REMOVED.');
  });

  it('redacts a secret inside a command argument', () => {
    const r = createRedactor({ [SECRET]: '***' });
    const argv = ['git', '-c', `http.extraHeader=Authorization: Bearer ${SECRET}`, 'fetch'];
    expect(argv.map((a) => r.redact(a))).toEqual([
      'git',
      '-c',
      'http.extraHeader=Authorization: Bearer ***',
      'fetch',
    ]);
  });

  it('prefers the longest match at a position', () => {
    const r = createRedactor({ abcd: 'SHORT', abcdefgh: 'LONG' });
    expect(r.redact('xxabcdefghyy abcdzz')).toBe('xxLONGyy SHORTzz');
  });

  it('ignores empty values and registers no derived forms for short ones', () => {
    const r = createRedactor({ '': 'X', ab: 'AB' });
    expect(r.redact('abc')).toBe('ABc');
    // base64 of "ab" is "YWI=": its fragments must not erase ordinary text.
    expect(r.redact('YW YWI I')).toBe('YW YWI I');
    expect(MIN_DERIVED_LENGTH).toBe(4);
  });
});

describe('redactor: encoded forms', () => {
  const r = createRedactor({ [SECRET]: 'SECRET_REMOVED' });

  it('replaces the canonical base64 of the value', () => {
    const b64 = Buffer.from(SECRET).toString('base64');
    expect(r.redact(`Authorization: Basic ${b64}`)).toBe('Authorization: Basic SECRET_REMOVED');
  });

  it('replaces the secret inside base64 of a larger string, at every byte alignment', () => {
    for (const prefix of ['', 'u', 'us', 'use', 'user:', 'user:x']) {
      const encoded = Buffer.from(`${prefix}${SECRET}@host`).toString('base64');
      const out = r.redact(encoded);
      expect(out, `prefix ${JSON.stringify(prefix)}`).toContain('SECRET_REMOVED');
      // What is left cannot be decoded back into the secret.
      expect(Buffer.from(out.replace('SECRET_REMOVED', ''), 'base64').toString('latin1')).not.toContain(
        SECRET.slice(2, -2),
      );
    }
  });

  it('replaces URL-encoded and JSON-escaped forms', () => {
    const tricky = 'p@ss w/rd"\\ü&=';
    const t = createRedactor({ [tricky]: 'X' });
    expect(t.redact(`q=${encodeURIComponent(tricky)}&z`)).toBe('q=X&z');
    expect(t.redact(`q=${encodeURIComponent(tricky).replace(/%20/g, '+')}&z`)).toBe('q=X&z');
    expect(t.redact(JSON.stringify({ password: tricky }))).toBe('{"password":"X"}');
  });

  it('takes a secret with a lone surrogate (no URL encoding of its own) and redacts its printed form', () => {
    const odd = 'abc\uD800defghijklmn';
    const r = createRedactor({ [odd]: 'X' });
    // What a process writes for it: UTF-8, the surrogate as U+FFFD.
    const printed = Buffer.from(odd, 'utf8').toString('utf8');
    expect(r.redact(`a ${printed} b`)).toBe('a X b');
    expect(r.redact(`q=${encodeURIComponent(printed)}`)).toBe('q=X');
    expect(streamAll(r, [`a ${printed.slice(0, 5)}`, `${printed.slice(5)} b`])).toBe('a X b');
  });

  it('replaces a multi-line secret whole and line by line', () => {
    const key =
      '-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\nshort\nAQEFAASCBKcwggSjAgEAAoIB\n-----END KEY-----';
    const m = createRedactor({ [key]: 'K' });
    expect(m.redact(`before\n${key}\nafter`)).toBe('before\nK\nafter');
    // Printed one line at a time, with a prefix on each line.
    const printed = key
      .split('\n')
      .map((l) => `stdout: ${l}`)
      .join('\n');
    const out = m.redact(printed);
    expect(out).not.toContain('MIIEvQIBADANBgkqhkiG9w0B');
    expect(out).not.toContain('AQEFAASCBKcwggSjAgEAAoIB');
    expect(out).toContain('stdout: short'); // lines under 8 chars are not patterns of their own
  });
});

describe('redactor: streams', () => {
  const r = createRedactor({ [SECRET]: 'SECRET_REMOVED', 'other-secret-42': 'OTHER' });
  const text = `line one ${SECRET} middle other-secret-42 end ${SECRET}`;
  const expected = 'line one SECRET_REMOVED middle OTHER end SECRET_REMOVED';

  it('matches a secret split across two writes at every offset', () => {
    for (let i = 0; i <= text.length; i++) {
      expect(streamAll(r, [text.slice(0, i), text.slice(i)]), `split at ${i}`).toBe(expected);
    }
  });

  it('matches secrets written one char at a time', () => {
    expect(streamAll(r, [...text])).toBe(expected);
  });

  it('matches at every pair of split points (three writes)', () => {
    const short = `a${SECRET}b`;
    for (let i = 0; i <= short.length; i++) {
      for (let j = i; j <= short.length; j++) {
        expect(streamAll(r, [short.slice(0, i), short.slice(i, j), short.slice(j)])).toBe('aSECRET_REMOVEDb');
      }
    }
  });

  it('keeps leftmost-longest semantics across chunk boundaries', () => {
    const o = createRedactor({ abcd: 'S', abcdefgh: 'L' });
    const input = 'xxabcdefghyyabcdzz';
    for (let i = 0; i <= input.length; i++) {
      expect(streamAll(o, [input.slice(0, i), input.slice(i)])).toBe('xxLyySzz');
    }
  });

  it('redacts base64 forms split across writes', () => {
    const b64 = Buffer.from(`user:${SECRET}`).toString('base64');
    const whole = r.redact(b64);
    expect(whole).toContain('SECRET_REMOVED');
    for (let i = 0; i <= b64.length; i++) {
      expect(streamAll(r, [b64.slice(0, i), b64.slice(i)])).toBe(whole);
    }
  });

  it('emits text that cannot start a secret at once and holds back at most the bounded tail', () => {
    const s = r.createStreamRedactor();
    expect(s.push('plain text with no secret at all\n')).toBe('plain text with no secret at all\n');
    // "hun" could be the start of the secret: only that is held back.
    expect(s.push('tail hun')).toBe('tail ');
    expect(s.push('gry')).toBe('hungry');
    let held = 0;
    for (let i = 0; i < 200; i++) {
      const chunk = SECRET.slice(0, i % SECRET.length);
      held += chunk.length - s.push(chunk).length;
      expect(held).toBeLessThan(r.maxPatternLength);
    }
    expect(s.end()).not.toContain(SECRET);
  });

  it('passes text through untouched when there are no secrets', () => {
    const none = createRedactor({});
    const s = none.createStreamRedactor();
    expect(s.push('abc')).toBe('abc');
    expect(s.end()).toBe('');
  });

  it('agrees with whole-string redaction under random splits (seeded fuzz)', () => {
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    // A small alphabet makes overlapping and partial matches frequent.
    const secrets = { abab: 'X', abcab: 'Y', bcabca: 'Z', 'aab\nbba-multi': 'M' };
    const f = createRedactor(secrets);
    for (let round = 0; round < 500; round++) {
      let text = '';
      const len = rand(60);
      for (let i = 0; i < len; i++) {
        text += rand(8) === 0 ? Object.keys(secrets)[rand(4)] : 'abc\n-'[rand(5)];
      }
      const chunks: string[] = [];
      for (let i = 0; i < text.length; ) {
        const n = 1 + rand(6);
        chunks.push(text.slice(i, i + n));
        i += n;
      }
      expect(streamAll(f, chunks), JSON.stringify(chunks)).toBe(f.redact(text));
    }
  });
});

describe('redactor: byte streams', () => {
  /** Pushes the byte chunks; returns the views passed on, copied. */
  function bytesAll(r: ReturnType<typeof createRedactor>, chunks: Buffer[]): Buffer[] {
    const out: Buffer[] = [];
    const s = r.createByteStreamRedactor((b) => out.push(Buffer.from(b)));
    for (const c of chunks) s.push(c);
    s.end();
    return out;
  }
  const text = (views: Buffer[]) => Buffer.concat(views).toString('utf8');

  const MULTI = 'clé-sécrète-€-😀-42';
  const r = createRedactor({ [MULTI]: 'SECRET_REMOVED', [SECRET]: 'S' });

  it('matches a multi-byte secret split at every byte, inside characters too', () => {
    const input = Buffer.from(`ä ${MULTI} ö ${SECRET}\n`);
    const want = r.redact(input.toString());
    expect(want).toBe('ä SECRET_REMOVED ö S\n');
    for (let i = 0; i <= input.length; i++) {
      expect(text(bytesAll(r, [input.subarray(0, i), input.subarray(i)])), `split at ${i}`).toBe(want);
    }
    expect(
      text(
        bytesAll(
          r,
          [...input].map((b) => Buffer.from([b])),
        ),
      ),
    ).toBe(want);
  });

  it('redacts base64 at each byte alignment, URL-encoded and JSON-escaped forms split anywhere', () => {
    const forms = [
      ...['', 'u', 'us'].map((p) => Buffer.from(`${p}${MULTI}!`).toString('base64')),
      encodeURIComponent(MULTI),
      JSON.stringify(MULTI).slice(1, -1),
    ];
    for (const form of forms) {
      const input = Buffer.from(`<${form}>`);
      const want = r.redact(input.toString());
      expect(want, form).toContain('SECRET_REMOVED');
      for (let i = 0; i <= input.length; i++) {
        expect(text(bytesAll(r, [input.subarray(0, i), input.subarray(i)])), `${form} at ${i}`).toBe(want);
      }
    }
  });

  it('passes on views of whole characters when it is fed whole characters', () => {
    // The secret's first byte is a lead byte that also starts ordinary characters (é).
    const out = bytesAll(
      r,
      ['é', 'aé', 'clé-sé', 'crète-€', 'x😀'].map((c) => Buffer.from(c)),
    );
    for (const v of out) expect(v.toString('utf8'), JSON.stringify([...v])).not.toContain('\ufffd');
    expect(text(out)).toBe('éaéclé-sécrète-€x😀');
  });

  it('reuses its buffer: every chunk is scanned in the same memory', () => {
    const seen = new Set<ArrayBufferLike>();
    const s = r.createByteStreamRedactor((b) => seen.add(b.buffer));
    for (let i = 0; i < 200; i++) s.push(Buffer.alloc(1 + ((i * 7919) % 65536), 'x'));
    s.end();
    expect(seen.size).toBe(1);
  });

  it('cuts chunks larger than its buffer on character boundaries', () => {
    const big = Buffer.from(`${'ü'.repeat(70_000)}${MULTI}${'€'.repeat(30_000)}`);
    const out = bytesAll(r, [big]);
    expect(out.length).toBeGreaterThan(1);
    for (const v of out) expect(v.toString('utf8')).not.toContain('\ufffd');
    expect(text(out)).toBe(`${'ü'.repeat(70_000)}SECRET_REMOVED${'€'.repeat(30_000)}`);
  });

  it('a secret with a lone surrogate: redacts it as text, and in bytes as it is printed (U+FFFD)', () => {
    // A process given such a value (in its environment, say) gets and prints its UTF-8, where
    // the surrogate is U+FFFD; that form is what can occur in decoded output.
    const lone = createRedactor({ 'a\ud800b': 'X' });
    expect(text(bytesAll(lone, [Buffer.from('a\ufffdb ab')]))).toBe('X ab');
    expect(lone.redact('a\ud800b')).toBe('X');
    expect(lone.redact('a\ufffdb')).toBe('X');
  });

  it('agrees with whole-string redaction under random byte splits (seeded fuzz)', () => {
    let seed = 4242;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const secrets = { äbäb: 'X', 'ab€ab': 'Y', 'b€abc😀': 'Z', 'aäb\nbba-mülti': 'M' };
    const f = createRedactor(secrets);
    for (let round = 0; round < 500; round++) {
      let t = '';
      for (let i = rand(60); i > 0; i--)
        t += rand(8) === 0 ? Object.keys(secrets)[rand(4)] : [...'aäb€\n-😀'][rand(7)];
      const bytes = Buffer.from(t);
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; ) {
        const n = 1 + rand(7);
        chunks.push(bytes.subarray(i, i + n));
        i += n;
      }
      expect(text(bytesAll(f, chunks)), JSON.stringify(t)).toBe(f.redact(t));
    }
  });
});
