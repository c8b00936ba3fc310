/**
 * The sandbox matrix's network case, through the whole path (server -> executor process -> runtime
 * -> container), under Docker and under gVisor: an executor process started with the default
 * confinement (EXECUTOR_JOB_NETWORK=isolated) sets up its job network and firewall rules itself,
 * and a job's step is refused quickly by the cloud metadata address and a private address while it
 * reaches a public "outside" host. The second executor (gVisor) starts after the first was killed
 * with -9, as a restarted executor would: the rules it installs again are there exactly once.
 *
 * Every target is a test host in a network namespace this test creates; netns-hosts.ts checks with
 * `ip route get` that each address leads there before any step runs, and the namespace, routes,
 * network and chains are removed afterwards, also on failure.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadExecutorConfig } from '../../src/config/executor.js';
import { chainNames } from '../../src/executor/network/egress-rules.js';
import { removeIsolation } from '../../src/executor/network/job-isolation.js';
import { bridgeName } from '../../src/executor/network/job-network.js';
import { isolationOptions } from '../../src/executor/network/job-network-guards.js';
import type { JobSpec } from '../../src/protocol/job-spec.js';
import { haveDockerAndImage, haveGvisorAndImage, IMAGE, TERMINAL } from '../e2e/docker-e2e.js';
import {
  createNetnsHosts,
  dockerUserChainWorks,
  type NetnsHosts,
  parseProbes,
  probeScript,
} from '../executor/network/netns-hosts.js';
import { requireOrSkip, waitFor } from '../helpers/env.js';
import {
  type ChaosExecutor,
  type ChaosServer,
  kill9,
  spawnExecutor,
  startChaosServer,
  submitAll,
} from './harness.js';
import { CHAOS_SEED, publish } from './scale.js';

const ok = requireOrSkip(
  'Docker with the test image, root and iptables with DOCKER-USER (sandbox matrix: job network)',
  haveDockerAndImage() && process.getuid?.() === 0 && dockerUserChainWorks(),
);
const gvisorOk = ok && haveGvisorAndImage();

const X = 20 + (process.pid % 200);
const TAG = `c${process.pid % 100000}`;
const NET = `exj-chaos-${TAG}`;
const SUBNET = `10.96.${X}.0/24`;
const METADATA = '169.254.169.254';
const PRIVATE = `10.97.${X}.2`;
const OUTSIDE = `198.51.100.${X}`;
/** A blocked host must refuse within this; a silent drop would hold nc for its 20 s. */
const REFUSED_WITHIN_S = 5;

const networkEnv = {
  EXECUTOR_JOB_NETWORK: 'isolated',
  EXECUTOR_JOB_NETWORK_NAME: NET,
  EXECUTOR_JOB_NETWORK_SUBNET: SUBNET,
  EXECUTOR_JOB_DISK_SPACE: '0',
};

const jumps = (chain: string, target: string) =>
  execFileSync('iptables', ['-S', chain], { stdio: 'pipe' })
    .toString()
    .split('\n')
    .filter((l) => l.endsWith(`-j ${target}`)).length;

describe.skipIf(!ok)('sandbox matrix: the isolated job network through the whole path', () => {
  let dir: string;
  let server: ChaosServer;
  let hosts: NetnsHosts | undefined;
  let ex: ChaosExecutor | undefined;

  beforeAll(async () => {
    hosts = await createNetnsHosts({
      tag: TAG,
      linkBase: `10.98.${X}.0`,
      addresses: [METADATA, PRIVATE, OUTSIDE],
      dnsAnswer: OUTSIDE,
      dnsAddress: OUTSIDE,
    });
    dir = mkdtempSync(join(tmpdir(), 'chaos-sandbox-network-'));
    server = await startChaosServer({ dir: join(dir, 'server') });
    // Waits for the test-hosts lock while another file holds its hosts.
  }, 600_000);

  afterAll(async () => {
    try {
      if (ex) await kill9(ex);
      await server?.stop();
      const loaded = loadExecutorConfig({
        EXECUTOR_FRONTEND_URL: 'http://127.0.0.1:1',
        EXECUTOR_FRONTEND_PASSWORD: 'cleanup-only-password',
        EXECUTOR_QUEUE_NAME: 'chaos',
        ...networkEnv,
      });
      if (loaded.ok) await removeIsolation(isolationOptions(loaded.config), bridgeName(NET));
    } finally {
      await hosts?.remove();
    }
  }, 180_000);

  for (const runtime of ['docker', 'gvisor'] as const) {
    it.skipIf(runtime === 'gvisor' && !gvisorOk)(
      `${runtime}: metadata and private hosts refused quickly, the outside host reached; one copy of the rules`,
      async () => {
        // The previous executor dies with -9, as a crashed one would; the next installs again.
        if (ex) await kill9(ex);
        const name = `sandbox-net-${runtime}-${CHAOS_SEED}-${process.pid}`;
        ex = spawnExecutor(server, {
          name,
          workspaceRoot: join(dir, `ws-${runtime}`),
          runtime,
          env: networkEnv,
        });
        await ex.ready;
        const targets = [`${METADATA}:80`, `${PRIVATE}:80`, `${OUTSIDE}:80`];
        const spec = {
          queue: 'chaos',
          steps: [{ key: 'probe', image: IMAGE, run: probeScript(targets) }],
          maxAttempts: 1,
          timeout: '3m',
        } as JobSpec;
        const [job] = await submitAll(server, [spec]);
        const end = await waitFor(
          async () => {
            const j = await server.store.getJob(job!.id);
            return j && TERMINAL.has(j.state) ? j : undefined;
          },
          { timeoutMs: 150_000, intervalMs: 100, what: `job ${job!.id} to end` },
        );
        const entries = await server.store.getLogEntries(job!.id, { withOutput: true });
        const out = entries.find((e) => e.key.endsWith('.probe'))?.out ?? '';
        const results = parseProbes(out);
        const names = chainNames(NET);
        const copies = { forward: jumps('DOCKER-USER', names.forward), input: jumps('INPUT', names.input) };
        publish(`sandbox network (${runtime})`, {
          state: end.state,
          probes: Object.fromEntries(results),
          ruleJumps: copies,
        });
        expect(end.state, out).toBe('completed');
        for (const blocked of [`${METADATA}:80`, `${PRIVATE}:80`]) {
          const r = results.get(blocked);
          expect(r, `no probe of ${blocked} in:\n${out}`).toBeDefined();
          expect(r!.ok, `${blocked}: ${r!.out}`).toBe(false);
          expect(r!.seconds, `${blocked} took ${r!.seconds}s`).toBeLessThanOrEqual(REFUSED_WITHIN_S);
        }
        expect(results.get(`${OUTSIDE}:80`), out).toMatchObject({
          ok: true,
          out: expect.stringContaining(`host ${OUTSIDE}:80`),
        });
        expect(copies).toEqual({ forward: 1, input: 1 });
      },
      240_000,
    );
  }
});
