/**
 * EXECUTOR_JOB_NETWORK and the isolated job network's settings (docs/security.md, "Network"). The
 * docker and gvisor runtimes put step containers on a Docker network the executor owns, whose
 * egress is filtered by firewall rules (src/executor/network/).
 */
import { z } from 'zod';
import { type Cidr, formatCidr, parseCidr } from '../../lib/cidr.js';
import type { Catalogue, Values } from '../declare.js';
import { oneOf, type Parser } from '../parsers.js';

export type JobNetworkMode = 'isolated' | 'bridge' | 'none';

/** One EXECUTOR_JOB_EGRESS_ALLOW entry: a prefix, and a port (TCP and UDP) or every port. */
export interface EgressAllow {
  cidr: Cidr;
  port?: number;
}

/**
 * 10.91.0.0/22: outside Docker's default address pools (172.17-31.0.0/16, 192.168.0.0/16 in /20s),
 * the Kubernetes defaults (10.96.0.0/12 services, 10.244.0.0/16 flannel, 10.42-43 k3s), GCP's
 * auto-mode VPCs (10.128.0.0/9) and Azure's default (10.0.0.0/16); 1022 addresses, one per
 * running step. It is inside 10.0.0.0/8, which the rules refuse as a destination, so job containers
 * cannot reach each other either. Containers resolve names through Docker's embedded DNS
 * (127.0.0.11 inside their own network namespace), never through the gateway, so no address of
 * the subnet itself needs an allow rule.
 */
export const DEFAULT_JOB_SUBNET = '10.91.0.0/22';

const dockerNetworkName = (): Parser<string> =>
  z
    .string()
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/,
      'must be a Docker network name (letters, digits, "_", "." or "-")',
    )
    .refine((s) => !['bridge', 'host', 'none', 'default'].includes(s), {
      message: "must not be one of Docker's own networks (bridge, host, none)",
    });

const jobSubnet = (): Parser<Cidr> =>
  z.string().transform((s, ctx) => {
    const c = parseCidr(s);
    if ('error' in c) {
      ctx.addIssue({ code: 'custom', message: c.error });
      return z.NEVER;
    }
    if (c.family !== 4 || c.prefix < 16 || c.prefix > 28) {
      ctx.addIssue({ code: 'custom', message: `"${s}" must be an IPv4 CIDR with a prefix of /16 to /28` });
      return z.NEVER;
    }
    return c;
  });

/**
 * Parses one allow entry: `CIDR`, `address`, `CIDR:port`, or for IPv6 with a port `[CIDR]:port`.
 * Returns the entry or a message naming the entry.
 */
export function parseEgressAllow(text: string): EgressAllow | { error: string } {
  const s = text.trim();
  let host = s;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(.*))?$/.exec(s);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2];
  } else if ((s.match(/:/g) ?? []).length === 1) {
    [host, portText] = s.split(':') as [string, string];
  }
  const cidr = parseCidr(host);
  if ('error' in cidr) return { error: `${JSON.stringify(s)}: ${cidr.error}` };
  if (portText === undefined) return { cidr };
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) {
    return { error: `${JSON.stringify(s)}: the port must be 1-65535` };
  }
  return { cidr, port };
}

export function formatEgressAllow(a: EgressAllow): string {
  if (a.port === undefined) return formatCidr(a.cidr);
  return a.cidr.family === 6 ? `[${formatCidr(a.cidr)}]:${a.port}` : `${formatCidr(a.cidr)}:${a.port}`;
}

const egressAllowList = (): Parser<EgressAllow[]> =>
  z.string().transform((s, ctx) => {
    const out: EgressAllow[] = [];
    const problems: string[] = [];
    for (const part of s.split(',')) {
      if (part.trim() === '') continue;
      const a = parseEgressAllow(part);
      if ('error' in a) problems.push(a.error);
      else out.push(a);
    }
    if (problems.length > 0) {
      ctx.addIssue({
        code: 'custom',
        message: `${problems.join('; ')} (entries are CIDR, CIDR:port or [IPv6 CIDR]:port, comma-separated)`,
      });
      return z.NEVER;
    }
    return out;
  });

export const JOB_NETWORK_ENV = {
  EXECUTOR_JOB_NETWORK: {
    default: 'isolated',
    description:
      "Network of step containers (docker and gvisor runtimes) and of VMs (vm runtime: user-mode networking from a holder container on that network): `isolated` (a network of the executor whose firewall rules refuse private, link-local and host addresses; see docs/security.md), `bridge` (Docker's default bridge, unfiltered: the operator must firewall it) or `none` (loopback only; for VMs no network device).",
    parse: oneOf(['isolated', 'bridge', 'none'], 'must be isolated, bridge or none'),
  },
  EXECUTOR_JOB_NETWORK_NAME: {
    default: 'executor-jobs',
    description:
      'Name of the Docker network `isolated` puts step containers on; the executor (or `executor install`) creates it. Its firewall chain is named after it.',
    parse: dockerNetworkName(),
  },
  EXECUTOR_JOB_NETWORK_SUBNET: {
    default: DEFAULT_JOB_SUBNET,
    description:
      "IPv4 subnet of the isolated network (/16 to /28). The default avoids Docker's address pools and common cloud and cluster ranges; change it if it overlaps a network the host routes to.",
    parse: jobSubnet(),
  },
  EXECUTOR_JOB_EGRESS_ALLOW: {
    description:
      'Comma-separated destinations `isolated` lets steps reach although they are private: `CIDR`, `CIDR:port` or `[IPv6 CIDR]:port` (TCP and UDP), e.g. an internal package mirror `10.1.2.3:443`.',
    parse: egressAllowList(),
  },
} as const satisfies Catalogue;

export interface JobNetworkConfig {
  jobNetwork: JobNetworkMode;
  jobNetworkName: string;
  jobNetworkSubnet: Cidr;
  jobEgressAllow: EgressAllow[];
}

export function jobNetworkConfig(v: Values<typeof JOB_NETWORK_ENV>): JobNetworkConfig {
  return {
    jobNetwork: v.EXECUTOR_JOB_NETWORK,
    jobNetworkName: v.EXECUTOR_JOB_NETWORK_NAME,
    jobNetworkSubnet: v.EXECUTOR_JOB_NETWORK_SUBNET,
    jobEgressAllow: v.EXECUTOR_JOB_EGRESS_ALLOW ?? [],
  };
}
