/**
 * EXECUTOR_JOB_NETWORK=isolated on real Docker and iptables, under runc and runsc (gVisor): step
 * containers on the job network are refused quickly by the metadata address, a private address,
 * the host's own address and a non-allowed port of the queue server, and reach the allowed
 * "outside" host, the queue server and the DNS resolver they are given; the same for a step of the
 * docker runtime in its job's network holder (network-holders.ts). Re-installing leaves one
 * copy of the rules; a changed allow list replaces the old rules; an executor without the rules
 * refuses to dequeue and says what is missing.
 *
 * Every target is a test host in a network namespace this test creates (netns-hosts.ts checks with
 * `ip route get` that each leads there before any container runs), or a server of this test on the
 * host. The network, chains, namespace and routes are removed afterwards, also on failure.
 */
import { execFile, execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runValidation } from '../../../../src/cli/validate.js';
import { startExecutor } from '../../../../src/executor/index.js';
import { installJobNetwork } from '../../../../src/executor/install/job-network-install.js';
import { chainNames } from '../../../../src/executor/network/egress-rules.js';
import { installFamily, removeFamily } from '../../../../src/executor/network/firewall.js';
import {
  checkIsolation,
  type IsolationOptions,
  installIsolation,
  plannedRules,
  removeIsolation,
} from '../../../../src/executor/network/job-isolation.js';
import { bridgeName } from '../../../../src/executor/network/job-network.js';
import { type Cidr, parseCidr } from '../../../../src/lib/cidr.js';
import { createMemoryLogger } from '../../../../src/lib/logger.js';
import {
  dockerImagePresent,
  gvisorAvailable,
  requireOrSkip,
  TEST_IMAGE,
  waitFor,
} from '../../../helpers/env.js';
import { startFakeSourcegraphFrontend } from '../../fake-sourcegraph-frontend.js';
import { tempDir, testConfig } from '../../harness.js';
import {
  createNetnsHosts,
  dockerUserChainWorks,
  type NetnsHosts,
  parseProbes,
  probeScript,
} from '../../network/netns-hosts.js';
import { holderRuntime, runJob } from './holder-job.js';

const pexec = promisify(execFile);

const ok = requireOrSkip(
  'Docker with the test image, root and iptables with DOCKER-USER (isolated job network)',
  dockerImagePresent() && process.getuid?.() === 0 && dockerUserChainWorks(),
);
const gvisorOk = ok && requireOrSkip('gVisor (runsc) for the isolated job network', gvisorAvailable());

const X = 20 + (process.pid % 200);
const TAG = `t${process.pid % 100000}`;
const NET = `exj-test-${TAG}`;
const SUBNET = `10.94.${X}.0/24`;
const GATEWAY = `10.94.${X}.1`;
const METADATA = '169.254.169.254';
const PRIVATE = `10.93.${X}.2`;
const RESOLVER = `10.93.${X}.53`;
const QUEUE = `10.93.${X}.80`;
const OUTSIDE = `198.51.100.${X}`;
/**
 * A blocked host must refuse within this; a silent one would hold wget for its 20 s `timeout`
 * (busybox's own `wget -T` crashes in the test image).
 */
const REFUSED_WITHIN_S = 5;

const sh = (argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { stdio: 'pipe' }).toString();

function options(allow: string[] = []): IsolationOptions {
  return {
    networkName: NET,
    subnet: parseCidr(SUBNET) as Cidr,
    egressAllow: allow.map((a) => {
      const [cidr, port] = a.split(':');
      return { cidr: parseCidr(cidr!) as Cidr, port: port ? Number(port) : undefined };
    }),
    frontendUrl: `http://${QUEUE}:8080`,
    registryMirrorUrls: [],
    resolvers: [RESOLVER],
  };
}

const jumps = (chain: string, target: string) =>
  sh(['iptables', '-S', chain])
    .split('\n')
    .filter((l) => l.endsWith(`-j ${target}`)).length;

