/**
 * Gathers what egress-rules.ts needs from the host: the queue server's and registry mirrors'
 * addresses (resolved now; a changed DNS answer shows up as a rule difference at the next check),
 * the DNS servers Docker's embedded resolver forwards to, and the host's own addresses.
 */
import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import os from 'node:os';
import type { Endpoint } from './egress-rules.js';

/** Docker copies the host's resolv.conf; with systemd-resolved's stub it reads the upstream file. */
const RESOLV_CONF = '/etc/resolv.conf';
const RESOLVED_UPSTREAM = '/run/systemd/resolve/resolv.conf';

export function nameservers(resolvConf: string): string[] {
  return resolvConf
    .split('\n')
    .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
    .filter((a): a is string => a !== undefined && isIP(a.split('%')[0]!) !== 0);
}

const loopback = (a: string) => a.startsWith('127.') || a === '::1';

/**
 * The upstream resolvers of Docker's embedded DNS (what containers on a user-defined network use):
 * the host's resolv.conf nameservers without loopback ones, as dockerd filters them. When only
 * loopback ones remain Docker uses public resolvers, which the rules allow anyway.
 */
export async function dockerResolvers(read = (p: string) => readFile(p, 'utf8')): Promise<string[]> {
  let servers = nameservers(await read(RESOLV_CONF).catch(() => ''));
  if (servers.length > 0 && servers.every(loopback)) {
    servers = nameservers(await read(RESOLVED_UPSTREAM).catch(() => ''));
  }
  return servers.filter((s) => !loopback(s));
}

export function hostAddresses(): string[] {
  return Object.values(os.networkInterfaces())
    .flatMap((list) => list ?? [])
    .map((i) => i.address);
}

const defaultPort = (u: URL) => Number(u.port) || (u.protocol === 'https:' ? 443 : 80);

/** The URL's host resolved to every address it has, and its port. */
export async function endpointOf(url: string): Promise<Endpoint> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = defaultPort(u);
  if (isIP(host)) return { addresses: [host], port };
  const found = await lookup(host, { all: true });
  return { addresses: [...new Set(found.map((a) => a.address))].sort(), port };
}
