/**
 * The vm runtime's refusals and `executor validate` lines, without booting a VM (vm.test.ts in
 * test/e2e boots them). KVM is injected so the refusal is tested the same on hosts with and without
 * /dev/kvm; QEMU and the assets are the real ones where present.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guestInitSha256, kvmUsable, kvmWorks } from '../../../../src/executor/runtimes/vm/host.js';
import { createVmRuntime, type VmRuntimeOptions } from '../../../../src/executor/runtimes/vm/vm-runtime.js';
import { createMemoryLogger } from '../../../../src/lib/logger.js';
import { commandAvailable, requireOrSkip } from '../../../helpers/env.js';

/** The real guest assets (npm run vm-assets), where present: the KVM probe boots their kernel. */
const REAL_ASSETS = process.env.EXECUTOR_VM_ASSETS_DIR || '/var/lib/executor/vm';

const haveQemu = requireOrSkip('QEMU (qemu-system-x86_64)', commandAvailable('qemu-system-x86_64'));

let assets: string;
beforeAll(async () => {
  // Stand-ins for the kernel and initramfs: these tests read the files, they boot nothing.
  assets = await mkdtemp(path.join(os.tmpdir(), 'vm-assets-test-'));
  await writeFile(path.join(assets, 'vmlinuz'), 'k');
  await writeFile(path.join(assets, 'initramfs.img'), 'i');
  await writeFile(path.join(assets, 'assets.json'), JSON.stringify({ kernelVersion: '6.1.0-test' }));
});
afterAll(async () => {
  await rm(assets, { recursive: true, force: true });
});

function options(over: Partial<VmRuntimeOptions> = {}): VmRuntimeOptions {
  return {
    executorName: 'vm-test',
    workspaceRoot: os.tmpdir(),
    keepWorkspaces: false,
    frontendUrl: 'http://127.0.0.1:1',
    frontendPassword: '',
    files: () => {
      throw new Error('not used');
    },
    qemu: 'qemu-system-x86_64',
    assetsDir: assets,
    allowEmulation: false,
    imageCacheDir: path.join(os.tmpdir(), 'vm-test-images'),
    imageCacheBytes: 1024 * 1024 * 1024,
    cpus: 1,
    memory: '256M',
    disk: { text: '64M', bytes: 64 * 1024 * 1024 },
    logger: createMemoryLogger(),
    ...over,
  };
}

const NO_KVM = async () => ({ ok: false, why: '/dev/kvm does not exist (test)' });

