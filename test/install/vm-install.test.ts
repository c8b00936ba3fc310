/**
 * `executor install --vm`: where the guest assets are built (the env file's EXECUTOR_VM_ASSETS_DIR
 * over the installer's environment, under --root), the QEMU and KVM lines, and the command's flags.
 * The asset build itself is a stand-in here (it downloads a kernel package: run for real by hand,
 * see docs/operating.md); QEMU is the real binary where installed; KVM is given, so the lines are
 * the same on hosts with and without /dev/kvm.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ENV_PATH } from '../../src/executor/install/install.js';
import {
  DEFAULT_VM_INSTALL_DEPS,
  installVm,
  runAssetScript,
  type VmInstallDeps,
} from '../../src/executor/install/vm-install.js';
import { commandAvailable, dockerAvailable, requireOrSkip } from '../helpers/env.js';
import { spawnCli } from '../helpers/spawn-cli.js';

const haveQemu = requireOrSkip('QEMU (qemu-system-x86_64)', commandAvailable('qemu-system-x86_64'));
const hasDocker = requireOrSkip('docker', dockerAvailable());

const NO_KVM = async () => ({ ok: false, why: '/dev/kvm does not exist (test)' });

let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'vm-install-root-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** Real QEMU check; a stand-in asset build that records where it was asked to build. */
function deps(over: Partial<VmInstallDeps> = {}): VmInstallDeps & { built: string[] } {
  const built: string[] = [];
  return {
    ...DEFAULT_VM_INSTALL_DEPS,
    buildAssets: async (dir) => {
      built.push(dir);
      return [`[vm-assets] built ${dir} (kernel 6.1.0-test)`];
    },
    kvm: NO_KVM,
    built,
    ...over,
  };
}

