import { describe, expect, it } from 'vitest';
import { parseEgressAllow } from '../../../src/config/executor/job-network-config.js';
import { loadExecutorConfig } from '../../../src/config/executor.js';
import { nameservers } from '../../../src/executor/network/egress-inputs.js';
import {
  chainNames,
  type EgressInputs,
  egressRules,
  installScript,
} from '../../../src/executor/network/egress-rules.js';
import { type Cidr, cidrContains, cidrsOverlap, parseCidr } from '../../../src/lib/cidr.js';

const cidr = (s: string) => parseCidr(s) as Cidr;

const INPUTS: EgressInputs = {
  bridge: 'executor-jobs',
  subnet: cidr('10.91.0.0/22'),
  queueServer: { addresses: ['10.0.5.5', '2001:db8::5'], port: 443 },
  resolvers: ['10.255.255.53'],
  registryMirrors: [{ addresses: ['192.168.1.10'], port: 5000 }],
  allow: [{ cidr: cidr('10.1.2.0/24'), port: 8443 }, { cidr: cidr('172.20.0.0/16') }],
  hostAddresses: ['127.0.0.1', '192.0.2.2', '203.0.113.9', 'fd00::2', '2001:db8::2', 'fe80::1%eth0'],
};

describe('cidr', () => {
  it('parses, normalises and refuses host bits', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ family: 4, address: '10.0.0.0', prefix: 8 });
    expect(parseCidr('1.2.3.4')).toEqual({ family: 4, address: '1.2.3.4', prefix: 32 });
    expect(parseCidr('2001:0db8:0:0::/32')).toEqual({ family: 6, address: '2001:db8::', prefix: 32 });
    expect(parseCidr('::1')).toEqual({ family: 6, address: '::1', prefix: 128 });
    expect(parseCidr('10.0.0.1/8')).toEqual({
      error: expect.stringContaining('host bits set; write the network (10.0.0.0/8)'),
    });
    expect(parseCidr('10.0.0.0/33')).toEqual({ error: expect.stringContaining('0-32') });
    expect(parseCidr('example.com')).toEqual({ error: expect.stringContaining('not an IPv4 or IPv6') });
  });
  it('contains and overlaps', () => {
    expect(cidrContains(cidr('169.254.0.0/16'), '169.254.169.254')).toBe(true);
    expect(cidrContains(cidr('10.0.0.0/8'), '11.0.0.1')).toBe(false);
    expect(cidrContains(cidr('fc00::/7'), 'fd00::2')).toBe(true);
    expect(cidrsOverlap(cidr('10.91.0.0/22'), cidr('10.0.0.0/8'))).toBe(true);
    expect(cidrsOverlap(cidr('10.91.0.0/22'), cidr('10.92.0.0/22'))).toBe(false);
  });
});

