import { describe, expect, it } from 'vitest';
import { packageVersion } from '../../src/lib/version.js';
import {
  calculateCompatibility,
  compareSemver,
  executorVersion,
  InvalidVersionError,
  isOurExecutorVersion,
  ourVersionOf,
  parseSemver,
  SOURCEGRAPH_PROTOCOL_VERSION,
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

describe('the version our executor reports', () => {
  it('is the Sourcegraph release whose protocol we implement, ours as build metadata', () => {
    const v = executorVersion();
    expect(SOURCEGRAPH_PROTOCOL_VERSION).toBe('5.6.0');
    expect(v).toBe(`5.6.0+executor.${packageVersion()}`);
    // Our server still knows it (v2 payload, our own compatibility rule) ...
    expect(isOurExecutorVersion(v)).toBe(true);
    expect(supportsV2Payload(v)).toBe(true);
    expect(ourVersionOf(v)).toBe(packageVersion());
    // ... and a Sourcegraph 5.5 to 5.7 instance lists it as up to date, where the old form was outdated.
    for (const sg of ['5.5.0', '5.6.3', '5.7.0'])
      expect(calculateCompatibility(v, sg, true)).toBe('UP_TO_DATE');
    expect(calculateCompatibility(v, '5.7.1', true)).toBe('OUTDATED');
    expect(calculateCompatibility(v, '5.4.9', true)).toBe('VERSION_AHEAD');
    expect(calculateCompatibility(`${packageVersion()}+executor`, '5.5.0', true)).toBe('OUTDATED');
  });

  it('EXECUTOR_REPORTED_VERSION replaces the release; a plain semver keeps our build metadata', () => {
    expect(executorVersion('5.5.2')).toBe(`5.5.2+executor.${packageVersion()}`);
    expect(executorVersion('5.5.2+custom')).toBe('5.5.2+custom');
    expect(executorVersion('dev')).toBe('dev');
    expect(executorVersion('')).toBe(executorVersion());
  });

  it('finds our own version in either form, and none in a stock version', () => {
    expect(ourVersionOf('5.6.0+executor.1.2.3')).toBe('1.2.3');
    expect(ourVersionOf('5.6.0+executor.1.2.3-rc.1')).toBe('1.2.3-rc.1');
    expect(ourVersionOf('0.1.0+executor')).toBe('0.1.0');
    expect(ourVersionOf('5.6.0')).toBeUndefined();
    expect(ourVersionOf('5.6.0+other.1.0.0')).toBeUndefined();
  });
});
