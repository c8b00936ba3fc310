import { lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Dockerode from 'dockerode';
import { afterEach, describe, expect, it } from 'vitest';
import {
  daemonRemaps,
  detectUsernsRemap,
  firstSubordinateId,
  hasChownCapability,
  remapUserOf,
  rootFromDockerRootDir,
  usernsCheckResult,
  validateUserns,
} from '../../../../src/executor/runtimes/docker/userns.js';
import { chownTree } from '../../../../src/executor/workspace/chown-tree.js';
import { requireOrSkip } from '../../../helpers/env.js';

/** A stand-in for dockerode that answers only `info` with the given body. */
const infoOnly = (info: object) => ({ info: async () => info }) as unknown as Dockerode;

describe('user-namespace remapping: parsing', () => {
  it('sees remapping in SecurityOptions, whatever else the option carries', () => {
    expect(daemonRemaps({ SecurityOptions: ['name=seccomp,profile=default'] })).toBe(false);
    expect(daemonRemaps({ SecurityOptions: null })).toBe(false);
    expect(daemonRemaps({})).toBe(false);
    expect(daemonRemaps({ SecurityOptions: ['name=seccomp,profile=default', 'name=userns'] })).toBe(true);
    expect(daemonRemaps({ SecurityOptions: ['name=usernsx'] })).toBe(false);
  });

  it('reads the remapped ids from the data root dockerd names after them', () => {
    expect(rootFromDockerRootDir('/var/lib/docker/100000.100000')).toEqual({ uid: 100000, gid: 100000 });
    expect(rootFromDockerRootDir('/srv/d/data/231072.165536/')).toEqual({ uid: 231072, gid: 165536 });
    expect(rootFromDockerRootDir('/var/lib/docker')).toBeUndefined();
    expect(rootFromDockerRootDir('/var/lib/docker/1.5.2')).toBeUndefined();
    expect(rootFromDockerRootDir(undefined)).toBeUndefined();
  });

  it("names dockremap for 'default', and splits user:group", () => {
    expect(remapUserOf('default')).toEqual({ user: 'dockremap', group: 'dockremap' });
    expect(remapUserOf('builder')).toEqual({ user: 'builder', group: 'builder' });
    expect(remapUserOf('1001:1002')).toEqual({ user: '1001', group: '1002' });
  });

  it('takes the lowest subordinate range of the user, ignoring other users and broken lines', () => {
    const text = [
      'alice:100000:65536',
      'dockremap:296608:65536',
      'dockremap:231072:65536',
      'dockremap:notanumber:65536',
      'dockremap:1000:0',
      '',
      '# comment',
    ].join('\n');
    expect(firstSubordinateId(text, ['dockremap'])).toBe(231072);
    expect(firstSubordinateId(text, ['alice'])).toBe(100000);
    expect(firstSubordinateId(text, ['bob'])).toBeUndefined();
    expect(firstSubordinateId('', ['dockremap'])).toBeUndefined();
  });

  it('reads CAP_CHOWN from CapEff', () => {
    expect(hasChownCapability('Name:\tnode\nCapEff:\t000001ffffffffff\n')).toBe(true);
    expect(hasChownCapability('CapEff:\t0000000000000001\n')).toBe(true);
    expect(hasChownCapability('CapEff:\t0000000000000000\n')).toBe(false);
    expect(hasChownCapability('CapEff:\t00000000a80425fe\n')).toBe(false);
    expect(hasChownCapability('')).toBe(false);
  });
});

describe('user-namespace remapping: detection', () => {
  it('not remapped', async () => {
    const r = await detectUsernsRemap(infoOnly({ SecurityOptions: ['name=seccomp,profile=default'] }));
    expect(r).toEqual({ remapped: false });
    expect(usernsCheckResult(r)).toEqual({
      name: 'user namespaces',
      ok: true,
      detail:
        'not remapped: root in steps is root on the host (with no capabilities); enable with executor install --userns-remap',
    });
  });

  it('remapped, ids from the data root (no file is read)', async () => {
    const r = await detectUsernsRemap(
      infoOnly({ SecurityOptions: ['name=userns'], DockerRootDir: '/var/lib/docker/165536.165536' }),
      { readText: () => Promise.reject(new Error('must not read files')) },
    );
    expect(r).toEqual({ remapped: true, root: { uid: 165536, gid: 165536 } });
    expect(usernsCheckResult(r).detail).toMatch(/^remapped, root in steps is uid 165536 on the host/);
  });

  it('remapped, ids from /etc/subuid and /etc/subgid for the user daemon.json names', async () => {
    const files: Record<string, string> = {
      '/etc/docker/daemon.json': '{"userns-remap": "builder:builders"}',
      '/etc/subuid': 'dockremap:100000:65536\nbuilder:300000:65536\n',
      '/etc/subgid': 'dockremap:100000:65536\nbuilders:400000:65536\n',
    };
    const readText = async (f: string) => {
      const t = files[f];
      if (t === undefined) throw new Error(`ENOENT ${f}`);
      return t;
    };
    const info = { SecurityOptions: ['name=userns'], DockerRootDir: '/custom' };
    expect(await detectUsernsRemap(infoOnly(info), { readText })).toEqual({
      remapped: true,
      root: { uid: 300000, gid: 400000 },
    });
    // Without daemon.json (flag on dockerd's command line) the default user is assumed.
    delete files['/etc/docker/daemon.json'];
    expect(await detectUsernsRemap(infoOnly(info), { readText })).toEqual({
      remapped: true,
      root: { uid: 100000, gid: 100000 },
    });
    // No range at all: an error naming what is missing, never a guess.
    files['/etc/subuid'] = '';
    await expect(detectUsernsRemap(infoOnly(info), { readText })).rejects.toThrow(
      /no range for dockremap:dockremap/,
    );
  });
});

describe('user-namespace remapping: validate', () => {
  const remapped = infoOnly({ SecurityOptions: ['name=userns'], DockerRootDir: '/d/100000.100000' });
  const status = (capEff: string) => async () => `Name:\tnode\nCapEff:\t${capEff}\n`;

  it('passes for docker when the executor can chown', async () => {
    const checks = await validateUserns(remapped, 'docker', { readText: status('000001ffffffffff') });
    expect(checks.map((c) => [c.name, c.ok])).toEqual([['user namespaces', true]]);
  });

  it('fails without CAP_CHOWN, and for gvisor on a remapped daemon', async () => {
    const checks = await validateUserns(remapped, 'gvisor', { readText: status('0000000000000000') });
    expect(checks.map((c) => [c.name, c.ok])).toEqual([
      ['user namespaces', true],
      ['gvisor and user namespaces', false],
      ['workspace ownership', false],
    ]);
    expect(checks[2]?.detail).toContain('cannot give workspaces to uid 100000');
  });

  it('fails when docker info fails', async () => {
    const dead = { info: () => Promise.reject(new Error('connect ENOENT')) } as unknown as Dockerode;
    expect(await validateUserns(dead, 'docker')).toEqual([
      { name: 'user namespaces', ok: false, detail: 'connect ENOENT' },
    ]);
  });
});

describe.skipIf(!requireOrSkip('root (chown to other uids)', process.getuid?.() === 0))('chownTree', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it('gives every entry to the ids and changes links, never their targets', async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'chown-tree-'));
    const outside = path.join(dir, 'outside');
    const ws = path.join(dir, 'ws');
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'secret'), 'host file');
    mkdirSync(path.join(ws, 'a/b'), { recursive: true });
    writeFileSync(path.join(ws, 'a/b/file'), 'x');
    symlinkSync(path.join(outside, 'secret'), path.join(ws, 'link-to-file'));
    symlinkSync(outside, path.join(ws, 'a/link-to-dir'));

    await chownTree(ws, 100123, 100456);

    for (const p of ['', 'a', 'a/b', 'a/b/file', 'link-to-file', 'a/link-to-dir']) {
      const st = lstatSync(path.join(ws, p));
      expect([p, st.uid, st.gid]).toEqual([p, 100123, 100456]);
    }
    for (const p of [outside, path.join(outside, 'secret')]) {
      const st = statSync(p);
      expect([p, st.uid, st.gid]).toEqual([p, 0, 0]);
    }
  });
});
