/**
 * Held bytes released after their bound (ByteStreamRedactor.release): what is decided goes out as
 * it would have, what could still become a secret goes out masked, and whatever completes that
 * secret later is masked too. The time-outs are release() calls placed by the test.
 */
import { describe, expect, it } from 'vitest';
import { createRedactor } from '../../../src/executor/logs/redactor.js';

type R = ReturnType<typeof createRedactor>;

/** A byte stream redactor whose output is collected; `push` takes text (whole characters). */
function collect(r: R) {
  const out: Buffer[] = [];
  const s = r.createByteStreamRedactor((b) => out.push(Buffer.from(b)));
  return {
    s,
    push: (text: string) => s.push(Buffer.from(text)),
    text: () => Buffer.concat(out).toString('utf8'),
  };
}

/** Pushes each string; between two of them, `release()` when the step says so. */
function run(r: R, steps: Array<string | 'release'>): string {
  const c = collect(r);
  for (const step of steps) {
    if (step === 'release') c.s.release();
    else c.push(step);
  }
  c.s.end();
  return c.text();
}

const SECRET = 'hunter2-s3cr3t-value';

describe('released held bytes', () => {
  const r = createRedactor({ [SECRET]: 'S' });

  it('a prefix of a secret goes out masked, and the rest that completes it adds nothing', () => {
    for (let i = 1; i < SECRET.length; i++) {
      const c = collect(r);
      c.push(`x ${SECRET.slice(0, i)}`);
      expect(c.s.holding(), `split at ${i}`).toBe(true);
      c.s.release();
      expect(c.s.holding()).toBe(false);
      expect(c.text(), `split at ${i}`).toBe('x S');
      c.push(`${SECRET.slice(i)} y\n`);
      c.s.end();
      expect(c.text(), `split at ${i}`).toBe('x S y\n');
    }
  });

  it('at every pair of split points with a release at each, the secret is masked once', () => {
    for (let i = 1; i < SECRET.length; i++) {
      for (let j = i; j < SECRET.length; j++) {
        const steps = [
          `<${SECRET.slice(0, i)}`,
          'release',
          SECRET.slice(i, j),
          'release',
          `${SECRET.slice(j)}>`,
        ];
        expect(run(r, steps), `split at ${i}, ${j}`).toBe('<S>');
      }
    }
  });

  it('a prefix that turns out not to be a secret stays masked; what follows goes out', () => {
    expect(run(r, ['tail hun', 'release', 'gry\n'])).toBe('tail Sgry\n');
    // Without the release, the same bytes go out in clear once they are known not to be a secret.
    expect(run(r, ['tail hun', 'gry\n'])).toBe('tail hungry\n');
  });

  it('a secret that starts inside the masked bytes is masked by the same mask', () => {
    // "aa" could begin "aab" at either byte; the secret turns out to start at the second.
    const a = createRedactor({ aab: 'S' });
    expect(run(a, ['x aa', 'release', 'ab y'])).toBe('x S y');
    expect(run(a, ['x aa', 'release', 'b y'])).toBe('x S y');
    expect(run(a, ['x aa', 'release', 'a', 'release', 'b y'])).toBe('x S y');
  });

  it('a whole match waiting only for a longer pattern goes out replaced, the bytes after it in clear', () => {
    const o = createRedactor({ abcd: 'S', abcdefgh: 'L' });
    // The newline cannot continue "abcdefgh": "abcd" is decided.
    expect(run(o, ['xxabcd\n', 'release', 'efgh'])).toBe('xxS\nefgh');
    // Still a prefix of the longer one: masked as it; the longer one completing adds nothing.
    expect(run(o, ['xxabcd', 'release', 'efghyy'])).toBe('xxLyy');
    // It was the shorter one after all: the mask stays (a mask of a secret it could have become).
    expect(run(o, ['xxabcd', 'release', 'zz'])).toBe('xxLzz');
  });

  it('releases nothing when nothing is held, and masks each byte once', () => {
    const c = collect(r);
    c.push('plain\n');
    expect(c.s.holding()).toBe(false);
    c.s.release();
    expect(c.text()).toBe('plain\n');
    c.push('hun');
    c.s.release();
    c.s.release();
    c.push('ter2');
    expect(c.s.holding()).toBe(true);
    c.s.release(); // more of the same secret: its mask already stands for it
    expect(c.text()).toBe('plain\nS');
    c.push('-s3cr3t-value!');
    c.s.end();
    expect(c.text()).toBe('plain\nS!');
    c.s.release(); // after end: nothing
    expect(c.text()).toBe('plain\nS!');
  });

  it('a multi-line secret held at any byte of it is masked, and none of its lines gets out', () => {
    const lines = ['-----BEGIN TEST KEY-----', 'Q9', 'MIIEvQIBADANBgkqhkiG9w0B', '-----END TEST KEY-----'];
    const key = lines.join('\n');
    const m = createRedactor({ [key]: 'K' });
    const input = Buffer.from(`before\n${key}\nafter\n`);
    const from = Buffer.byteLength('before\n');
    for (let i = from + 1; i <= from + Buffer.byteLength(key); i++) {
      const c = collect(m);
      c.s.push(input.subarray(0, i));
      c.s.release();
      for (const l of lines) expect(c.text(), `released at ${i}`).not.toContain(l.slice(0, 2));
      c.s.push(input.subarray(i));
      c.s.end();
      expect(c.text(), `released at ${i}`).toBe('before\nK\nafter\n');
    }
  });

  it('the text stream releases the same way', () => {
    const s = r.createStreamRedactor();
    expect(s.push('a hunter2')).toBe('a ');
    expect(s.release()).toBe('S');
    // The secret is whole, but its longer forms could still start there: it waits for the end.
    expect(s.push('-s3cr3t-value b') + s.end()).toBe(' b');
  });
});

