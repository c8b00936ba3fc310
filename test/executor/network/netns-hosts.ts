/**
 * Test hosts in a network namespace this test creates: a veth pair from the host into the
 * namespace, the hosts' addresses on the namespace side, a /32 route per address on the host, and
 * one Node process in the namespace serving HTTP on ports 80 and 8080 (answering `host <address>`)
 * and DNS on `dnsAddress` UDP 53 (every A question answered with `dnsAnswer`, others empty). Before anything is sent, every
 * address is checked with `ip route get` to lead into the namespace's veth; `create` throws
 * otherwise, after removing what it made. `remove` deletes the namespace (and with it the veth
 * pair and the routes); it is safe to call twice.
 *
 * Two test files may want the same address (every one has its metadata host at 169.254.169.254),
 * and vitest runs files in parallel: a lock directory, taken before anything is made and released
 * by `remove`, lets one file at a time hold test hosts. A lock whose holder died is taken over.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../helpers/env.js';

export interface NetnsHosts {
  ns: string;
  hostVeth: string;
  addresses: string[];
  remove(): Promise<void>;
}

const sh = (argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { stdio: 'pipe' }).toString();

const SERVER = `
const http = require('node:http');
const dgram = require('node:dgram');
const answer = process.argv[1].split('.').map(Number);
for (const port of [80, 8080]) {
  http.createServer((req, res) => res.end('host ' + req.socket.localAddress + ':' + port + '\\n')).listen(port, '0.0.0.0');
}
const dns = dgram.createSocket('udp4');
dns.on('message', (q, rinfo) => {
  // Header: same id, QR=1 RD RA, 1 question, 1 answer; the question copied; one A record.
  let i = 12;
  while (q[i] !== 0) i += q[i] + 1;
  const question = q.subarray(12, i + 5);
  const isA = q[i + 1] === 0 && q[i + 2] === 1;
  const head = Buffer.from([q[0], q[1], 0x81, 0x80, 0, 1, 0, isA ? 1 : 0, 0, 0, 0, 0]);
  const rr = isA ? Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...answer]) : Buffer.alloc(0);
  dns.send(Buffer.concat([head, question, rr]), rinfo.port, rinfo.address);
});
// Bound to the resolver's own address: a reply must come from the address the client asked.
dns.bind(53, process.argv[2], () => console.log('ready'));
`;

/** Root with iptables and Docker's DOCKER-USER chain: what the isolated job network's tests need. */
export function dockerUserChainWorks(): boolean {
  try {
    execFileSync('iptables', ['-S', 'DOCKER-USER'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

const LOCK = join(tmpdir(), 'executor-test-netns-hosts.lock');
/** Another file's hosts are held for its whole run (a few minutes under load). */
const LOCK_WAIT_MS = 540_000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function tryLock(): boolean {
  try {
    mkdirSync(LOCK);
  } catch {
    let holder = Number.NaN;
    try {
      holder = Number(readFileSync(join(LOCK, 'pid'), 'utf8'));
    } catch {
      // being written by its taker
    }
    if (Number.isInteger(holder) && !alive(holder)) rmSync(LOCK, { recursive: true, force: true });
    return false;
  }
  writeFileSync(join(LOCK, 'pid'), String(process.pid));
  return true;
}

async function lockTestHosts(): Promise<() => void> {
  await waitFor(tryLock, {
    timeoutMs: LOCK_WAIT_MS,
    intervalMs: 200,
    what: `the test-hosts lock ${LOCK} (another test file holds its network namespace)`,
  });
  let held = true;
  return () => {
    if (held) rmSync(LOCK, { recursive: true, force: true });
    held = false;
  };
}

/**
 * A shell script for a step: one `PROBE <target> ok|fail <seconds> <answer>` line per `host:port`
 * target (an HTTP request with busybox nc), then the answer of `nslookup <dnsName> <resolver>`.
 */
export function probeScript(targets: string[], dns?: { name: string; resolver: string }): string {
  return [
    'probe() { s=$(date +%s); if out=$(printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 20 "$1" "$2" 2>&1); then r=ok; else r=fail; fi; echo "PROBE $1:$2 $r $(( $(date +%s) - s )) $(echo $out | tr "\\r\\n" "  ")"; }',
    ...targets.map((t) => `probe ${t.replace(':', ' ')}`),
    ...(dns ? [`nslookup ${dns.name} ${dns.resolver} 2>&1 | tr "\\n" " "; echo`] : []),
  ].join('\n');
}

export interface ProbeResult {
  ok: boolean;
  seconds: number;
  out: string;
}

/** The PROBE lines of a step's output (raw, or as stored with `stdout: ` prefixes). */
export function parseProbes(output: string): Map<string, ProbeResult> {
  const results = new Map<string, ProbeResult>();
  for (const line of output.split('\n')) {
    const m = /^(?:stdout: )?PROBE (\S+) (ok|fail) (\d+) ?(.*)$/.exec(line);
    if (m) results.set(m[1]!, { ok: m[2] === 'ok', seconds: Number(m[3]), out: m[4]! });
  }
  return results;
}

export async function createNetnsHosts(opts: {
  tag: string;
  /** /30 for the veth pair, e.g. 10.93.6.0: host .1, namespace .2. */
  linkBase: string;
  addresses: string[];
  dnsAnswer: string;
  dnsAddress: string;
}): Promise<NetnsHosts> {
  const ns = `exj-${opts.tag}`;
  const hostVeth = `exjh${opts.tag}`.slice(0, 15);
  const nsVeth = `exjn${opts.tag}`.slice(0, 15);
  const base = opts.linkBase.split('.').slice(0, 3).join('.');
  const last = Number(opts.linkBase.split('.')[3]);
  const hostIp = `${base}.${last + 1}`;
  const nsIp = `${base}.${last + 2}`;
  let server: ChildProcess | undefined;
  const unlock = await lockTestHosts();
  const remove = async () => {
    if (server && server.exitCode === null) {
      server.kill('SIGKILL');
      await once(server, 'exit').catch(() => {});
    }
    try {
      sh(['ip', 'netns', 'del', ns]);
    } catch {
      // already gone
    }
    try {
      sh(['ip', 'link', 'del', hostVeth]);
    } catch {
      // removed with the namespace
    }
    unlock();
  };
  try {
    sh(['ip', 'netns', 'add', ns]);
    sh(['ip', 'link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', nsVeth]);
    sh(['ip', 'link', 'set', nsVeth, 'netns', ns]);
    sh(['ip', 'addr', 'add', `${hostIp}/30`, 'dev', hostVeth]);
    sh(['ip', 'link', 'set', hostVeth, 'up']);
    const inNs = (argv: string[]) => sh(['ip', 'netns', 'exec', ns, ...argv]);
    inNs(['ip', 'addr', 'add', `${nsIp}/30`, 'dev', nsVeth]);
    for (const a of opts.addresses) inNs(['ip', 'addr', 'add', `${a}/32`, 'dev', nsVeth]);
    inNs(['ip', 'link', 'set', nsVeth, 'up']);
    inNs(['ip', 'link', 'set', 'lo', 'up']);
    inNs(['ip', 'route', 'add', 'default', 'via', hostIp]);
    // replace, not add: a run killed before its cleanup may have left a route to the same address.
    for (const a of opts.addresses) sh(['ip', 'route', 'replace', `${a}/32`, 'via', nsIp, 'dev', hostVeth]);
    for (const a of opts.addresses) {
      const route = sh(['ip', 'route', 'get', a]);
      if (!new RegExp(`\\bdev ${hostVeth}\\b`).test(route)) {
        throw new Error(`aborting: ${a} does not route into the test namespace (${route.trim()})`);
      }
    }
    server = spawn(
      'ip',
      ['netns', 'exec', ns, process.execPath, '-e', SERVER, opts.dnsAnswer, opts.dnsAddress],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    await new Promise<void>((resolve, reject) => {
      server!.stdout!.on('data', (d) => {
        out += String(d);
        if (out.includes('ready')) resolve();
      });
      server!.once('exit', (code) => reject(new Error(`test host server exited (${code})`)));
    });
  } catch (e) {
    await remove();
    throw e;
  }
  return { ns, hostVeth, addresses: opts.addresses, remove };
}
