import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  createFirecrackerRuntime,
  FIRECRACKER_UNSUPPORTED,
  KVM_MISSING,
} from '../../../../src/executor/runtimes/firecracker/firecracker-runtime.js';
import type { JobContext, Workspace } from '../../../../src/executor/runtimes/types.js';
import type { Job } from '../../../../src/protocol/job.js';

const job = {} as Job;
const ws = {} as Workspace;
const ctx = {} as JobContext;

describe('firecracker runtime', () => {
  it('fails validation clearly on a host without /dev/kvm', async () => {
    const rt = createFirecrackerRuntime({ kvmPresent: () => false });
    expect(rt.name).toBe('firecracker');
    expect(await rt.validate()).toEqual([{ name: 'kvm', ok: false, detail: KVM_MISSING }]);
    expect(KVM_MISSING).toBe('Firecracker needs /dev/kvm, which is missing on this host');
  });

  it('refuses every operation with the same message when KVM is missing', async () => {
    const rt = createFirecrackerRuntime({ kvmPresent: () => false });
    await expect(rt.version()).rejects.toThrow(KVM_MISSING);
    await expect(rt.prepareWorkspace(job, ctx)).rejects.toThrow(KVM_MISSING);
    await expect(rt.newRunner(job, ws, ctx)).rejects.toThrow(KVM_MISSING);
    expect(() => rt.specs(job, ws)).toThrow(KVM_MISSING);
    await expect(rt.cleanupOrphans(new Set())).rejects.toThrow(KVM_MISSING);
  });

  it('still refuses (no imitation VM) where KVM exists', async () => {
    const rt = createFirecrackerRuntime({ kvmPresent: () => true });
    const checks = await rt.validate();
    expect(checks.some((c) => !c.ok)).toBe(true);
    expect(checks.find((c) => c.name === 'kvm')?.ok).toBe(true);
    await expect(rt.newRunner(job, ws, ctx)).rejects.toThrow(FIRECRACKER_UNSUPPORTED);
  });

  it('checks the real /dev/kvm by default', async () => {
    const [kvm] = await createFirecrackerRuntime().validate();
    expect(kvm?.ok).toBe(existsSync('/dev/kvm'));
  });
});