function envFile(lines: string[]): string {
  const file = path.join(root, ENV_PATH);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

describe.skipIf(!haveQemu)('installVm', () => {
  it('builds into the EXECUTOR_VM_ASSETS_DIR of the env file, under the root, reports QEMU, refuses without KVM', async () => {
    const file = envFile(['EXECUTOR_VM_ASSETS_DIR=/srv/vm-assets']);
    const d = deps();
    const r = await installVm(
      { root, envPath: file, env: { EXECUTOR_VM_ASSETS_DIR: '/ignored' }, dryRun: false },
      d,
    );
    const dir = path.join(root, 'srv/vm-assets');
    expect(d.built).toEqual([dir]);
    expect(r.lines[0]).toBe(`  [vm-assets] built ${dir} (kernel 6.1.0-test)`);
    expect(r.lines[1]).toBe(`✓ vm assets: the guest kernel and initramfs are in ${dir}`);
    expect(r.lines[2]).toMatch(/^✓ qemu: qemu-system-x86_64: QEMU emulator version \d/);
    expect(r.lines[3]).toBe(
      '✗ kvm: /dev/kvm does not exist (test); the executor will not start with EXECUTOR_RUNTIME=vm. Fix: enable KVM (docs/operating.md, "The vm runtime"), or set EXECUTOR_VM_ALLOW_EMULATION=true for tests and trials',
    );
    expect(r.ok).toBe(false);
  });

  it('the default directory; emulation allowed passes without KVM, saying so; KVM passes', async () => {
    const d = deps();
    const r = await installVm(
      {
        root,
        envPath: path.join(root, ENV_PATH),
        env: { EXECUTOR_VM_ALLOW_EMULATION: 'true' },
        dryRun: false,
      },
      d,
    );
    expect(d.built).toEqual([path.join(root, 'var/lib/executor/vm')]);
    expect(r.lines.at(-1)).toBe(
      '✓ kvm: /dev/kvm does not exist (test); EXECUTOR_VM_ALLOW_EMULATION=true: VMs are EMULATED, for tests and trials only',
    );
    expect(r.ok).toBe(true);

    const probed: string[][] = [];
    const withKvm = await installVm(
      { root, envPath: path.join(root, ENV_PATH), env: {}, dryRun: false },
      deps({
        kvm: async (qemu: string, kernel: string) => {
          probed.push([qemu, kernel]);
          return { ok: true };
        },
      }),
    );
    // KVM is probed by booting the kernel just built, with the configured QEMU.
    expect(probed).toEqual([['qemu-system-x86_64', path.join(root, 'var/lib/executor/vm', 'vmlinuz')]]);
    expect(withKvm.lines.at(-1)).toBe(
      '✓ kvm: /dev/kvm is usable and a guest kernel boots with it: VMs run with hardware virtualisation',
    );
    expect(withKvm.ok).toBe(true);
  });

  it('a failed build, a QEMU that does not run and a relative directory are each a ✗ with the fix', async () => {
    const failed = await installVm(
      {
        root,
        envPath: path.join(root, ENV_PATH),
        env: { EXECUTOR_VM_QEMU: '/nonexistent/qemu' },
        dryRun: false,
      },
      deps({
        buildAssets: async () => {
          throw new Error('[vm-assets] error: busybox is missing: apt-get install busybox-static');
        },
        kvm: async () => ({ ok: true }),
      }),
    );
    expect(failed.ok).toBe(false);
    expect(failed.lines[0]).toMatch(
      /^✗ vm assets: building them in .* failed: \[vm-assets\] error: busybox is missing: apt-get install busybox-static\. Fix: run as root on Debian 12/,
    );
    expect(failed.lines[1]).toMatch(
      /^✗ qemu: \/nonexistent\/qemu does not run \(.*\)\. Fix: apt-get install qemu-system-x86, or set EXECUTOR_VM_QEMU$/,
    );

    const d = deps({ kvm: async () => ({ ok: true }) });
    const relative = await installVm(
      { root, envPath: path.join(root, ENV_PATH), env: { EXECUTOR_VM_ASSETS_DIR: 'vm' }, dryRun: false },
      d,
    );
    expect(d.built).toEqual([]);
    expect(relative.lines[0]).toBe('✗ vm assets: EXECUTOR_VM_ASSETS_DIR=vm: must be an absolute path');
  });

  it('a dry run builds nothing and says where it would', async () => {
    const d = deps({ kvm: async () => ({ ok: true }) });
    const r = await installVm({ root, envPath: path.join(root, ENV_PATH), env: {}, dryRun: true }, d);
    expect(d.built).toEqual([]);
    expect(r.lines[0]).toBe(
      `- vm assets: would build the guest kernel and initramfs in ${path.join(root, 'var/lib/executor/vm')} (scripts/vm-assets.sh)`,
    );
    expect(r.ok).toBe(true);
  });
});

describe('runAssetScript', () => {
  it('without the script (a single-file binary) names npm run vm-assets', async () => {
    await expect(runAssetScript('/srv/vm', '/nonexistent/vm-assets.sh')).rejects.toThrow(
      'the asset script is not installed with this executor (no /nonexistent/vm-assets.sh; a single-file binary has none): run `npm run vm-assets` in a checkout of the same version with EXECUTOR_VM_ASSETS_DIR=/srv/vm',
    );
  });

  it("fails with the script's own words", async () => {
    const script = path.join(root, 'fails.sh');
    writeFileSync(
      script,
      'echo "[vm-assets] downloading"; echo "[vm-assets] error: no archive" >&2; exit 1\n',
    );
    await expect(runAssetScript('/srv/vm', script)).rejects.toThrow(
      '[vm-assets] downloading\n[vm-assets] error: no archive',
    );
  });
});

describe.skipIf(!hasDocker || !haveQemu)('executor install --vm', () => {
  const env = {
    EXECUTOR_FRONTEND_URL: 'http://127.0.0.1:3080',
    EXECUTOR_FRONTEND_PASSWORD: 'pw',
    EXECUTOR_QUEUE_NAME: 'q',
    EXECUTOR_VM_ALLOW_EMULATION: 'true',
  };

  it('a dry run sets EXECUTOR_RUNTIME=vm, would build the assets, checks QEMU and KVM, writes nothing', async () => {
    const dry = spawnCli(['install', '--root', root, '--dry-run', '--vm'], env);
    expect(await dry.exited, dry.output()).toBe(0);
    const out = dry.output();
    expect(out).toContain('    EXECUTOR_RUNTIME="vm"');
    expect(out).toContain(
      `- vm assets: would build the guest kernel and initramfs in ${path.join(root, 'var/lib/executor/vm')}`,
    );
    expect(out).toMatch(/^✓ qemu: qemu-system-x86_64: QEMU emulator version/m);
    expect(out).toMatch(/^✓ kvm: /m);
    expect(readdirSync(root)).toEqual([]);
  }, 60_000);

  it('refuses --vm with --with-gvisor (exit 2)', async () => {
    const both = spawnCli(['install', '--root', root, '--vm', '--with-gvisor'], env);
    expect(await both.exited).toBe(2);
    expect(both.output()).toContain('--vm: the runtime is either vm or gvisor; choose one');
  }, 60_000);
});
