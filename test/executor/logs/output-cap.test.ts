import { describe, expect, it } from 'vitest';
import {
  type CappedOutput,
  createOutputCap,
  truncationMarker,
} from '../../../src/executor/logs/output-cap.js';

function output(): CappedOutput {
  return { headParts: [], headBytes: 0, ring: Buffer.alloc(0), ringStart: 0, ringBytes: 0, omitted: 0 };
}

function append(cap: ReturnType<typeof createOutputCap>, e: CappedOutput, text: string) {
  const bytes = Buffer.from(text, 'utf8');
  cap.append(e, bytes, 0, bytes.length);
}

describe('output cap', () => {
  it('keeps the head, then a rolling tail, and marks the bytes omitted between them', () => {
    const cap = createOutputCap(20);
    const e = output();
    cap.open(e);
    append(cap, e, '0123456789abcdef');
    append(cap, e, 'ghijklmnopqrstuvwxyz');
    expect(cap.text(e)).toBe(`0123456789${truncationMarker(16, 20)}qrstuvwxyz`);
    expect(e.omitted).toBe(16);
  });

  it('cuts head and tail between characters', () => {
    const cap = createOutputCap(10);
    const e = output();
    cap.open(e);
    append(cap, e, 'abcd€€€wxyz'); // € is 3 bytes: the head ends before the one at byte 4
    expect(e.headBytes).toBe(4);
    expect(cap.text(e)).toBe(`abcd${truncationMarker(9, 10)}wxyz`);
  });

  it('counts committed tails of closed entries against the tails of later ones', () => {
    const cap = createOutputCap(20);
    const first = output();
    cap.open(first);
    append(cap, first, '0123456789ABCDEF');
    cap.close(first);
    const second = output();
    cap.open(second);
    append(cap, second, 'abcdefghij');
    expect(cap.text(first)).toBe('0123456789ABCDEF');
    expect(cap.text(second)).toBe(`${truncationMarker(6, 20)}ghij`);
  });
});
