/**
 * The Docker network of EXECUTOR_JOB_NETWORK=isolated: a bridge network with our subnet, a known
 * bridge interface name (the IPv6 rules match on it) and inter-container traffic off (jobs do not
 * see each other). Created when absent; an existing network of that name is used only when it has
 * the configured subnet, never changed or removed by the executor (containers may be attached).
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type Dockerode from 'dockerode';
import { type Cidr, formatCidr } from '../../lib/cidr.js';
import { HOLDER_ROLE, LABELS } from '../runtimes/docker/convert.js';
import { forceRemove } from '../runtimes/docker/engine.js';
import { pidAlive } from '../runtimes/docker/orphans.js';

const BRIDGE_NAME_OPTION = 'com.docker.network.bridge.name';
export const NETWORK_LABEL = 'executor.network';

/** The bridge interface: the network name when it is a valid interface name, else `exj-<hash>`. */
export function bridgeName(networkName: string): string {
  return /^[A-Za-z0-9_-]{1,15}$/.test(networkName)
    ? networkName
    : `exj-${createHash('sha256').update(networkName).digest('hex').slice(0, 11)}`;
}

interface NetworkInfo {
  Id: string;
  Driver?: string;
  IPAM?: { Config?: { Subnet?: string; Gateway?: string }[] };
  Options?: Record<string, string>;
}

export type JobNetworkState =
  | { ok: true; bridge: string; gateway?: string }
  | { ok: false; problem: string; fix: string };

function statusOf(e: unknown): number | undefined {
  return (e as { statusCode?: number }).statusCode;
}

async function inspect(docker: Dockerode, name: string): Promise<NetworkInfo | undefined> {
  try {
    return (await docker.getNetwork(name).inspect()) as NetworkInfo;
  } catch (e) {
    if (statusOf(e) === 404) return undefined;
    throw e;
  }
}

function judge(name: string, subnet: Cidr, net: NetworkInfo): JobNetworkState {
  const subnets = (net.IPAM?.Config ?? []).map((c) => c.Subnet);
  const fix = `remove it (docker network rm ${name}) and let the executor or \`executor install\` create it, or set EXECUTOR_JOB_NETWORK_NAME to another name`;
  if (net.Driver !== 'bridge') {
    return { ok: false, problem: `Docker network ${name} exists with driver ${net.Driver}, not bridge`, fix };
  }
  if (!subnets.includes(formatCidr(subnet))) {
    return {
      ok: false,
      problem: `Docker network ${name} has subnet ${subnets.join(',') || 'none'}, not EXECUTOR_JOB_NETWORK_SUBNET=${formatCidr(subnet)}`,
      fix,
    };
  }
  const gateway = net.IPAM?.Config?.find((c) => c.Subnet === formatCidr(subnet))?.Gateway;
  return { ok: true, bridge: net.Options?.[BRIDGE_NAME_OPTION] ?? `br-${net.Id.slice(0, 12)}`, gateway };
}

/** Reports whether the network exists as configured. */
export async function checkJobNetwork(
  docker: Dockerode,
  name: string,
  subnet: Cidr,
): Promise<JobNetworkState> {
  const net = await inspect(docker, name);
  if (!net) {
    return {
      ok: false,
      problem: `Docker network ${name} does not exist`,
      fix: 'run the executor once as root (or with CAP_NET_ADMIN), or run `executor install`, to create it',
    };
  }
  return judge(name, subnet, net);
}

/** Creates the network when absent (a concurrent creator is fine), then checks it. */
/** Whether the network exists or shows up within about two seconds (another creator's). */
async function appears(docker: Dockerode, name: string): Promise<boolean> {
  for (let i = 0; i < 10; i++) {
    if (await inspect(docker, name)) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

export async function ensureJobNetwork(
  docker: Dockerode,
  name: string,
  subnet: Cidr,
): Promise<JobNetworkState> {
  if (!(await inspect(docker, name))) {
    try {
      await docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        CheckDuplicate: true,
        IPAM: { Driver: 'default', Config: [{ Subnet: formatCidr(subnet) }] },
        Options: { [BRIDGE_NAME_OPTION]: bridgeName(name), 'com.docker.network.bridge.enable_icc': 'false' },
        Labels: { [NETWORK_LABEL]: 'isolated' },
      });
    } catch (e) {
      // Created by another executor in the meantime: Docker answers 409, or 403 "Pool overlaps"
      // when the other's network already holds the subnet (and may not list the network for a
      // moment yet). The check decides whether it is ours.
      if (statusOf(e) !== 409 && !(await appears(docker, name))) {
        return {
          ok: false,
          problem: `creating Docker network ${name} (${formatCidr(subnet)}) failed: ${(e as Error).message}`,
          fix: 'choose an EXECUTOR_JOB_NETWORK_SUBNET that overlaps no other Docker network or host route',
        };
      }
    }
  }
  return checkJobNetwork(docker, name, subnet);
}

/**
 * Removes the network (tests, uninstall); absent is fine. Docker refuses while containers are on
 * it: the network holders of this host's executors that are gone (killed before removing them; the
 * janitor of the next executor on this host would) are removed first. Those of a live one are not.
 */
export async function removeJobNetwork(docker: Dockerode, name: string): Promise<void> {
  const left = await docker
    .listContainers({
      all: true,
      filters: { network: [name], label: [`${LABELS.role}=${HOLDER_ROLE}`, `${LABELS.host}=${hostname()}`] },
    })
    .catch(() => []);
  for (const c of left) {
    if (!pidAlive(Number(c.Labels?.[LABELS.pid]))) await forceRemove(docker, c.Id);
  }
  try {
    await docker.getNetwork(name).remove();
  } catch (e) {
    if (statusOf(e) !== 404) throw e;
  }
}
