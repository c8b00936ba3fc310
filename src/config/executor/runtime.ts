/**
 * EXECUTOR_RUNTIME: the sandbox of job steps. Nothing is guessed (inside a Kubernetes cluster with
 * no runtime named, Sourcegraph's rule picks `kubernetes`; see load-executor-config.ts).
 */
import { z } from 'zod';
import type { Parser } from '../parsers.js';

export type RuntimeName = 'docker' | 'gvisor' | 'shell' | 'kubernetes' | 'vm';
export const RUNTIME_NAMES: readonly RuntimeName[] = ['docker', 'gvisor', 'shell', 'kubernetes', 'vm'];

/**
 * Why `firecracker` (EXECUTOR_RUNTIME or the legacy EXECUTOR_USE_FIRECRACKER=true) is refused when
 * the configuration is loaded: this build has no Firecracker monitor, and a weaker sandbox than asked
 * for is never substituted. The vm runtime gives each step its own guest kernel with QEMU.
 */
export const FIRECRACKER_REFUSED =
  'the firecracker runtime is not available in this build; use the vm runtime (a QEMU microVM per step, with KVM) or the gvisor runtime for strong isolation without KVM';

export const runtimeName = (): Parser<RuntimeName> =>
  z.string().transform((s, ctx): RuntimeName => {
    if ((RUNTIME_NAMES as readonly string[]).includes(s)) return s as RuntimeName;
    ctx.addIssue({
      code: 'custom',
      message: s === 'firecracker' ? FIRECRACKER_REFUSED : `must be one of ${RUNTIME_NAMES.join(', ')}`,
    });
    return z.NEVER;
  });
