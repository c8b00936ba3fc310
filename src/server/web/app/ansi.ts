/**
 * ANSI SGR -> styled segments, for log output. Pure (no DOM), stateful across chunks: an escape
 * sequence split between two chunks is kept until the next one, and the style carries over.
 * Supported: reset, bold, dim, italic, underline, inverse, the 16 colours (30-37, 90-97, 40-47,
 * 100-107), 256 colours and 24-bit colours (38;5;n / 38;2;r;g;b and 48;...). Every other escape
 * (cursor moves, OSC titles) is dropped, never shown raw.
 */

export interface AnsiStyle {
  bold: boolean;
  dim: boolean;
  italic: boolean;
  underline: boolean;
  inverse: boolean;
  /** 0-15 palette index, or '#rrggbb'. */
  fg: number | string | null;
  bg: number | string | null;
}

export interface AnsiSegment {
  text: string;
  style: AnsiStyle;
}

export interface AnsiState {
  style: AnsiStyle;
  /** An incomplete escape sequence left at the end of the previous chunk. */
  pending: string;
}

const plain = (): AnsiStyle => ({
  bold: false,
  dim: false,
  italic: false,
  underline: false,
  inverse: false,
  fg: null,
  bg: null,
});

export function createAnsiState(): AnsiState {
  return { style: plain(), pending: '' };
}

const CUBE = [0, 95, 135, 175, 215, 255];
const hex2 = (n: number) => n.toString(16).padStart(2, '0');

/** xterm 256-colour index -> palette index (0-15) or '#rrggbb'. */
export function color256(n: number): number | string {
  if (n < 16) return n;
  if (n < 232) {
    const i = n - 16;
    return `#${hex2(CUBE[Math.floor(i / 36)]!)}${hex2(CUBE[Math.floor(i / 6) % 6]!)}${hex2(CUBE[i % 6]!)}`;
  }
  const g = 8 + (n - 232) * 10;
  return `#${hex2(g)}${hex2(g)}${hex2(g)}`;
}

function applySgr(style: AnsiStyle, params: number[]): void {
  if (params.length === 0) params = [0];
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!;
    if (p === 0) Object.assign(style, plain());
    else if (p === 1) style.bold = true;
    else if (p === 2) style.dim = true;
    else if (p === 3) style.italic = true;
    else if (p === 4) style.underline = true;
    else if (p === 7) style.inverse = true;
    else if (p === 22) style.bold = style.dim = false;
    else if (p === 23) style.italic = false;
    else if (p === 24) style.underline = false;
    else if (p === 27) style.inverse = false;
    else if (p >= 30 && p <= 37) style.fg = p - 30;
    else if (p >= 90 && p <= 97) style.fg = p - 90 + 8;
    else if (p === 39) style.fg = null;
    else if (p >= 40 && p <= 47) style.bg = p - 40;
    else if (p >= 100 && p <= 107) style.bg = p - 100 + 8;
    else if (p === 49) style.bg = null;
    else if (p === 38 || p === 48) {
      const mode = params[i + 1];
      let c: number | string | null = null;
      if (mode === 5 && params[i + 2] !== undefined) {
        c = color256(Math.min(255, params[i + 2]!));
        i += 2;
      } else if (mode === 2 && params[i + 4] !== undefined) {
        const [r, g, b] = [params[i + 2]!, params[i + 3]!, params[i + 4]!].map((v) => Math.min(255, v));
        c = `#${hex2(r!)}${hex2(g!)}${hex2(b!)}`;
        i += 4;
      } else {
        break;
      }
      if (p === 38) style.fg = c;
      else style.bg = c;
    }
  }
}

// CSI (ESC [ params final), OSC (ESC ] ... BEL or ESC \), other two-byte escapes.
const ESCAPE = /\x1b(?:\[([0-9;:?]*)([\x40-\x7e])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[\x40-\x5f])/g;
const PARTIAL = /\x1b(?:\[[0-9;:?]*|\][^\x07\x1b]*\x1b?)?$/;

/** Parses one chunk; updates `state`. Segments with empty text are not returned. */
export function parseAnsi(chunk: string, state: AnsiState): AnsiSegment[] {
  let text = state.pending + chunk;
  state.pending = '';
  const partial = PARTIAL.exec(text);
  if (partial) {
    state.pending = partial[0];
    text = text.slice(0, partial.index);
  }
  const out: AnsiSegment[] = [];
  let last = 0;
  const emit = (s: string) => {
    // Carriage returns without newline (progress bars) and other C0 controls except \n and \t.
    const clean = s.replace(/\r(?!\n)/g, '\n').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
    if (clean) out.push({ text: clean, style: { ...state.style } });
  };
  ESCAPE.lastIndex = 0;
  for (let m = ESCAPE.exec(text); m; m = ESCAPE.exec(text)) {
    emit(text.slice(last, m.index));
    last = ESCAPE.lastIndex;
    if (m[2] === 'm') {
      const params = (m[1] ?? '')
        .split(/[;:]/)
        .filter((x) => x !== '')
        .map(Number);
      applySgr(state.style, params);
    }
  }
  emit(text.slice(last));
  return out;
}

/** Text without any escape sequence, for downloads and search. */
export function stripAnsi(text: string): string {
  return parseAnsi(text, createAnsiState())
    .map((s) => s.text)
    .join('');
}