describe('EXECUTOR_JOB_EGRESS_ALLOW and friends', () => {
  it('accepts CIDR, address, CIDR:port and [IPv6]:port', () => {
    expect(parseEgressAllow('10.1.2.0/24')).toEqual({ cidr: cidr('10.1.2.0/24') });
    expect(parseEgressAllow(' 10.1.2.3:443 ')).toEqual({ cidr: cidr('10.1.2.3/32'), port: 443 });
    expect(parseEgressAllow('fd00::/8')).toEqual({ cidr: cidr('fd00::/8') });
    expect(parseEgressAllow('[fd00::1]:8080')).toEqual({ cidr: cidr('fd00::1/128'), port: 8080 });
  });
  it('refuses bad input, naming the entry', () => {
    expect(parseEgressAllow('10.1.2.3:0')).toEqual({ error: '"10.1.2.3:0": the port must be 1-65535' });
    expect(parseEgressAllow('10.1.2.3:http')).toEqual({ error: '"10.1.2.3:http": the port must be 1-65535' });
    expect(parseEgressAllow('mirror.internal:443')).toEqual({
      error: expect.stringContaining('not an IPv4 or IPv6'),
    });
    expect(parseEgressAllow('10.1.2.3/16')).toEqual({ error: expect.stringContaining('host bits') });
  });
  it('reports every bad entry of the variable at once; validates name, subnet and mode', () => {
    const r = loadExecutorConfig({
      EXECUTOR_FRONTEND_URL: 'http://q:3080',
      EXECUTOR_FRONTEND_PASSWORD: 'x',
      EXECUTOR_QUEUE_NAME: 'q',
      EXECUTOR_JOB_EGRESS_ALLOW: '10.0.0.1:99999,nonsense',
      EXECUTOR_JOB_NETWORK_NAME: 'host',
      EXECUTOR_JOB_NETWORK_SUBNET: '2001:db8::/64',
      EXECUTOR_JOB_NETWORK: 'open',
    });
    expect(r.ok).toBe(false);
    const text = r.ok ? '' : r.problems.join('\n');
    expect(text).toContain(
      'EXECUTOR_JOB_EGRESS_ALLOW: "10.0.0.1:99999": the port must be 1-65535; "nonsense"',
    );
    expect(text).toContain("EXECUTOR_JOB_NETWORK_NAME: must not be one of Docker's own networks");
    expect(text).toContain('EXECUTOR_JOB_NETWORK_SUBNET: "2001:db8::/64" must be an IPv4 CIDR');
    expect(text).toContain('EXECUTOR_JOB_NETWORK: must be isolated, bridge or none');
  });
  it('reads nameservers from resolv.conf text', () => {
    expect(
      nameservers('# x\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\nsearch a\nnameserver bogus\n'),
    ).toEqual(['10.255.255.53', 'fe80::1%eth0']);
  });
});

