/**
 * `executor validate`'s line about the network each runtime gives job steps, and for
 * EXECUTOR_JOB_NETWORK=isolated whether the network and firewall rules are in place (read only:
 * validate never changes the firewall).
 */
import { formatCidr } from '../../lib/cidr.js';
import type { CheckResult } from '../runtimes/types.js';
import { checkIsolation } from './job-isolation.js';
import { BRIDGE_WARNING, isolationOptions, type JobNetworkSettings } from './job-network-guards.js';

export async function networkConfinement(
  config: JobNetworkSettings & { runtime: string },
): Promise<CheckResult> {
  const name = 'job network';
  switch (config.runtime) {
    case 'shell':
      return { name, ok: true, detail: "no isolation: steps run on this host with the host's network" };
    case 'kubernetes':
      return {
        name,
        ok: true,
        detail:
          'confined by the NetworkPolicy of deploy/kubernetes/job-network-policy.yaml where the cluster enforces NetworkPolicies (not checked from here)',
      };
    case 'vm':
      if (config.jobNetwork === 'none') return { name, ok: true, detail: 'none: VMs have no network device' };
      break;
    case 'docker':
    case 'gvisor':
      break;
    default:
      return { name, ok: true, detail: `not applicable to the ${config.runtime} runtime` };
  }
  if (config.jobNetwork === 'none') return { name, ok: true, detail: 'none: steps have loopback only' };
  if (config.jobNetwork === 'bridge') return { name, ok: true, detail: BRIDGE_WARNING };
  const r = await checkIsolation(isolationOptions(config));
  const where = `isolated on Docker network ${config.jobNetworkName} (${formatCidr(config.jobNetworkSubnet)})`;
  // runsc --network=host passes sockets through to the namespace the step joins (its job's network
  // holder's), so the host's rules see gVisor steps as they see runc ones
  // (test/executor/runtimes/docker/job-network.test.ts).
  const gvisor =
    config.runtime === 'gvisor'
      ? "; gVisor steps use their job's network namespace on it"
      : config.runtime === 'vm'
        ? "; VMs' user-mode networking leaves through a holder container on it"
        : '';
  return r.ok
    ? { name, ok: true, detail: `${where}: private, link-local and host addresses refused${gvisor}` }
    : {
        name,
        ok: false,
        detail: `${where}: ${r.problems.join('; ')}; the executor will not dequeue. Fix: ${r.fix}`,
      };
}
