/**
 * IP prefixes (CIDR) as text in, canonical text out: parsing, normalising and containment for IPv4
 * and IPv6. Pure; Node's `net.isIP` decides what an address is.
 */
import { isIP } from 'node:net';

export interface Cidr {
  family: 4 | 6;
  /** The network address in canonical form (host bits cleared). */
  address: string;
  prefix: number;
}

function v4ToBigInt(a: string): bigint {
  return a.split('.').reduce((n, p) => (n << 8n) | BigInt(Number(p)), 0n);
}

function v6ToBigInt(a: string): bigint {
  let s = a;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (m) {
    const n = v4ToBigInt(m[2]!);
    s = `${m[1]}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((n, g) => (n << 16n) | BigInt(Number.parseInt(g || '0', 16)), 0n);
}

function bigIntToV4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join('.');
}

function bigIntToV6(n: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => ((n >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  // RFC 5952: the longest run (of two or more) of zero groups becomes `::`.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

const bits = (family: 4 | 6) => (family === 4 ? 32 : 128);

function toBigInt(address: string, family: 4 | 6): bigint {
  return family === 4 ? v4ToBigInt(address) : v6ToBigInt(address);
}

function mask(prefix: number, family: 4 | 6): bigint {
  const width = BigInt(bits(family));
  return prefix === 0 ? 0n : ((1n << width) - 1n) ^ ((1n << (width - BigInt(prefix))) - 1n);
}

/**
 * Parses `address` or `address/prefix` (a bare address is a host: /32 or /128). Returns an error
 * message instead of throwing. Host bits must be clear (`10.0.0.1/8` is refused: it is usually a
 * typo for an address or a network, and guessing which would widen or narrow a firewall rule).
 */
export function parseCidr(text: string): Cidr | { error: string } {
  const [addr, len, extra] = text.trim().split('/');
  if (extra !== undefined || !addr) return { error: `"${text}" is not an address or CIDR` };
  const family = isIP(addr);
  if (family !== 4 && family !== 6) return { error: `"${addr}" is not an IPv4 or IPv6 address` };
  const width = bits(family);
  const prefix = len === undefined ? width : Number(len);
  if (len !== undefined && (!/^\d{1,3}$/.test(len) || prefix > width)) {
    return { error: `"${text}": the prefix length must be 0-${width}` };
  }
  const n = toBigInt(addr, family);
  const net = n & mask(prefix, family);
  if (net !== n) {
    return {
      error: `"${text}" has host bits set; write the network (${formatCidr({ family, address: fromBigInt(net, family), prefix })}) or a single address`,
    };
  }
  return { family, address: fromBigInt(net, family), prefix };
}

function fromBigInt(n: bigint, family: 4 | 6): string {
  return family === 4 ? bigIntToV4(n) : bigIntToV6(n);
}

/** `address/prefix`, always with the prefix (as iptables prints it). */
export function formatCidr(c: Cidr): string {
  return `${c.address}/${c.prefix}`;
}

/** A single address as a host prefix. */
export function hostCidr(address: string): Cidr | undefined {
  const c = parseCidr(address);
  return 'error' in c ? undefined : c;
}

/** True when `address` lies inside `c`. */
export function cidrContains(c: Cidr, address: string): boolean {
  const family = isIP(address);
  if (family !== c.family) return false;
  return (toBigInt(address, c.family) & mask(c.prefix, c.family)) === toBigInt(c.address, c.family);
}

/** True when the two prefixes share at least one address. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  const p = Math.min(a.prefix, b.prefix);
  const m = mask(p, a.family);
  return (toBigInt(a.address, a.family) & m) === (toBigInt(b.address, b.family) & m);
}