describe('egressRules', () => {
  const rules = egressRules('executor-jobs', INPUTS);
  const fwd = rules.v4.chains[0]!;
  const inp = rules.v4.chains[1]!;

  it('names its chains after the network, hashing names that do not fit', () => {
    expect(chainNames('executor-jobs')).toEqual({ forward: 'EXECUTOR-JOBS', input: 'EXECUTOR-JOBS-IN' });
    expect(chainNames('my.jobs').forward).toMatch(/^EXJ-[0-9a-f]{12}$/);
    expect(chainNames('a-very-long-network-name-indeed').input.length).toBeLessThanOrEqual(28);
  });

  it('matches only the job subnet, allows before refusals, and refuses rather than drops', () => {
    expect(fwd.rules.every((r) => r.startsWith('-A EXECUTOR-JOBS -s 10.91.0.0/22 '))).toBe(true);
    expect(inp.rules.every((r) => r.startsWith('-A EXECUTOR-JOBS-IN -s 10.91.0.0/22 '))).toBe(true);
    const firstReject = fwd.rules.findIndex((r) => r.includes('REJECT'));
    const lastReturn = fwd.rules.findLastIndex((r) => r.endsWith('-j RETURN'));
    expect(lastReturn).toBeLessThan(firstReject);
    expect(fwd.rules.some((r) => r.includes('DROP'))).toBe(false);
    expect(rules.v4.jumps).toEqual([
      { hook: 'forward', chain: 'EXECUTOR-JOBS', spec: '-s 10.91.0.0/22 -j EXECUTOR-JOBS' },
      { hook: 'input', chain: 'EXECUTOR-JOBS-IN', spec: '-s 10.91.0.0/22 -j EXECUTOR-JOBS-IN' },
    ]);
  });

  it('allows the queue server, DNS, the mirror and the allow list, in iptables -S form', () => {
    const s = '-A EXECUTOR-JOBS -s 10.91.0.0/22';
    expect(fwd.rules).toEqual(
      expect.arrayContaining([
        `${s} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
        `${s} -d 10.0.5.5/32 -p tcp -m tcp --dport 443 -j RETURN`,
        `${s} -d 10.255.255.53/32 -p udp -m udp --dport 53 -j RETURN`,
        `${s} -d 10.255.255.53/32 -p tcp -m tcp --dport 53 -j RETURN`,
        `${s} -d 192.168.1.10/32 -p tcp -m tcp --dport 5000 -j RETURN`,
        `${s} -d 10.1.2.0/24 -p tcp -m tcp --dport 8443 -j RETURN`,
        `${s} -d 172.20.0.0/16 -j RETURN`,
      ]),
    );
  });

  it('refuses every listed range and the host addresses outside them', () => {
    const refused = fwd.rules
      .filter((r) => r.includes('icmp-port-unreachable'))
      .map((r) => /-d (\S+)/.exec(r)![1]);
    expect(refused).toEqual([
      '10.0.0.0/8',
      '172.16.0.0/12',
      '192.168.0.0/16',
      '169.254.0.0/16',
      '100.64.0.0/10',
      '127.0.0.0/8',
      '0.0.0.0/8',
      '224.0.0.0/4',
      '240.0.0.0/4',
      '192.0.2.2/32',
      '203.0.113.9/32',
    ]);
    expect(fwd.rules.filter((r) => r.includes('tcp-reset')).length).toBe(refused.length);
    // The input chain (packets to the host itself) refuses everything it does not allow.
    expect(inp.rules.slice(-2)).toEqual([
      '-A EXECUTOR-JOBS-IN -s 10.91.0.0/22 -p tcp -j REJECT --reject-with tcp-reset',
      '-A EXECUTOR-JOBS-IN -s 10.91.0.0/22 -j REJECT --reject-with icmp-port-unreachable',
    ]);
  });

  it('IPv6: matches the bridge, refuses ULA, link-local, loopback, multicast and the host', () => {
    const v6 = rules.v6.chains[0]!.rules;
    expect(v6.every((r) => r.includes('-i executor-jobs'))).toBe(true);
    expect(v6).toContain(
      '-A EXECUTOR-JOBS -d 2001:db8::5/128 -i executor-jobs -p tcp -m tcp --dport 443 -j RETURN',
    );
    const refused = v6.filter((r) => r.includes('icmp6-port-unreachable')).map((r) => /-d (\S+)/.exec(r)![1]);
    expect(refused).toEqual(['fc00::/7', 'fe80::/10', '::1/128', 'ff00::/8', '2001:db8::2/128']);
  });

  it('is a pure function of its inputs; a changed allow list changes only its rules', () => {
    expect(egressRules('executor-jobs', INPUTS)).toEqual(rules);
    const changed = egressRules('executor-jobs', { ...INPUTS, allow: [] });
    const gone = fwd.rules.filter((r) => !changed.v4.chains[0]!.rules.includes(r));
    expect(gone).toHaveLength(3);
    expect(gone.every((r) => r.includes('10.1.2.0/24') || r.includes('172.20.0.0/16'))).toBe(true);
  });

  it('install script: flushes our chains, replaces the counted jumps with one', () => {
    const hooks = { forward: 'DOCKER-USER', input: 'INPUT' };
    const script = installScript(rules.v4, hooks, { forward: 2, input: 0 }).split('\n');
    expect(script.slice(0, 3)).toEqual(['*filter', ':EXECUTOR-JOBS - [0:0]', ':EXECUTOR-JOBS-IN - [0:0]']);
    expect(script.filter((l) => l.startsWith('-D '))).toEqual([
      '-D DOCKER-USER -s 10.91.0.0/22 -j EXECUTOR-JOBS',
      '-D DOCKER-USER -s 10.91.0.0/22 -j EXECUTOR-JOBS',
    ]);
    expect(script.filter((l) => l.startsWith('-I '))).toEqual([
      '-I DOCKER-USER 1 -s 10.91.0.0/22 -j EXECUTOR-JOBS',
      '-I INPUT 1 -s 10.91.0.0/22 -j EXECUTOR-JOBS-IN',
    ]);
    expect(script.at(-2)).toBe('COMMIT');
  });
});
