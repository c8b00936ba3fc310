/**
 * The isolated job network's firewall rules as a pure function of what the executor knows: the
 * job subnet and bridge, the queue server's addresses and port, the DNS resolvers the containers
 * are given, the registry mirrors, EXECUTOR_JOB_EGRESS_ALLOW and the host's own addresses.
 *
 * Per address family there are two chains of ours:
 *   - the forward chain (jumped to from DOCKER-USER; for IPv6 from FORWARD when Docker manages no
 *     ip6tables) sees packets the host routes onward: allows first, then REJECT for the blocked
 *     ranges and the host's addresses; anything else (public addresses) returns to Docker's rules;
 *   - the input chain (jumped to from INPUT) sees packets addressed to the host itself, which never
 *     pass FORWARD: allows first, then REJECT for everything.
 * Rules are REJECT, not DROP: a step that tries a blocked address gets a TCP reset or an ICMP
 * port-unreachable at once instead of waiting for a timeout. Every rule matches only the job
 * network (`-s <subnet>`, for IPv6 `-i <bridge>`, which has no IPv6 subnet), so containers on other
 * networks are never touched. The lines are in the form `iptables -S` prints, so the check compares
 * them as text.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { EgressAllow } from '../../config/executor.js';
import { type Cidr, cidrContains, formatCidr, hostCidr, parseCidr } from '../../lib/cidr.js';

/** Destinations no job may reach unless allowed: the list, IPv4 then IPv6. */
export const BLOCKED_V4 = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '169.254.0.0/16',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '0.0.0.0/8',
  '224.0.0.0/4',
  '240.0.0.0/4',
] as const;
export const BLOCKED_V6 = ['fc00::/7', 'fe80::/10', '::1/128', 'ff00::/8'] as const;

export interface Endpoint {
  addresses: string[];
  port: number;
}

export interface EgressInputs {
  /** The Docker network's bridge interface (IPv6 rules match on it). */
  bridge: string;
  subnet: Cidr;
  /** EXECUTOR_FRONTEND_URL's host, resolved, and its port. */
  queueServer: Endpoint;
  /** Addresses of the DNS servers Docker's embedded resolver forwards to (port 53, UDP and TCP). */
  resolvers: string[];
  /** EXECUTOR_DOCKER_REGISTRY_MIRROR_URL hosts, resolved. */
  registryMirrors: Endpoint[];
  allow: EgressAllow[];
  /** Every address of the host's interfaces. */
  hostAddresses: string[];
}

export type Hook = 'forward' | 'input';

export interface FamilyRules {
  family: 4 | 6;
  /** Our chains and their rules (`-A <chain> ...` lines), forward chain first. */
  chains: { name: string; hook: Hook; rules: string[] }[];
  /** The one jump per hook, without `-A <hook>`: e.g. `-s 10.91.0.0/22 -j EXECUTOR-JOBS`. */
  jumps: { hook: Hook; chain: string; spec: string }[];
}

export interface EgressRules {
  v4: FamilyRules;
  v6: FamilyRules;
}

/**
 * Chain names for a network: `EXECUTOR-JOBS` and `EXECUTOR-JOBS-IN` for the default
 * `executor-jobs`; a name that does not fit iptables' 28 characters cleanly becomes `EXJ-<hash>`.
 */
export function chainNames(networkName: string): { forward: string; input: string } {
  const upper = networkName.toUpperCase();
  const base =
    /^[A-Z0-9-]+$/.test(upper) && upper.length <= 22
      ? upper
      : `EXJ-${createHash('sha256').update(networkName).digest('hex').slice(0, 12)}`;
  return { forward: base, input: `${base}-IN` };
}

interface Allow {
  dst: Cidr;
  /** undefined = every port and protocol */
  port?: number;
}

function allowsOf(inputs: EgressInputs): Allow[] {
  const out: Allow[] = [];
  const hosts = (e: Endpoint) =>
    e.addresses.flatMap((a) => {
      const c = hostCidr(a);
      return c ? [{ dst: c, port: e.port }] : [];
    });
  for (const h of hosts(inputs.queueServer)) out.push(h);
  for (const r of inputs.resolvers) {
    const c = hostCidr(r);
    if (c) out.push({ dst: c, port: 53 });
  }
  for (const m of inputs.registryMirrors) for (const h of hosts(m)) out.push(h);
  for (const a of inputs.allow) out.push({ dst: a.cidr, port: a.port });
  // A container's loopback is its own: allowing 127.0.0.1 or ::1 would only add noise.
  const seen = new Set<string>();
  return out.filter((a) => {
    const key = `${formatCidr(a.dst)}:${a.port ?? ''}`;
    const loopback = a.dst.prefix === (a.dst.family === 4 ? 32 : 128) && isLoopback(a.dst.address);
    if (seen.has(key) || loopback) return false;
    seen.add(key);
    return true;
  });
}

function isLoopback(address: string): boolean {
  return isIP(address) === 4 ? address.startsWith('127.') : address === '::1';
}

