/**
 * What the vm runtime needs of this host, read for startup, `executor validate` and each VM: KVM,
 * the QEMU binary and its version, the guest assets (scripts/vm-assets.sh), and the TSC frequency an
 * emulated guest is told.
 */
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
