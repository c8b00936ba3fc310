/**
 * EXECUTOR_JOB_NETWORK=isolated as one unit: the Docker network (job-network.ts) and the firewall
 * rules (egress-rules.ts, firewall.ts) computed from the configuration and the host. `install`
 * creates what is missing and replaces our rules; `check` only reads. Both answer with the
 * problems found, each with its fix, for the startup log, the dequeue guard and `executor validate`.
 */
import Dockerode from 'dockerode';
import type { EgressAllow } from '../../config/executor.js';
import type { Cidr } from '../../lib/cidr.js';
import { errorMessage } from '../../lib/errors.js';
import { dockerResolvers, endpointOf, hostAddresses } from './egress-inputs.js';
import { type EgressRules, type Endpoint, egressRules } from './egress-rules.js';
import { checkFamily, installFamily, removeFamily } from './firewall.js';
import { checkJobNetwork, ensureJobNetwork, removeJobNetwork } from './job-network.js';

export { hasNetAdmin } from './net-admin.js';

export interface IsolationOptions {
  networkName: string;
  subnet: Cidr;
  egressAllow: readonly EgressAllow[];
  frontendUrl: string;
  registryMirrorUrls: readonly string[];
  docker?: Dockerode;
  /** Overrides (tests): the resolvers and host addresses read from the host otherwise. */
  resolvers?: string[];
  hostAddresses?: string[];
}

export interface IsolationReport {
  ok: boolean;
  /** What is missing or wrong, each a sentence. */
  problems: string[];
  /** How to fix it. */
  fix: string;
  /** Things that work but deserve a line (a queue server host that did not resolve). */
  warnings: string[];
}

export const FIREWALL_FIX =
  'run the executor as root or with CAP_NET_ADMIN (it installs the rules at start), or run `executor install` as root once; see docs/security.md, "Network"';

async function resolveEndpoint(url: string, what: string, warnings: string[]): Promise<Endpoint | undefined> {
  try {
    return await endpointOf(url);
  } catch (e) {
    warnings.push(
      `${what} ${url} did not resolve (${errorMessage(e)}); steps cannot reach it unless it is public`,
    );
    return undefined;
  }
}

async function rulesFor(opts: IsolationOptions, bridge: string, gateway: string | undefined) {
  const warnings: string[] = [];
  const queue = (await resolveEndpoint(opts.frontendUrl, 'the queue server', warnings)) ?? {
    addresses: [],
    port: 0,
  };
  // host.docker.internal is the network's gateway inside a container.
  if (new URL(opts.frontendUrl).hostname === 'host.docker.internal' && gateway) queue.addresses.push(gateway);
  const mirrors: Endpoint[] = [];
  for (const m of opts.registryMirrorUrls) {
    const e = await resolveEndpoint(m, 'the registry mirror', warnings);
    if (e) mirrors.push(e);
  }
  const rules = egressRules(opts.networkName, {
    bridge,
    subnet: opts.subnet,
    queueServer: queue,
    resolvers: opts.resolvers ?? (await dockerResolvers()),
    registryMirrors: mirrors,
    allow: [...opts.egressAllow],
    hostAddresses: opts.hostAddresses ?? hostAddresses(),
  });
  return { rules, warnings };
}

async function run(opts: IsolationOptions, mode: 'install' | 'check'): Promise<IsolationReport> {
  const docker = opts.docker ?? new Dockerode();
  let net: Awaited<ReturnType<typeof checkJobNetwork>>;
  try {
    net =
      mode === 'install'
        ? await ensureJobNetwork(docker, opts.networkName, opts.subnet)
        : await checkJobNetwork(docker, opts.networkName, opts.subnet);
  } catch (e) {
    return {
      ok: false,
      problems: [`the Docker daemon does not answer: ${errorMessage(e)}`],
      fix: 'start Docker',
      warnings: [],
    };
  }
  if (!net.ok) return { ok: false, problems: [net.problem], fix: net.fix, warnings: [] };
  const { rules, warnings } = await rulesFor(opts, net.bridge, net.gateway);
  const problems: string[] = [];
  for (const family of [rules.v4, rules.v6]) {
    for (const p of mode === 'install' ? await installFamily(family) : await checkFamily(family))
      problems.push(p);
  }
  return { ok: problems.length === 0, problems, fix: FIREWALL_FIX, warnings };
}

/** Installs of one network in this process, one after the other (several executors per process). */
const installing = new Map<string, Promise<unknown>>();

export function installIsolation(opts: IsolationOptions): Promise<IsolationReport> {
  const before = installing.get(opts.networkName) ?? Promise.resolve();
  const mine = before.catch(() => {}).then(() => run(opts, 'install'));
  installing.set(opts.networkName, mine);
  void mine.finally(() => {
    if (installing.get(opts.networkName) === mine) installing.delete(opts.networkName);
  });
  return mine;
}
export const checkIsolation = (opts: IsolationOptions) => run(opts, 'check');

/** The rule set the current host and configuration call for (tests and `validate`). */
export async function plannedRules(opts: IsolationOptions, bridge: string): Promise<EgressRules> {
  return (await rulesFor(opts, bridge, undefined)).rules;
}

/** Removes our chains, jumps and the network (tests; an operator leaving `isolated`). */
export async function removeIsolation(opts: IsolationOptions, bridge: string): Promise<void> {
  const rules = await plannedRules(opts, bridge);
  await removeFamily(rules.v4);
  await removeFamily(rules.v6);
  await removeJobNetwork(opts.docker ?? new Dockerode(), opts.networkName);
}
