import { describe, expect, it } from 'vitest';
import {
  calculateCompatibility,
  compareSemver,
  InvalidVersionError,
  isOurExecutorVersion,
  parseSemver,
  supportsV2Payload,
} from '../../src/protocol/version.js';

describe('payload version gate', () => {
  it.each([
    ['4.3.0', true],
    ['4.3.0-rc.1', true],
    ['4.2.9', false],
    ['5.3.0', true],
    ['3.43.0', false],
    ['dev', true],
    ['0.0.0+dev', true],
    ['0.1.0+executor', true],
    ['1.2.3+executor.7', true],
    ['0.1.0+other', false],
    ['185678_2022-11-24_4.2-abcdef1234', true],
    ['185678_2022-11-23_4.2-abcdef1234', false],
    ['', false],
  ])('%s -> %s', (v, want) => {
    expect(supportsV2Payload(v)).toBe(want);
  });

  it('throws on a version that is neither semver, dev nor a build date', () => {
    expect(() => supportsV2Payload('banana')).toThrow(InvalidVersionError);
    expect(() => supportsV2Payload('banana')).toThrow(
      'failed to check version "banana": Invalid Semantic Version',
    );
  });

  it('recognises our own executor by its build tag', () => {
    expect(isOurExecutorVersion('0.1.0+executor')).toBe(true);
    expect(isOurExecutorVersion('0.1.0')).toBe(false);
  });
});

describe('semver', () => {
  it('orders releases and pre-releases', () => {
    const v = (s: string) => parseSemver(s)!;
    expect(compareSemver(v('1.0.0-alpha'), v('1.0.0'))).toBeLessThan(0);
    expect(compareSemver(v('1.0.0-alpha.1'), v('1.0.0-alpha.beta'))).toBeLessThan(0);
    expect(compareSemver(v('1.0.0-2'), v('1.0.0-10'))).toBeLessThan(0);
    expect(compareSemver(v('3.43'), v('3.43.0'))).toBe(0);
    expect(compareSemver(v('v2.0.0'), v('1.9.9'))).toBeGreaterThan(0);
    expect(parseSemver('x.y')).toBeUndefined();
  });
});

describe('compatibility (calculateExecutorCompatibility)', () => {
  it.each([
    ['3.40.0', '3.43.0', 'OUTDATED'],
    ['3.43.0', '4.0.0', 'OUTDATED'],
    ['3.43.0', '3.43.12', 'UP_TO_DATE'],
    ['3.43.0', '3.40.0', 'VERSION_AHEAD'],
    ['3.42.5', '3.43.1', 'OUTDATED'],
    ['3.42.5', '3.43.0', 'UP_TO_DATE'],
  ])('executor %s vs server %s -> %s', (e, s, want) => {
    expect(calculateCompatibility(e, s, true)).toBe(want);
  });

  it('is null when inactive or either side is dev', () => {
    expect(calculateCompatibility('3.43.0', '3.43.0', false)).toBeNull();
    expect(calculateCompatibility('0.0.0+dev', '3.43.0', true)).toBeNull();
    expect(calculateCompatibility('3.43.0', 'dev', true)).toBeNull();
  });

  it('compares two insiders builds by date with a 35-day cycle; one insiders side is null', () => {
    const ins = (d: string) => `123_${d}_abcdef1`;
    expect(calculateCompatibility(ins('2023-03-01'), ins('2023-01-01'), true)).toBe('VERSION_AHEAD');
    expect(calculateCompatibility(ins('2023-01-01'), ins('2023-03-01'), true)).toBe('OUTDATED');
    expect(calculateCompatibility(ins('2023-01-20'), ins('2023-01-01'), true)).toBe('UP_TO_DATE');
    expect(calculateCompatibility(ins('2023-01-20'), '5.0.0', true)).toBeNull();
  });
});
