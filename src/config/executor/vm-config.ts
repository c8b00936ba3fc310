/**
 * The vm runtime's settings (EXECUTOR_VM_*), declared once: the variables, and the VmConfig the
 * runtime reads. vCPUs, memory and the workspace disk come from EXECUTOR_JOB_NUM_CPUS,
 * EXECUTOR_JOB_MEMORY and EXECUTOR_JOB_DISK_SPACE, as for containers.
 */
import { z } from 'zod';
import type { Catalogue, Values } from '../declare.js';
import { absolutePath, bool, sizeBytes } from '../parsers.js';

export interface VmConfig {
  qemu: string;
  assetsDir: string;
  allowEmulation: boolean;
  imageCacheDir: string;
  imageCacheBytes: number;
}

export const VM_ENV = {
  EXECUTOR_VM_QEMU: {
    default: 'qemu-system-x86_64',
    description:
      'vm runtime: the QEMU binary (a name on PATH or a path). It must offer `-M microvm` with ACPI (tested with QEMU 7.2, Debian 12).',
    parse: z.string().min(1, { message: 'must not be empty' }),
  },
  EXECUTOR_VM_ASSETS_DIR: {
    default: '/var/lib/executor/vm',
    description:
      'vm runtime: directory of the guest kernel (`vmlinuz`) and initramfs (`initramfs.img`), built from Debian packages by `npm run vm-assets` (scripts/vm-assets.sh), which writes here too.',
    parse: absolutePath(),
  },
  EXECUTOR_VM_ALLOW_EMULATION: {
    default: 'false',
    description:
      'vm runtime: without working KVM (`/dev/kvm` opens and QEMU boots the guest kernel with it) the executor refuses to start unless this is `true`; then VMs are emulated (QEMU TCG), tens of times slower, with a warning at startup. For tests and trials only.',
    parse: bool(),
  },
  EXECUTOR_VM_IMAGE_CACHE_DIR: {
    default: '/var/cache/executor/vm-images',
    description:
      "vm runtime: where step images' root disks (raw ext4, one per image id, converted from the local Docker daemon's images) are cached.",
    parse: absolutePath(),
  },
  EXECUTOR_VM_IMAGE_CACHE_SIZE: {
    default: '20GiB',
    description:
      'vm runtime: the most disk the root-disk cache may take; the least recently used disks not in use are deleted to make room for a new one.',
    parse: sizeBytes().refine((b) => b >= 64 * 1024 * 1024, { message: 'must be at least 64MiB' }),
  },
} as const satisfies Catalogue;

export function vmConfig(v: Values<typeof VM_ENV>): VmConfig {
  return {
    qemu: v.EXECUTOR_VM_QEMU,
    assetsDir: v.EXECUTOR_VM_ASSETS_DIR,
    allowEmulation: v.EXECUTOR_VM_ALLOW_EMULATION,
    imageCacheDir: v.EXECUTOR_VM_IMAGE_CACHE_DIR,
    imageCacheBytes: v.EXECUTOR_VM_IMAGE_CACHE_SIZE,
  };
}