describe.skipIf(!haveQemu)('vm runtime: startup and validate', () => {
  it('refuses without KVM unless emulation is allowed, naming EXECUTOR_VM_ALLOW_EMULATION', async () => {
    const refused = await createVmRuntime(options({ kvm: NO_KVM })).startupProblem!();
    expect(refused).toMatch(/^EXECUTOR_RUNTIME=vm needs KVM: \/dev\/kvm does not exist \(test\)\./);
    expect(refused).toContain('EXECUTOR_VM_ALLOW_EMULATION=true');

    const logger = createMemoryLogger();
    const allowed = createVmRuntime(options({ kvm: NO_KVM, allowEmulation: true, logger }));
    expect(await allowed.startupProblem!()).toBeUndefined();
    expect(
      logger.lines.some((l) => l.includes('"level":"warn"') && l.includes('EMULATED virtual machines')),
    ).toBe(true);
  });

  it('starts with KVM and says nothing about emulation', async () => {
    const logger = createMemoryLogger();
    const rt = createVmRuntime(options({ kvm: async () => ({ ok: true }), logger }));
    expect(await rt.startupProblem!()).toBeUndefined();
    expect(logger.lines.some((l) => l.includes('EMULATED'))).toBe(false);
  });

  it('refuses without the guest assets, naming npm run vm-assets', async () => {
    const rt = createVmRuntime(options({ kvm: NO_KVM, allowEmulation: true, assetsDir: '/nonexistent/vm' }));
    expect(await rt.startupProblem!()).toBe(
      'the guest assets are missing: no /nonexistent/vm/vmlinuz; build them with `npm run vm-assets` (EXECUTOR_VM_ASSETS_DIR=/nonexistent/vm)',
    );
  });

  it('refuses without QEMU, naming EXECUTOR_VM_QEMU', async () => {
    const rt = createVmRuntime(options({ kvm: NO_KVM, allowEmulation: true, qemu: '/nonexistent/qemu' }));
    expect(await rt.startupProblem!()).toMatch(
      /needs QEMU: \/nonexistent\/qemu does not run.*EXECUTOR_VM_QEMU/,
    );
  });

  it('validate reports QEMU, KVM and the assets', async () => {
    const checks = await createVmRuntime(options({ kvm: NO_KVM })).validate();
    const byName = Object.fromEntries(checks.map((c) => [c.name, c]));
    expect(byName.qemu).toEqual({
      name: 'qemu',
      ok: true,
      detail: expect.stringMatching(/^QEMU emulator version \d/),
    });
    expect(byName.kvm).toEqual({
      name: 'kvm',
      ok: false,
      detail:
        '/dev/kvm does not exist (test); the executor will not start (EXECUTOR_VM_ALLOW_EMULATION=true allows emulation)',
    });
    expect(byName['vm assets']).toEqual({
      name: 'vm assets',
      ok: true,
      detail: `${assets}: kernel 6.1.0-test`,
    });

    const emulated = await createVmRuntime(options({ kvm: NO_KVM, allowEmulation: true })).validate();
    expect(emulated.find((c) => c.name === 'kvm')).toMatchObject({
      ok: true,
      detail: expect.stringContaining('EMULATED'),
    });
  });

  it("assets built from another guest init than this executor's: validate fails naming npm run vm-assets, startup warns", async () => {
    const own = await guestInitSha256();
    expect(own).toMatch(/^[0-9a-f]{64}$/);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vm-assets-stale-'));
    try {
      await writeFile(path.join(dir, 'vmlinuz'), 'k');
      await writeFile(path.join(dir, 'initramfs.img'), 'i');
      await writeFile(
        path.join(dir, 'assets.json'),
        JSON.stringify({ kernelVersion: '6.1.0-test', initSha256: '0'.repeat(64) }),
      );
      const logger = createMemoryLogger();
      const rt = createVmRuntime(options({ kvm: NO_KVM, allowEmulation: true, assetsDir: dir, logger }));
      expect((await rt.validate()).find((c) => c.name === 'vm assets')).toEqual({
        name: 'vm assets',
        ok: false,
        detail: `the guest assets in ${dir} were built from another guest init than this executor's; rebuild them with \`npm run vm-assets\` (EXECUTOR_VM_ASSETS_DIR=${dir})`,
      });
      expect(await rt.startupProblem!()).toBeUndefined();
      expect(logger.lines.some((l) => l.includes('"level":"warn"') && l.includes('another guest init'))).toBe(
        true,
      );

      // Built from this executor's init: nothing to say.
      await writeFile(
        path.join(dir, 'assets.json'),
        JSON.stringify({ kernelVersion: '6.1.0-test', initSha256: own }),
      );
      const fresh = createMemoryLogger();
      const ok = createVmRuntime(
        options({ kvm: NO_KVM, allowEmulation: true, assetsDir: dir, logger: fresh }),
      );
      expect((await ok.validate()).find((c) => c.name === 'vm assets')?.ok).toBe(true);
      expect(await ok.startupProblem!()).toBeUndefined();
      expect(fresh.lines.some((l) => l.includes('another guest init'))).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('kvmUsable tells a missing device from a present one', async () => {
    expect(await kvmUsable('/nonexistent/kvm')).toEqual({
      ok: false,
      why: '/nonexistent/kvm does not exist (no hardware virtualisation here, or the kvm module is not loaded)',
    });
    expect(await kvmUsable('/dev/null')).toEqual({ ok: true });
  });

  describe('kvmWorks: a device that opens is not enough, a guest kernel must boot with it', () => {
    let fakes: string;
    beforeAll(async () => {
      fakes = await mkdtemp(path.join(os.tmpdir(), 'kvm-probe-'));
    });
    afterAll(async () => {
      await rm(fakes, { recursive: true, force: true });
    });
    /** A fake QEMU (a shell script): what it prints, and whether it then exits or waits. */
    const fakeQemu = async (name: string, script: string) => {
      const file = path.join(fakes, name);
      await writeFile(file, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
      return file;
    };

    it('refuses a missing device without starting QEMU, and a QEMU that does not run', async () => {
      expect(
        await kvmWorks('/nonexistent/qemu', '/nonexistent/vmlinuz', { device: '/nonexistent/kvm' }),
      ).toEqual({
        ok: false,
        why: '/nonexistent/kvm does not exist (no hardware virtualisation here, or the kvm module is not loaded)',
      });
      const r = await kvmWorks('/nonexistent/qemu', '/nonexistent/vmlinuz', { device: '/dev/null' });
      expect(r.ok).toBe(false);
      expect(r.why).toContain('/nonexistent/qemu does not run');
    });

    it('a fake QEMU that aborts (as under nested virtualisation) is refused with its error line', async () => {
      const qemu = await fakeQemu(
        'aborts',
        "echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69' >&2\nexit 134",
      );
      const r = await kvmWorks(qemu, '/nonexistent/vmlinuz', { device: '/dev/null' });
      expect(r).toEqual({
        ok: false,
        why: '/dev/null opens, but QEMU cannot run a guest with KVM here (qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69)',
      });
    });

    it('a fake QEMU whose guest prints nothing is refused at the timeout, and killed', async () => {
      const qemu = await fakeQemu('silent', `echo $$ > ${path.join(fakes, 'silent.pid')}\nexec sleep 60`);
      const r = await kvmWorks(qemu, '/nonexistent/vmlinuz', { device: '/dev/null', timeoutMs: 300 });
      expect(r).toEqual({
        ok: false,
        why: '/dev/null opens, but a guest kernel booted with KVM printed nothing within 300 ms',
      });
      // The answer comes once QEMU is gone (the script exec'd into sleep: that process was killed).
      const pid = Number((await readFile(path.join(fakes, 'silent.pid'), 'utf8')).trim());
      expect(existsSync(`/proc/${pid}`)).toBe(false);
    });

    it.runIf(haveQemu && existsSync(path.join(REAL_ASSETS, 'vmlinuz')))(
      'sees the banner of the real guest kernel (booted with TCG: the probe itself, where no working KVM is)',
      async () => {
        expect(
          await kvmWorks('qemu-system-x86_64', path.join(REAL_ASSETS, 'vmlinuz'), {
            accel: 'tcg',
            timeoutMs: 60_000,
          }),
        ).toEqual({ ok: true });
      },
    );
  });
});
