/**
 * The vm runtime under EXECUTOR_JOB_NETWORK=isolated, end to end with real Docker, iptables and
 * QEMU: one job, one VM, whose step probes from inside the guest. Its user-mode network leaves
 * through the holder container on the isolated network, so the same firewall rules as for docker
 * steps refuse the metadata and a private address at once, and let the "outside" host and the
 * allowed resolver answer. The guest's resolv.conf names the host's resolvers.
 *
 * Every target is a test host in a network namespace this test creates (netns-hosts.ts checks with
 * `ip route get` that each leads there before the VM runs). The network, chains, namespace and
 * routes are removed afterwards, also on failure.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { type IsolationOptions, removeIsolation } from '../../src/executor/network/job-isolation.js';
import { bridgeName } from '../../src/executor/network/job-network.js';
import { guestResolvers, HOLDER_STEP_LABEL } from '../../src/executor/runtimes/vm/network.js';
import { type Cidr, parseCidr } from '../../src/lib/cidr.js';
import { createLogger } from '../../src/lib/logger.js';
import {
  createNetnsHosts,
  dockerUserChainWorks,
  type NetnsHosts,
  parseProbes,
  probeScript,
} from '../executor/network/netns-hosts.js';
import { requireOrSkip } from '../helpers/env.js';
import { apiEntries, docker, entry, IMAGE, waitForEnd } from './docker-e2e.js';
import { haveVm, VM_ASSETS_DIR, vmsOfJob } from './vm-e2e.js';

const ok =
  haveVm() &&
  requireOrSkip(
    'root and iptables with DOCKER-USER (the vm runtime on the isolated job network)',
    process.getuid?.() === 0 && dockerUserChainWorks(),
  );

const X = 20 + ((process.pid + 100) % 200);
const TAG = `v${process.pid % 100000}`;
const NET = `exj-vm-${TAG}`;
const SUBNET = `10.94.${X}.0/24`;
const METADATA = '169.254.169.254';
const PRIVATE = `10.93.${X}.2`;
const RESOLVER = `10.93.${X}.53`;
const OUTSIDE = `198.51.100.${X}`;
/** A refused connection comes back at once; a silent drop would hold nc for its 20 s. */
const REFUSED_WITHIN_S = 5;

describe.skipIf(!ok)('vm runtime on the isolated job network', () => {
  let hosts: NetnsHosts | undefined;
  let cluster: LocalCluster | undefined;

  const isolation = (frontendUrl: string): IsolationOptions => ({
    networkName: NET,
    subnet: parseCidr(SUBNET) as Cidr,
    egressAllow: [],
    frontendUrl,
    registryMirrorUrls: [],
    resolvers: [RESOLVER],
  });

  beforeAll(async () => {
    hosts = await createNetnsHosts({
      tag: TAG,
      linkBase: `10.95.${X}.0`,
      addresses: [METADATA, PRIVATE, RESOLVER, OUTSIDE],
      dnsAnswer: OUTSIDE,
      dnsAddress: RESOLVER,
    });
    const dataDir = mkdtempSync(join(tmpdir(), 'e2e-vm-net-'));
    cluster = await startLocalCluster({
      dataDir,
      runtime: 'vm',
      logger: createLogger({ level: 'error' }),
      executorEnv: {
        EXECUTOR_VM_ALLOW_EMULATION: 'true',
        EXECUTOR_VM_ASSETS_DIR: VM_ASSETS_DIR,
        EXECUTOR_VM_IMAGE_CACHE_DIR: join(dataDir, 'vm-images'),
        EXECUTOR_WORKSPACE_ROOT: join(dataDir, 'ws'),
        EXECUTOR_JOB_NETWORK: 'isolated',
        EXECUTOR_JOB_NETWORK_NAME: NET,
        EXECUTOR_JOB_NETWORK_SUBNET: SUBNET,
        EXECUTOR_JOB_DISK_SPACE: '32M',
        EXECUTOR_JOB_MEMORY: '256M',
        EXECUTOR_JOB_NUM_CPUS: '1',
        EXECUTOR_MIN_FREE_DISK: '0',
        EXECUTOR_MAXIMUM_NUM_JOBS: '1',
      },
      // The executor installs the network and its rules before its first dequeue, with the test's
      // resolver as the one DNS server steps may reach.
      executorDeps: { jobNetwork: { resolvers: [RESOLVER] }, worker: { heartbeatIntervalMs: 500 } },
    });
  }, 600_000);

  afterAll(async () => {
    try {
      await cluster?.stop({ force: true });
      if (cluster) await removeIsolation(isolation(cluster.url), bridgeName(NET));
    } finally {
      await hosts?.remove();
    }
  }, 120_000);

  it('refuses the metadata and a private host at once; reaches the outside host and the resolver', async () => {
    const c = cluster!;
    const script = probeScript([`${METADATA}:80`, `${PRIVATE}:80`, `${OUTSIDE}:80`], {
      name: 'outside.test',
      resolver: RESOLVER,
    });
    const job = await c.api.submit({
      queue: 'default',
      steps: [{ key: 'net', image: IMAGE, run: [script, 'cat /etc/resolv.conf'] }],
      maxAttempts: 1,
    });
    const final = await waitForEnd(c, job.id, 300_000);
    const out = entry(await apiEntries(c, job.id), 'step.docker.net').out ?? '';
    expect(final.state, out).toBe('completed');
    const results = parseProbes(out);
    for (const blocked of [`${METADATA}:80`, `${PRIVATE}:80`]) {
      const r = results.get(blocked);
      expect(r, out).toBeDefined();
      expect(r!.ok, `${blocked}: ${r!.out}`).toBe(false);
      expect(r!.seconds, `${blocked} took ${r!.seconds}s`).toBeLessThanOrEqual(REFUSED_WITHIN_S);
    }
    expect(results.get(`${OUTSIDE}:80`), out).toMatchObject({
      ok: true,
      out: expect.stringContaining(`host ${OUTSIDE}:80`),
    });
    const dns = out.split('\n').find((l) => l.startsWith('stdout:') && l.includes('outside.test'));
    expect(dns ?? out).toContain(OUTSIDE);
    for (const r of await guestResolvers()) expect(out).toContain(`stdout: nameserver ${r}`);

    // Nothing of the job is left: no VM, no holder container.
    expect(vmsOfJob(job.id)).toEqual([]);
    const holders = await docker.listContainers({
      all: true,
      filters: { label: [`executor.step=${HOLDER_STEP_LABEL}`] },
    });
    const ofJob = new RegExp(`^${job.id}(-|$)`);
    expect(holders.filter((h) => ofJob.test(h.Labels?.['executor.job'] ?? ''))).toEqual([]);
  }, 360_000);
});
