/**
 * Firecracker needs KVM (`/dev/kvm`). This build runs no microVMs: validate() reports whether the
 * host could, and every other method refuses with the same message, so a misconfigured executor
 * fails at startup instead of running jobs with a weaker sandbox than asked for. There is no
 * fallback and no imitation VM.
 */
import { existsSync } from 'node:fs';
import type { CheckResult, Runner, RunSpec, Runtime, Workspace } from '../types.js';

export const KVM_DEVICE = '/dev/kvm';
export const KVM_MISSING = 'Firecracker needs /dev/kvm, which is missing on this host';
export const FIRECRACKER_UNSUPPORTED =
  'the firecracker runtime is not available in this build; use the gvisor runtime for strong isolation without KVM';

export interface FirecrackerRuntimeOptions {
  /** Injectable for tests; default checks KVM_DEVICE. */
  kvmPresent?: () => boolean;
}

export function createFirecrackerRuntime(opts: FirecrackerRuntimeOptions = {}): Runtime {
  const kvmPresent = opts.kvmPresent ?? (() => existsSync(KVM_DEVICE));
  const refuse = (): never => {
    throw new Error(kvmPresent() ? FIRECRACKER_UNSUPPORTED : KVM_MISSING);
  };
  return {
    name: 'firecracker',
    stepKeyPrefix: 'step.docker',
    async validate(): Promise<CheckResult[]> {
      if (!kvmPresent()) return [{ name: 'kvm', ok: false, detail: KVM_MISSING }];
      return [
        { name: 'kvm', ok: true, detail: `${KVM_DEVICE} present` },
        { name: 'firecracker', ok: false, detail: FIRECRACKER_UNSUPPORTED },
      ];
    },
    async version(): Promise<string> {
      return refuse();
    },
    async prepareWorkspace(): Promise<Workspace> {
      return refuse();
    },
    async newRunner(): Promise<Runner> {
      return refuse();
    },
    specs(): RunSpec[] {
      return refuse();
    },
    async cleanupOrphans(): Promise<string[]> {
      return refuse();
    },
  };
}