describe.skipIf(!ok)('isolated job network (real Docker and iptables)', () => {
  let hosts: NetnsHosts | undefined;
  let hostServer: http.Server;
  let hostPort: number;
  const names = chainNames(NET);

  beforeAll(async () => {
    hosts = await createNetnsHosts({
      tag: TAG,
      linkBase: `10.95.${X}.0`,
      addresses: [METADATA, PRIVATE, RESOLVER, QUEUE, OUTSIDE],
      dnsAnswer: OUTSIDE,
      dnsAddress: RESOLVER,
    });
    hostServer = http.createServer((_q, r) => r.end('host itself\n'));
    await new Promise<void>((r) => hostServer.listen(0, '0.0.0.0', r));
    hostPort = (hostServer.address() as AddressInfo).port;
    const r = await installIsolation(options());
    expect(r.problems).toEqual([]);
    // Waits for the test-hosts lock while another file holds its hosts.
  }, 600_000);

  afterAll(async () => {
    try {
      await removeIsolation(options(), bridgeName(NET));
    } finally {
      hostServer?.close();
      await hosts?.remove();
    }
  }, 120_000);

  const script = () =>
    probeScript(
      [
        `${METADATA}:80`,
        `${PRIVATE}:80`,
        `${GATEWAY}:${hostPort}`,
        `${QUEUE}:80`,
        `${QUEUE}:8080`,
        `${OUTSIDE}:80`,
      ],
      { name: 'outside.test', resolver: RESOLVER },
    );

  /** Blocked hosts refused quickly; the outside host, the queue server's port and DNS reached. */
  function expectConfined(stdout: string) {
    const results = parseProbes(stdout);
    const dns = stdout.split('\n').find((l) => l.includes('outside.test')) ?? '';
    const get = (t: string) => {
      const r = results.get(t);
      if (!r) throw new Error(`no result for ${t} in:\n${stdout}`);
      return r;
    };
    for (const blocked of [`${METADATA}:80`, `${PRIVATE}:80`, `${GATEWAY}:${hostPort}`, `${QUEUE}:80`]) {
      const r = get(blocked);
      expect(r.ok, `${blocked}: ${r.out}`).toBe(false);
      expect(r.seconds, `${blocked} took ${r.seconds}s: ${r.out}`).toBeLessThanOrEqual(REFUSED_WITHIN_S);
    }
    expect(get(`${OUTSIDE}:80`)).toMatchObject({
      ok: true,
      out: expect.stringContaining(`host ${OUTSIDE}:80`),
    });
    expect(get(`${QUEUE}:8080`)).toMatchObject({
      ok: true,
      out: expect.stringContaining(`host ${QUEUE}:8080`),
    });
    expect(dns).toContain(OUTSIDE);
  }

  /** Runs the probes in one container on the network; returns its output. */
  async function probe(runtime: 'runc' | 'runsc') {
    const { stdout } = await pexec(
      'docker',
      [
        'run',
        '--rm',
        '--network',
        NET,
        ...(runtime === 'runsc' ? ['--runtime', 'runsc'] : []),
        TEST_IMAGE,
        'sh',
        '-c',
        script(),
      ],
      { timeout: 180_000 },
    );
    return stdout;
  }

  for (const runtime of ['runc', 'runsc'] as const) {
    it.skipIf(runtime === 'runsc' && !gvisorOk)(
      `${runtime}: blocked hosts are refused quickly; the outside host, the queue server and DNS work`,
      async () => expectConfined(await probe(runtime)),
      240_000,
    );
  }

  for (const kind of ['docker', 'gvisor'] as const) {
    it.skipIf(kind === 'gvisor' && !gvisorOk)(
      `${kind} runtime: a step in its job's network holder is confined the same way`,
      async () => {
        const executorName = `exj-test-${TAG}-${kind}`;
        const runtime = holderRuntime({ kind, executorName, network: NET, slots: 1 });
        try {
          const [entry] = await runJob(runtime, executorName, [script()]);
          const network = entry!.command![entry!.command!.indexOf('--network') + 1];
          expect(network).toMatch(/^container:[0-9a-f]{12}$/);
          expectConfined(entry!.stdout);
        } finally {
          await runtime.close?.();
        }
      },
      240_000,
    );
  }

  it('re-installing (an executor restart) leaves exactly one copy of the rules', async () => {
    const before = sh(['iptables', '-S', names.forward]);
    const r = await installIsolation(options());
    expect(r.problems).toEqual([]);
    expect(sh(['iptables', '-S', names.forward])).toBe(before);
    expect(jumps('DOCKER-USER', names.forward)).toBe(1);
    expect(jumps('INPUT', names.input)).toBe(1);
    // Concurrent installers (two executors starting together) still leave one jump.
    await Promise.all([
      installIsolation(options()),
      installIsolation(options()),
      installIsolation(options()),
    ]);
    expect(jumps('DOCKER-USER', names.forward)).toBe(1);
    expect(jumps('INPUT', names.input)).toBe(1);
    expect((await checkIsolation(options())).problems).toEqual([]);
    // And from nothing: installers that all count no jump must not each leave one.
    await removeIsolation(options(), bridgeName(NET));
    const reports = await Promise.all([
      installIsolation(options()),
      installIsolation(options()),
      installIsolation(options()),
    ]);
    expect(reports.map((r) => r.problems)).toEqual([[], [], []]);
    expect(jumps('DOCKER-USER', names.forward)).toBe(1);
    expect(jumps('INPUT', names.input)).toBe(1);
    // The same for installers in different processes (not queued behind each other): the
    // firewall rounds themselves, concurrently, from no jump.
    const planned = await plannedRules(options(), bridgeName(NET));
    await removeFamily(planned.v4);
    const rounds = await Promise.all([
      installFamily(planned.v4),
      installFamily(planned.v4),
      installFamily(planned.v4),
    ]);
    expect(rounds).toEqual([[], [], []]);
    expect(jumps('DOCKER-USER', names.forward)).toBe(1);
    expect(jumps('INPUT', names.input)).toBe(1);
  }, 120_000);

  it('a changed allow list replaces the old rules', async () => {
    await installIsolation(options([`${PRIVATE}/32:80`]));
    expect(sh(['iptables', '-S', names.forward])).toContain(
      `-d ${PRIVATE}/32 -p tcp -m tcp --dport 80 -j RETURN`,
    );
    expect((await checkIsolation(options())).ok).toBe(false);
    await installIsolation(options());
    expect(sh(['iptables', '-S', names.forward])).not.toContain(PRIVATE);
    expect((await checkIsolation(options())).problems).toEqual([]);
  }, 120_000);

  it('an executor without the rules refuses to dequeue and says what is missing', async () => {
    await removeIsolation(options(), bridgeName(NET));
    const fe = await startFakeSourcegraphFrontend();
    const ws = await tempDir('exj-ws-');
    const logger = createMemoryLogger();
    try {
      const config = testConfig(fe, ws.dir, {
        EXECUTOR_RUNTIME: 'docker',
        EXECUTOR_JOB_NETWORK_NAME: NET,
        EXECUTOR_JOB_NETWORK_SUBNET: SUBNET,
      });
      const ex = await startExecutor(config, {
        logger,
        jobNetwork: { install: false, resolvers: [RESOLVER] },
        worker: { heartbeatIntervalMs: 50, pingIntervalMs: 20 },
      });
      const line = await waitFor(() => logger.lines.find((l) => l.includes('not dequeuing')), {
        what: 'the refusal in the log',
      });
      expect(line).toContain(`Docker network ${NET} does not exist`);
      expect(line).toContain('executor install');
      expect(fe.requests.some((r) => r.path.includes('dequeue'))).toBe(false);
      await ex.forceStop();
      expect(fe.requests.some((r) => r.path.includes('dequeue'))).toBe(false);
      // With the network back but no rules, the refusal names the missing chains.
      await pexec('docker', [
        'network',
        'create',
        '--subnet',
        SUBNET,
        '-o',
        `com.docker.network.bridge.name=${bridgeName(NET)}`,
        NET,
      ]);
      const r = await checkIsolation(options());
      expect(r.ok).toBe(false);
      expect(r.problems.join('\n')).toContain(`iptables chain ${names.forward} is missing`);
    } finally {
      await fe.close();
      await ws.cleanup();
    }
  }, 120_000);

  it('executor validate reports the missing rules, then the isolated network in place', async () => {
    const fe = await startFakeSourcegraphFrontend();
    try {
      const env = {
        EXECUTOR_FRONTEND_URL: fe.url,
        EXECUTOR_FRONTEND_PASSWORD: 'hunter2hunter2',
        EXECUTOR_QUEUE_NAME: 'q',
        EXECUTOR_RUNTIME: 'gvisor',
        EXECUTOR_JOB_NETWORK_NAME: NET,
        EXECUTOR_JOB_NETWORK_SUBNET: SUBNET,
      };
      await removeIsolation(options(), bridgeName(NET));
      const before: string[] = [];
      await runValidation(env, (l) => before.push(l), { runtimeChecks: async () => [] });
      expect(before).toContain(
        `✗ job network: isolated on Docker network ${NET} (${SUBNET}): Docker network ${NET} does not exist; the executor will not dequeue. Fix: run the executor once as root (or with CAP_NET_ADMIN), or run \`executor install\`, to create it`,
      );
      const r = await installIsolation({ ...options(), frontendUrl: fe.url, resolvers: undefined });
      expect(r.problems).toEqual([]);
      const after: string[] = [];
      await runValidation(env, (l) => after.push(l), { runtimeChecks: async () => [] });
      expect(after.find((l) => l.includes('job network'))).toBe(
        `✓ job network: isolated on Docker network ${NET} (${SUBNET}): private, link-local and host addresses refused; gVisor steps use their job's network namespace on it`,
      );
      const shell: string[] = [];
      await runValidation({ ...env, EXECUTOR_RUNTIME: 'shell' }, (l) => shell.push(l));
      expect(shell).toContain("✓ job network: no isolation: steps run on this host with the host's network");
    } finally {
      await fe.close();
    }
  }, 120_000);

  it('executor install sets the network and rules up from the environment file', async () => {
    await removeIsolation(options(), bridgeName(NET));
    const ws = await tempDir('exj-install-');
    try {
      const envPath = `${ws.dir}/executor.env`;
      writeFileSync(
        envPath,
        [
          `EXECUTOR_FRONTEND_URL=http://${QUEUE}:8080`,
          'EXECUTOR_FRONTEND_PASSWORD=hunter2hunter2',
          'EXECUTOR_QUEUE_NAME=q',
          `EXECUTOR_JOB_NETWORK_NAME=${NET}`,
          `EXECUTOR_JOB_NETWORK_SUBNET=${SUBNET}`,
          '',
        ].join('\n'),
      );
      const dry = await installJobNetwork(envPath, {}, true);
      expect(dry.lines).toEqual([
        `- job network: would create Docker network ${NET} (${SUBNET}) and its firewall rules`,
      ]);
      expect((await checkIsolation(options())).ok).toBe(false);
      const r = await installJobNetwork(envPath, {}, false);
      expect(r).toEqual({
        ok: true,
        lines: [`✓ job network: Docker network ${NET} (${SUBNET}) and its firewall rules in place`],
      });
      expect(jumps('DOCKER-USER', names.forward)).toBe(1);
      const partial = await installJobNetwork(`${ws.dir}/absent.env`, {}, false);
      expect(partial.lines[0]).toMatch(
        /^- job network: skipped \(the configuration is incomplete: EXECUTOR_FRONTEND_URL/,
      );
    } finally {
      await ws.cleanup();
    }
  }, 120_000);
});