function allowLines(chain: string, match: string, allows: Allow[]): string[] {
  return allows.flatMap((a) => {
    const d = formatCidr(a.dst);
    if (a.port === undefined) return [`-A ${chain} ${withDst(match, d)} -j RETURN`];
    return ['tcp', 'udp'].map(
      (p) => `-A ${chain} ${withDst(match, d)} -p ${p} -m ${p} --dport ${a.port} -j RETURN`,
    );
  });
}

/** iptables prints `-s` before `-d` before `-i`. */
function withDst(match: string, dst: string): string {
  return match.startsWith('-s ') ? `${match} -d ${dst}` : `-d ${dst} ${match}`;
}

function rejectLines(chain: string, match: string, dst: string | undefined, unreachable: string): string[] {
  const m = dst ? withDst(match, dst) : match;
  return [
    `-A ${chain} ${m} -p tcp -j REJECT --reject-with tcp-reset`,
    `-A ${chain} ${m} -j REJECT --reject-with ${unreachable}`,
  ];
}

function familyRules(
  family: 4 | 6,
  names: { forward: string; input: string },
  match: string,
  allows: Allow[],
  blocked: string[],
): FamilyRules {
  const unreachable = family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable';
  const established = (chain: string) =>
    `-A ${chain} ${match} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`;
  const forward = [
    established(names.forward),
    ...allowLines(names.forward, match, allows),
    ...blocked.flatMap((b) => rejectLines(names.forward, match, b, unreachable)),
  ];
  const input = [
    established(names.input),
    ...allowLines(names.input, match, allows),
    ...rejectLines(names.input, match, undefined, unreachable),
  ];
  return {
    family,
    chains: [
      { name: names.forward, hook: 'forward', rules: forward },
      { name: names.input, hook: 'input', rules: input },
    ],
    jumps: [
      { hook: 'forward', chain: names.forward, spec: `${match} -j ${names.forward}` },
      { hook: 'input', chain: names.input, spec: `${match} -j ${names.input}` },
    ],
  };
}

/** Host addresses not already inside a blocked range, as host prefixes. */
function extraHostBlocks(hostAddresses: string[], family: 4 | 6, blocked: readonly string[]): string[] {
  const ranges = blocked.map((b) => parseCidr(b) as Cidr);
  const out = new Set<string>();
  for (const a of hostAddresses) {
    const c = hostCidr(a.split('%')[0]!);
    if (!c || c.family !== family || ranges.some((r) => cidrContains(r, c.address))) continue;
    out.add(formatCidr(c));
  }
  return [...out].sort();
}

/** The complete rule set; equal inputs give equal output (the check compares it as text). */
export function egressRules(networkName: string, inputs: EgressInputs): EgressRules {
  const names = chainNames(networkName);
  const v6Names = names;
  const allows = allowsOf(inputs);
  const v4Blocked = [...BLOCKED_V4, ...extraHostBlocks(inputs.hostAddresses, 4, BLOCKED_V4)];
  const v6Blocked = [...BLOCKED_V6, ...extraHostBlocks(inputs.hostAddresses, 6, BLOCKED_V6)];
  return {
    v4: familyRules(
      4,
      names,
      `-s ${formatCidr(inputs.subnet)}`,
      allows.filter((a) => a.dst.family === 4),
      v4Blocked,
    ),
    v6: familyRules(
      6,
      v6Names,
      `-i ${inputs.bridge}`,
      allows.filter((a) => a.dst.family === 6),
      v6Blocked,
    ),
  };
}

/**
 * The `iptables-restore --noflush` script that replaces our chains and leaves exactly one jump per
 * hook: declaring a chain flushes it, `existingJumps[hook]` copies are deleted and one is inserted
 * first. The script is one transaction: when the jump count changed under us a `-D` fails and
 * nothing is applied (the caller re-reads and retries).
 */
export function installScript(
  rules: FamilyRules,
  hookChain: Record<Hook, string>,
  existingJumps: Record<Hook, number>,
): string {
  const lines = ['*filter'];
  for (const c of rules.chains) lines.push(`:${c.name} - [0:0]`);
  for (const c of rules.chains) for (const r of c.rules) lines.push(r);
  for (const j of rules.jumps) {
    for (let i = 0; i < existingJumps[j.hook]; i++) lines.push(`-D ${hookChain[j.hook]} ${j.spec}`);
    lines.push(`-I ${hookChain[j.hook]} 1 ${j.spec}`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** The script that removes our jumps (`existingJumps` copies) and chains. */
export function removeScript(
  rules: FamilyRules,
  hookChain: Record<Hook, string>,
  existingJumps: Record<Hook, number>,
  existingChains: ReadonlySet<string>,
): string {
  const lines = ['*filter'];
  for (const j of rules.jumps) {
    for (let i = 0; i < existingJumps[j.hook]; i++) lines.push(`-D ${hookChain[j.hook]} ${j.spec}`);
  }
  for (const c of rules.chains) {
    if (!existingChains.has(c.name)) continue;
    lines.push(`:${c.name} - [0:0]`, `-X ${c.name}`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}
