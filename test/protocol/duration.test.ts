import { describe, expect, it } from 'vitest';
import { formatDuration, parseDurationMs, parseSizeBytes } from '../../src/lib/duration.js';

describe('durations and sizes', () => {
  it.each([
    ['1s', 1000],
    ['30m', 1_800_000],
    ['1h30m', 5_400_000],
    ['250ms', 250],
    ['0', 0],
    ['1.5s', 1500],
  ])('parses %s', (s, ms) => expect(parseDurationMs(s)).toBe(ms));

  it.each(['', '5', '1d', 'm', '-1s'])('refuses %j', (s) => expect(parseDurationMs(s)).toBeUndefined());

  it('formats like Go', () => {
    expect(formatDuration(1_800_000)).toBe('30m0s');
    expect(formatDuration(5_400_000)).toBe('1h30m0s');
    expect(formatDuration(250)).toBe('250ms');
  });

  it.each([
    ['12G', 12 * 1024 ** 3],
    ['512m', 512 * 1024 ** 2],
    ['5Gi', 5 * 1024 ** 3],
    ['1GB', 1e9],
    ['100', 100],
    ['16MiB', 16 * 1024 ** 2],
  ])('parses size %s', (s, n) => expect(parseSizeBytes(s)).toBe(n));

  it('refuses bad sizes', () => expect(parseSizeBytes('12 parsecs')).toBeUndefined());
});