/**
 * True when `t` is `n` with some runs masked: t's text between its replacement chars occurs in n in
 * order, each run of replacement chars in t standing for at least one char of n.
 */
function masksOf(t: string, n: string, reps: RegExp): boolean {
  const segments = t.split(reps);
  if (segments.length === 1) return t === n;
  const first = segments[0]!;
  const last = segments.at(-1)!;
  if (!n.startsWith(first)) return false;
  let at = first.length;
  for (const seg of segments.slice(1, -1)) {
    const k = n.indexOf(seg, at + 1);
    if (k === -1) return false;
    at = k + seg.length;
  }
  return n.endsWith(last) && n.length - last.length >= at + 1;
}

describe('released held bytes: seeded fuzz', () => {
  it('releases at random boundaries never let a held prefix or anything the redaction hides out', () => {
    let seed = 2626;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    // Replacements are chars the text never has, so what is clear in an output is told apart.
    const secrets = { äbäb: 'X', 'ab€ab': 'Y', 'b€abc😀': 'Z', 'aäb\nbba-mülti': 'M' };
    const values = Object.keys(secrets);
    const reps = /[XYZM]+/;
    const f = createRedactor(secrets);
    // Every proper prefix of every secret, in whole characters.
    const prefixes = values.flatMap((v) =>
      [...v].slice(0, -1).map((_, p) => [...v].slice(0, p + 1).join('')),
    );
    let changed = 0;
    let maskedHeld = 0;
    for (let round = 0; round < 1500; round++) {
      let t = '';
      for (let i = rand(60); i > 0; i--) {
        // Whole secrets, prefixes of secrets (which must not get out when held) and noise.
        const k = rand(10);
        if (k === 0) t += values[rand(4)];
        else if (k === 1) t += [...values[rand(4)]!].slice(0, 1 + rand(5)).join('');
        else t += [...'aäb€\n-😀'][rand(7)];
      }
      // Chunks of whole characters, as the stream decoder feeds them; a release after some.
      const chars = [...t];
      const out: Buffer[] = [];
      const s = f.createByteStreamRedactor((b) => out.push(Buffer.from(b)));
      let releases = 0;
      for (let i = 0; i < chars.length; ) {
        const n = 1 + rand(6);
        s.push(Buffer.from(chars.slice(i, i + n).join('')));
        i += n;
        if (rand(3) !== 0) continue;
        const held = s.holding();
        s.release();
        releases++;
        // Whatever was held is out now: the text after the last replacement is the end of the
        // input so far, and no end of it may be a prefix of a secret.
        const sofar = Buffer.concat(out).toString('utf8');
        const clearTail = sofar.split(reps).at(-1)!;
        const leaked = prefixes.find((p) => clearTail.endsWith(p));
        if (leaked !== undefined) expect.fail(`${JSON.stringify(t)}: held ${JSON.stringify(leaked)} got out`);
        if (held && /[XYZM]$/.test(sofar)) maskedHeld++;
      }
      s.end();
      const got = Buffer.concat(out).toString('utf8');
      const want = f.redact(t);
      const what = `${JSON.stringify(t)} -> ${JSON.stringify(got)}, without releases ${JSON.stringify(want)}`;
      // Nothing is clear that the redaction without releases hides, and in the same order.
      expect(masksOf(got, want, reps), what).toBe(true);
      for (const v of values) expect(got.includes(v), what).toBe(false);
      // Masks take at most what was held at each release.
      const clearBytes = (x: string) => Buffer.byteLength(x.replace(/[XYZM]/g, ''));
      expect(clearBytes(want) - clearBytes(got), what).toBeLessThanOrEqual(
        releases * (f.maxPatternBytes - 1),
      );
      if (got !== want) changed++;
    }
    expect(changed).toBeGreaterThan(500);
    expect(maskedHeld).toBeGreaterThan(3000);
  });
});
