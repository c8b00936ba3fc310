import { describe, expect, it } from 'vitest';
import { color256, createAnsiState, parseAnsi, stripAnsi } from '../../src/server/web/app/ansi.js';

const ESC = '\u001b';

describe('ANSI log rendering', () => {
  it('splits text into styled segments for the 16 colours, bold and reset', () => {
    const segs = parseAnsi(
      `plain ${ESC}[1;31mbold red${ESC}[0m ${ESC}[92mbright${ESC}[39m end`,
      createAnsiState(),
    );
    expect(segs.map((s) => [s.text, s.style.fg, s.style.bold])).toEqual([
      ['plain ', null, false],
      ['bold red', 1, true],
      [' ', null, false],
      ['bright', 10, false],
      [' end', null, false],
    ]);
  });

  it('keeps an escape split between chunks, and the style carries over', () => {
    const state = createAnsiState();
    const a = parseAnsi(`one ${ESC}[3`, state);
    const b = parseAnsi(`2mgreen`, state);
    const c = parseAnsi(' still green', state);
    expect(a.map((s) => s.text)).toEqual(['one ']);
    expect(b).toEqual([{ text: 'green', style: expect.objectContaining({ fg: 2 }) }]);
    expect(c[0]!.style.fg).toBe(2);
  });

  it('reads 256-colour and 24-bit colours', () => {
    const segs = parseAnsi(`${ESC}[38;5;196mA${ESC}[48;2;1;2;3mB${ESC}[38;5;244mC`, createAnsiState());
    expect(segs[0]!.style.fg).toBe('#ff0000');
    expect(segs[1]!.style.bg).toBe('#010203');
    expect(segs[2]!.style.fg).toBe('#808080');
    expect(color256(4)).toBe(4);
  });

  it('drops other escapes and control characters instead of showing them', () => {
    const text = `${ESC}]0;title${ESC}\\a${ESC}[2Kb${ESC}[10;5Hc\u0007d\r\ne\rf`;
    expect(stripAnsi(text)).toBe('abcd\ne\nf');
  });

  it('leaves markup as text: escaping is the renderer writing text nodes, never HTML', () => {
    expect(stripAnsi(`<script>alert(1)</script> ${ESC}[31m&amp;`)).toBe('<script>alert(1)</script> &amp;');
  });
});
