import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mergeDaemonConfig } from '../../src/executor/install/daemon-config.js';
import { DAEMON_JSON_PATH, type DockerFacts, runInstall } from '../../src/executor/install/install.js';
import { ensureDaemonRemaps, remappedCheck } from '../../src/executor/install/userns-remap.js';

describe('daemon.json merge: userns-remap', () => {
  it("sets 'default' and keeps every other key", () => {
    const existing = { 'log-driver': 'journald', runtimes: { runsc: { path: '/x' } } };
    const merged = mergeDaemonConfig(existing, { registryMirrors: [], usernsRemap: 'default' });
    expect(merged).toEqual({ ...existing, 'userns-remap': 'default' });
    expect(existing).not.toHaveProperty('userns-remap');
  });

  it("keeps an operator's own remap user, and leaves the key alone when not asked", () => {
    expect(
      mergeDaemonConfig(
        { 'userns-remap': 'builder:builders' },
        { registryMirrors: [], usernsRemap: 'default' },
      ),
    ).toEqual({ 'userns-remap': 'builder:builders' });
    expect(
      mergeDaemonConfig({ 'userns-remap': '' }, { registryMirrors: [], usernsRemap: 'default' }),
    ).toEqual({
      'userns-remap': 'default',
    });
    expect(mergeDaemonConfig({ a: 1 }, { registryMirrors: [] })).toEqual({ a: 1 });
  });
});

const facts = (over: Partial<DockerFacts> = {}): DockerFacts => ({
  version: '20.10.24',
  mirrors: [],
  runtimes: ['runc'],
  usernsRemapped: false,
  rootDir: '/var/lib/docker',
  ...over,
});

describe('restarting dockerd for userns-remap', () => {
  it('does not restart a daemon that already remaps', async () => {
    let restarts = 0;
    const before = facts({ usernsRemapped: true, rootDir: '/var/lib/docker/100000.100000' });
    const r = await ensureDaemonRemaps(before, {
      dockerFacts: async () => before,
      restartDocker: async () => {
        restarts++;
      },
    });
    expect(restarts).toBe(0);
    expect(r.check.ok).toBe(true);
    expect(r.check.detail).toContain('root in steps is uid 100000 on the host');
    expect(r.check.detail).toContain('/var/lib/docker/100000.100000');
    expect(r.check.detail).toContain('pull or load them again');
  });

  it('restarts, waits through the restart, and reports the remapped daemon', async () => {
    let restarted = false;
    let asked = 0;
    const r = await ensureDaemonRemaps(facts(), {
      restartDocker: async () => {
        restarted = true;
      },
      // Down twice (restarting), then up and remapped.
      dockerFacts: async () => {
        asked++;
        if (asked <= 2) throw new Error('connect ECONNREFUSED');
        return facts({ usernsRemapped: restarted, rootDir: '/var/lib/docker/231072.231072' });
      },
      pollMs: 1,
    });
    expect(asked).toBe(3);
    expect(r.check).toMatchObject({ name: 'userns-remap', ok: true });
    expect(r.facts?.rootDir).toBe('/var/lib/docker/231072.231072');
  });

  it('fails the check, keeping the old facts, when dockerd cannot be restarted', async () => {
    const before = facts();
    const r = await ensureDaemonRemaps(before, {
      dockerFacts: async () => before,
      restartDocker: () => Promise.reject(new Error('this host has no systemd; restart dockerd yourself')),
    });
    expect(r.check.ok).toBe(false);
    expect(r.check.detail).toContain('needs a restart of dockerd: this host has no systemd');
    expect(r.facts).toBe(before);
  });

  it('fails when the restarted daemon does not remap or does not answer', async () => {
    const still = await ensureDaemonRemaps(facts(), {
      dockerFacts: async () => facts(),
      restartDocker: async () => {},
      waitMs: 20,
      pollMs: 1,
    });
    expect(still.check).toEqual(remappedCheck(facts()));
    expect(still.check.ok).toBe(false);
    const down = await ensureDaemonRemaps(facts(), {
      dockerFacts: () => Promise.reject(new Error('connect ENOENT')),
      restartDocker: async () => {},
      waitMs: 20,
      pollMs: 1,
    });
    expect(down.facts).toBeUndefined();
    expect(down.check.detail).toContain('did not answer after the restart (connect ENOENT)');
  });
});

describe('executor install --userns-remap against a temporary root', () => {
  let root: string | undefined;
  afterEach(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('writes userns-remap into daemon.json, restarts nothing that is not the running daemon', async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'install-userns-'));
    let restarts = 0;
    const opts = {
      root,
      dryRun: false,
      withGvisor: false,
      registryMirrors: [],
      binPath: '/usr/local/bin/executor',
      runscPath: '/usr/bin/runsc',
      env: {},
      dockerFacts: async () => facts(),
      reloadDocker: async () => {},
      usernsRemap: true,
      restartDocker: async () => {
        restarts++;
      },
    };
    const dry = await runInstall({ ...opts, dryRun: true });
    expect(dry.checks.find((c) => c.name === 'docker reload')?.detail).toBe(
      'dry run: the daemon would be restarted when installing on /',
    );
    const r = await runInstall(opts);
    expect(r.items.find((i) => i.path === DAEMON_JSON_PATH)?.status).toBe('create');
    expect(JSON.parse(readFileSync(path.join(root, DAEMON_JSON_PATH), 'utf8'))).toEqual({
      'userns-remap': 'default',
    });
    expect(restarts).toBe(0);
    const again = await runInstall(opts);
    expect(again.items.find((i) => i.path === DAEMON_JSON_PATH)?.status).toBe('unchanged');
  });
});
