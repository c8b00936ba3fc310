/**
 * What EXECUTOR_JOB_NETWORK means at executor start, for the docker, gvisor and vm runtimes (vm:
 * its VMs' user-mode network leaves through the same Docker network, runtimes/vm/network.ts):
 * `isolated` adds the dequeue guard (installing when privileged), `bridge` logs a warning that
 * steps reach every address the host can, `none` needs nothing. Other runtimes are not concerned.
 */
import type { ExecutorConfig } from '../../config/executor.js';
import type { Logger } from '../../lib/logger.js';
import { checkIsolation, hasNetAdmin, type IsolationOptions, installIsolation } from './job-isolation.js';
import { createNetworkGuard } from './network-guard.js';

export type JobNetworkSettings = Pick<
  ExecutorConfig,
  | 'jobNetwork'
  | 'jobNetworkName'
  | 'jobNetworkSubnet'
  | 'jobEgressAllow'
  | 'frontendUrl'
  | 'dockerRegistryMirrorUrls'
>;

/** Test knobs: force check-only, or replace host facts. */
export interface JobNetworkOverrides extends Partial<Pick<IsolationOptions, 'resolvers' | 'hostAddresses'>> {
  install?: boolean;
  recheckMs?: number;
}

export function isolationOptions(config: JobNetworkSettings): IsolationOptions {
  return {
    networkName: config.jobNetworkName,
    subnet: config.jobNetworkSubnet,
    egressAllow: config.jobEgressAllow,
    frontendUrl: config.frontendUrl,
    registryMirrorUrls: config.dockerRegistryMirrorUrls,
  };
}

/** The runtimes whose steps use the Docker network EXECUTOR_JOB_NETWORK names. */
export const USES_JOB_NETWORK: ReadonlySet<string> = new Set(['docker', 'gvisor', 'vm']);

export const BRIDGE_WARNING =
  'EXECUTOR_JOB_NETWORK=bridge: steps can reach every address this host can, including private networks, the host and cloud metadata (169.254.169.254); firewall the Docker bridge yourself or use isolated (docs/security.md, "Network")';

export function jobNetworkGuards(
  config: JobNetworkSettings,
  runtimeName: string,
  logger: Logger,
  overrides: JobNetworkOverrides = {},
): (() => Promise<boolean>)[] {
  if (!USES_JOB_NETWORK.has(runtimeName)) return [];
  if (config.jobNetwork === 'bridge') logger.warn(BRIDGE_WARNING);
  if (config.jobNetwork !== 'isolated') return [];
  const opts: IsolationOptions = {
    ...isolationOptions(config),
    resolvers: overrides.resolvers,
    hostAddresses: overrides.hostAddresses,
  };
  const install = overrides.install ?? hasNetAdmin();
  logger.info(
    install
      ? 'EXECUTOR_JOB_NETWORK=isolated: installing the job network and its firewall rules'
      : 'EXECUTOR_JOB_NETWORK=isolated: no privilege to change the firewall (root or CAP_NET_ADMIN); checking that the rules are in place',
    { network: config.jobNetworkName },
  );
  return [
    createNetworkGuard({
      ensure: () => (install ? installIsolation(opts) : checkIsolation(opts)),
      logger,
      recheckMs: overrides.recheckMs,
    }),
  ];
}
