import { describe, expect, it } from 'vitest';
import {
  layerFullReason,
  layerIsFull,
  storageOptSize,
  writableLayerCheck,
  writableLayerLimit,
} from '../../../../src/executor/runtimes/docker/storage.js';
import { parseSizeBytes } from '../../../../src/lib/duration.js';

const info = (driver: string, backing: string) => ({
  Driver: driver,
  DriverStatus: [
    ['Backing Filesystem', backing],
    ['Supports d_type', 'true'],
  ] as [string, string][],
});

describe('writableLayerLimit', () => {
  it('is able on overlay2 over xfs and on btrfs only', () => {
    // overlay2's project quota covers the step's own layer; btrfs's qgroup the whole subvolume.
    expect(writableLayerLimit(info('overlay2', 'xfs'))).toEqual({ limited: true, counts: 'layer' });
    // The btrfs driver names no backing file system: it runs only on a btrfs.
    expect(writableLayerLimit({ Driver: 'btrfs', DriverStatus: [['Build Version', 'Btrfs v6.2']] })).toEqual({
      limited: true,
      counts: 'rootfs',
    });
    for (const [d, b] of [
      ['overlay2', 'extfs'],
      ['overlay2', 'btrfs'],
      ['vfs', 'xfs'],
      ['vfs', 'btrfs'],
      ['zfs', 'zfs'],
    ] as const) {
      const l = writableLayerLimit(info(d, b));
      expect(l.limited).toBe(false);
      if (!l.limited)
        expect(l.why).toContain(`the storage driver ${d} on ${b} does not support --storage-opt size`);
    }
    const none = writableLayerLimit({});
    expect(none.limited).toBe(false);
    if (!none.limited) expect(none.why).toContain('unknown on unknown');
  });
});

/** EXECUTOR_JOB_DISK_SPACE as the config holds it. */
const quota = (text: string) => ({ text, bytes: parseSizeBytes(text)! });

describe('storageOptSize', () => {
  it("is the quota's bytes, so Docker cannot read the text differently from the workspace image", () => {
    expect(storageOptSize(quota('20G'))).toBe('21474836480');
    expect(storageOptSize(quota('64M'))).toBe('67108864');
    // Docker's parser (go-units RAMInBytes) takes every unit as binary: "20GB" would be 20 GiB.
    expect(storageOptSize(quota('20GB'))).toBe('20000000000');
    // Docker refuses more than one space between number and unit; the config accepts it.
    expect(storageOptSize(quota('1.5  G'))).toBe(String(1.5 * 1024 ** 3));
  });
});

describe('writableLayerCheck', () => {
  it('says whether the layer is limited, and why not', () => {
    expect(writableLayerCheck(info('overlay2', 'xfs'), quota('20G'))).toEqual({
      name: 'container writable layer',
      ok: true,
      detail: 'limited to 20G per step (--storage-opt size=21474836480)',
    });
    expect(writableLayerCheck(info('overlay2', 'extfs'), quota('20G')).detail).toMatch(
      /^NOT limited: the storage driver overlay2 on extfs does not support --storage-opt size \(it needs overlay2 on xfs mounted with pquota, or btrfs\)/,
    );
    expect(writableLayerCheck({ Driver: 'btrfs' }, quota('64M')).detail).toBe(
      'limited to 64M per step (--storage-opt size=67108864)',
    );
    expect(writableLayerCheck(info('overlay2', 'xfs'), undefined).detail).toBe(
      'not limited (EXECUTOR_JOB_DISK_SPACE=0)',
    );
  });
});

describe('layerIsFull', () => {
  const MIB = 1024 * 1024;
  it('compares what the limit counts with the quota, less 2% (at least 4 MiB)', () => {
    const q = quota('64M');
    // Figures from a btrfs layer limited to 64M: 100 MiB asked, 61.9 MiB written, 1.9 MiB of image.
    const full = { SizeRw: 64946176, SizeRootFs: 66928541 };
    expect(layerIsFull('rootfs', full, q)).toBe(true);
    // The same step with 2000 small files first: their metadata took 1 MiB of the limit.
    expect(layerIsFull('rootfs', { SizeRw: 64130976, SizeRootFs: 66113341 }, q)).toBe(true);
    expect(layerIsFull('rootfs', { SizeRw: 10 * MIB, SizeRootFs: 12 * MIB }, q)).toBe(false);
    expect(layerIsFull('layer', { SizeRw: 60 * MIB + 1, SizeRootFs: 200 * MIB }, q)).toBe(true);
    expect(layerIsFull('layer', { SizeRw: 60 * MIB - 1, SizeRootFs: 200 * MIB }, q)).toBe(false);
    // 2% of 20G is more than 4 MiB.
    const big = quota('20G');
    expect(layerIsFull('layer', { SizeRw: big.bytes * 0.98 }, big)).toBe(true);
    expect(layerIsFull('layer', { SizeRw: big.bytes * 0.98 - 1 }, big)).toBe(false);
    // Sizes the daemon did not report are no verdict.
    expect(layerIsFull('rootfs', { SizeRw: 64 * MIB }, q)).toBe(false);
    expect(layerIsFull('layer', {}, q)).toBe(false);
  });

  it('names the limit and its setting', () => {
    expect(layerFullReason(quota('64M'))).toBe(
      "the container's writable layer is full: each step gets 64M of disk outside its workspace (EXECUTOR_JOB_DISK_SPACE); raise it or make the step write less outside /data",
    );
  });
});
