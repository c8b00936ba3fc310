/**
 * What the vm runtime needs of this host, read for startup, `executor validate` and each VM: KVM,
 * the QEMU binary and its version, the guest assets (scripts/vm-assets.sh), and the TSC frequency an
 * emulated guest is told.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../../../lib/errors.js';
import { commandOutput } from '../../command.js';

export const KVM_DEVICE = '/dev/kvm';

export const EMULATION_WARNING =
  'EXECUTOR_RUNTIME=vm without KVM: job steps run in EMULATED virtual machines (QEMU TCG), tens of times slower than with KVM; EXECUTOR_VM_ALLOW_EMULATION=true is meant for tests and trials, not for real work';

/** Whether /dev/kvm can be opened for reading and writing by this process. */
export async function kvmUsable(device = KVM_DEVICE): Promise<{ ok: boolean; why?: string }> {
  try {
    const fh = await open(device, 'r+');
    await fh.close();
    return { ok: true };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return {
      ok: false,
      why:
        code === 'ENOENT'
          ? `${device} does not exist (no hardware virtualisation here, or the kvm module is not loaded)`
          : `${device} cannot be opened: ${errorMessage(err)}`,
    };
  }
}

/** How long the KVM probe waits for the guest kernel's first line. */
export const KVM_PROBE_TIMEOUT_MS = 15_000;

/**
 * Whether VMs can run with KVM here: /dev/kvm opens (kvmUsable), and QEMU, given it, starts the
 * guest kernel (`kernel`, booted with no root file system) far enough to print its banner within
 * `timeoutMs`. A device that opens is not enough: under some nested virtualisation QEMU aborts
 * setting the virtual CPU's registers, or the guest stops before its first line.
 */
export async function kvmWorks(
  qemu: string,
  kernel: string,
  /** `accel: 'tcg'` probes the same way without KVM: for tests, where no working KVM exists. */
  opts: { device?: string; timeoutMs?: number; accel?: 'kvm' | 'tcg' } = {},
): Promise<{ ok: boolean; why?: string }> {
  const device = opts.device ?? KVM_DEVICE;
  const kvm = (opts.accel ?? 'kvm') === 'kvm';
  if (kvm) {
    const usable = await kvmUsable(device);
    if (!usable.ok) return usable;
  }
  const argv = [
    ...['-M', 'microvm,rtc=on', '-accel', kvm ? 'kvm' : 'tcg', '-cpu', kvm ? 'host' : 'max'],
    ...['-smp', '1', '-m', '128M'],
    ...['-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio', '-no-reboot'],
    ...['-kernel', kernel, '-append', 'console=ttyS0 earlyprintk=ttyS0 panic=-1 reboot=t'],
  ];
  const timeoutMs = opts.timeoutMs ?? KVM_PROBE_TIMEOUT_MS;
  const within = timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`;
  // Answers once QEMU is gone: killed when the banner came or the time ran out, or exited by itself.
  return new Promise((resolve) => {
    let out = '';
    let verdict: { ok: boolean; why?: string } | undefined;
    const child = spawn(qemu, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const decide = (v: { ok: boolean; why?: string }) => {
      if (verdict) return;
      verdict = v;
      clearTimeout(timer);
      child.kill('SIGKILL');
    };
    const timer = setTimeout(
      () =>
        decide({
          ok: false,
          why: `${device} opens, but a guest kernel booted with KVM printed nothing within ${within}`,
        }),
      timeoutMs,
    );
    const read = (chunk: Buffer) => {
      out = (out + chunk.toString('latin1')).slice(-4096);
      if (out.includes('Linux version')) decide({ ok: true });
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve(verdict ?? { ok: false, why: `${qemu} does not run: ${errorMessage(err)}` });
    });
    child.on('close', () => {
      clearTimeout(timer);
      const said =
        out
          .split('\n')
          .find((l) => /error|assert/i.test(l))
          ?.trim() ?? out.trim().split('\n').at(-1);
      resolve(
        verdict ?? {
          ok: false,
          why: `${device} opens, but QEMU cannot run a guest with KVM here${said ? ` (${said.slice(0, 200)})` : ''}`,
        },
      );
    });
  });
}

/** The first line of `qemu --version`, e.g. `QEMU emulator version 7.2.22 (Debian ...)`. */
export async function qemuVersion(qemu: string): Promise<string> {
  const out = await commandOutput([qemu, '--version'], 10_000);
  return out.split('\n')[0]?.trim() ?? '';
}

export interface AssetsInfo {
  kernelVersion?: string;
  kernelPackage?: string;
  /** SHA-256 of the guest init the initramfs was built with (scripts/vm-assets.sh). */
  initSha256?: string;
}

/**
 * SHA-256 of this executor's guest init (guest/init.sh next to this module, in src/ and in dist/),
 * undefined where it is not shipped as a file.
 */
export async function guestInitSha256(): Promise<string | undefined> {
  try {
    const text = await readFile(new URL('./guest/init.sh', import.meta.url));
    return createHash('sha256').update(text).digest('hex');
  } catch {
    return undefined;
  }
}

/**
 * Why the assets do not go with this executor (built from another guest init: an upgrade without
 * `npm run vm-assets`), or undefined when they do or either side is unknown.
 */
export function staleAssets(
  assets: AssetsInfo,
  initSha256: string | undefined,
  dir: string,
): string | undefined {
  if (!assets.initSha256 || !initSha256 || assets.initSha256 === initSha256) return undefined;
  return `the guest assets in ${dir} were built from another guest init than this executor's; rebuild them with \`npm run vm-assets\` (EXECUTOR_VM_ASSETS_DIR=${dir})`;
}

/** Checks that the kernel and initramfs are readable; returns what assets.json says of them. */
export async function readAssets(dir: string): Promise<AssetsInfo> {
  for (const f of ['vmlinuz', 'initramfs.img']) {
    try {
      await access(path.join(dir, f), constants.R_OK);
    } catch {
      throw new Error(
        `the guest assets are missing: no ${path.join(dir, f)}; build them with \`npm run vm-assets\` (EXECUTOR_VM_ASSETS_DIR=${dir})`,
      );
    }
  }
  try {
    return JSON.parse(await readFile(path.join(dir, 'assets.json'), 'utf8')) as AssetsInfo;
  } catch {
    return {};
  }
}

/** The host's TSC frequency in kHz from /proc/cpuinfo (`cpu MHz`), or undefined. */
export function parseCpuMHz(cpuinfo: string): number | undefined {
  const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo);
  if (!m) return undefined;
  const khz = Math.round(Number(m[1]) * 1000);
  return khz > 0 ? khz : undefined;
}

export async function hostTscKhz(): Promise<number | undefined> {
  try {
    return parseCpuMHz(await readFile('/proc/cpuinfo', 'utf8'));
  } catch {
    return undefined;
  }
}
