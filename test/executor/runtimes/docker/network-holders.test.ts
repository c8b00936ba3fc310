/**
 * The isolated network's holders on the real Docker daemon (network-holders.ts): a job's steps
 * share one holder's network namespace; the holder is removed when the job ends and a fresh one is
 * started for the next; two jobs never share one; a job that finds none ready starts its own, and
 * one that finds a stopped one skips it; the janitor removes leftover holders and keeps the pool's;
 * closing the runtime removes the idle ones. Under runc and runsc (gVisor).
 *
 * The network is a Docker network of this test (ensureJobNetwork, no firewall rules: what is
 * confined is tested in job-network.test.ts), removed afterwards with every holder.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureJobNetwork, removeJobNetwork } from '../../../../src/executor/network/job-network.js';
import type { Runtime } from '../../../../src/executor/runtimes/types.js';
import { type Cidr, cidrContains, parseCidr } from '../../../../src/lib/cidr.js';
import {
  dockerImagePresent,
  gvisorAvailable,
  requireOrSkip,
  TEST_IMAGE,
  waitFor,
} from '../../../helpers/env.js';
import { docker, holderRuntime, holdersOf, runJob, startJob } from './holder-job.js';

const ok = requireOrSkip('Docker with the test image (network holders)', dockerImagePresent());
const gvisorOk = ok && requireOrSkip('gVisor (runsc) for network holders', gvisorAvailable());

const X = 20 + (process.pid % 200);
const NET = `exj-holders-${process.pid % 100000}`;
const SUBNET = parseCidr(`10.99.${X}.0/24`) as Cidr;
const NAME = `holders-test-${process.pid}`;

/** What a step prints about its network: hostname, namespace and address. */
const WHO =
  'echo "who host=$(hostname) ns=$(readlink /proc/self/ns/net) addr=$(ip -4 -o addr show eth0 | awk \'{print $4}\' | cut -d/ -f1)"';

function who(stdout: string): { host: string; ns: string; addr: string } {
  const m = /^who host=(\S+) ns=(\S*) addr=(\S*)$/m.exec(stdout);
  if (!m) throw new Error(`no "who" line in:\n${stdout}`);
  return { host: m[1]!, ns: m[2]!, addr: m[3]! };
}

async function running(executorName: string): Promise<string[]> {
  return (await holdersOf(executorName)).filter((c) => c.State === 'running').map((c) => c.Id);
}

describe.skipIf(!ok)('network holders (real Docker)', () => {
  const runtimes: Runtime[] = [];
  const leftovers: string[] = [];
  function runtime(suffix: string, slots = 1, kind: 'docker' | 'gvisor' = 'docker') {
    const executorName = `${NAME}-${suffix}`;
    const r = holderRuntime({ kind, executorName, network: NET, slots });
    runtimes.push(r);
    return { runtime: r, executorName };
  }

  beforeAll(async () => {
    const net = await ensureJobNetwork(docker, NET, SUBNET);
    expect(net).toMatchObject({ ok: true });
  });

  afterAll(async () => {
    try {
      await Promise.all(runtimes.map((r) => r.close?.()));
      await Promise.all(
        leftovers.map((id) =>
          docker
            .getContainer(id)
            .remove({ force: true })
            .catch(() => {}),
        ),
      );
    } finally {
      await removeJobNetwork(docker, NET);
    }
  }, 120_000);

  for (const kind of ['docker', 'gvisor'] as const) {
    it.skipIf(kind === 'gvisor' && !gvisorOk)(
      `${kind}: a job's steps share one holder on the network; it is gone after the job and a fresh one is ready`,
      async () => {
        const { runtime: r, executorName } = runtime(`share-${kind}`, 1, kind);
        expect(await holdersOf(executorName)).toEqual([]);
        const entries = await runJob(r, executorName, [WHO, WHO, WHO]);
        const steps = entries.map((e) => who(e.stdout));
        // One namespace: same hostname (the holder's), same address on the job network.
        expect(new Set(steps.map((s) => s.host)).size).toBe(1);
        expect(new Set(steps.map((s) => s.addr)).size).toBe(1);
        expect(cidrContains(SUBNET, steps[0]!.addr), steps[0]!.addr).toBe(true);
        // gVisor shows its own procfs; under runc the namespace is the same kernel object.
        if (kind === 'docker') expect(new Set(steps.map((s) => s.ns)).size).toBe(1);
        const used = steps[0]!.host;
        // The job's holder is removed; a fresh one (another container) runs for the next job.
        const fresh = await waitFor(
          async () => {
            const all = await holdersOf(executorName);
            if (all.some((c) => c.Id.startsWith(used))) return undefined;
            const up = all.filter((c) => c.State === 'running');
            return up.length === 1 ? up[0] : undefined;
          },
          { what: 'the used holder removed and a fresh one running' },
        );
        expect(fresh.Id.startsWith(used)).toBe(false);
        // The next job takes it.
        const [next] = await runJob(r, executorName, [WHO]);
        expect(who(next!.stdout).host).toBe(fresh.Id.slice(0, 12));
      },
      240_000,
    );
  }

  it('two jobs at once never share a holder, nor does a later job reuse theirs', async () => {
    const { runtime: r, executorName } = runtime('two', 2);
    const [a, b] = await Promise.all([startJob(r, executorName, [WHO]), startJob(r, executorName, [WHO])]);
    const [ea, eb] = await Promise.all([a!.finish(), b!.finish()]);
    const wa = who(ea![0]!.stdout);
    const wb = who(eb![0]!.stdout);
    expect(wa.host).not.toBe(wb.host);
    expect(wa.addr).not.toBe(wb.addr);
    const [later] = await runJob(r, executorName, [WHO]);
    expect([wa.host, wb.host]).not.toContain(who(later!.stdout).host);
  }, 240_000);

  it('a job that finds no holder ready starts its own; a stopped idle holder is skipped and removed', async () => {
    const { runtime: r, executorName } = runtime('fallback');
    expect(await holdersOf(executorName)).toEqual([]);
    const job = await startJob(r, executorName, [WHO]);
    // Nothing was idle: the holder was started during this job's setup.
    const [own] = await running(executorName);
    expect(own).toBeDefined();
    const [entry] = await job.finish();
    expect(own!.startsWith(who(entry!.stdout).host)).toBe(true);

    const [idle] = await waitFor(async () => {
      const up = await running(executorName);
      return up.length === 1 && up[0] !== own ? up : undefined;
    });
    await docker.getContainer(idle!).kill();
    await waitFor(async () => !(await running(executorName)).includes(idle!), {
      what: 'the idle holder to stop',
    });
    const [next] = await runJob(r, executorName, [WHO]);
    expect(idle!.startsWith(who(next!.stdout).host)).toBe(false);
    await waitFor(async () => !(await holdersOf(executorName)).some((c) => c.Id === idle), {
      what: 'the stopped holder removed',
    });
  }, 240_000);

  it('the janitor removes leftover holders and keeps the idle one of its pool', async () => {
    const { runtime: r, executorName } = runtime('janitor');
    const [entry] = await runJob(r, executorName, [WHO]);
    const used = who(entry!.stdout).host;
    // The job's own holder is removed in the background after the job; wait for the fresh one.
    const [idle] = await waitFor(
      async () => {
        const up = await holdersOf(executorName);
        if (up.some((c) => c.Id.startsWith(used))) return undefined;
        return up.length === 1 && up[0]!.State === 'running' ? up : undefined;
      },
      { what: "the job's holder removed and a fresh one running" },
    );
    const pool = idle!.Labels['executor.holder']!.split('-')[0]!;
    const dead = spawnSync('true').pid!;
    async function holderLike(name: string, pid: number, token: string) {
      const c = await docker.createContainer({
        Image: TEST_IMAGE,
        Cmd: ['true'],
        Labels: {
          'executor.name': name,
          'executor.host': os.hostname(),
          'executor.pid': String(pid),
          'executor.role': 'network-holder',
          'executor.holder': token,
        },
      });
      leftovers.push(c.id);
      return c.id;
    }
    const ofDeadExecutor = await holderLike(`${NAME}-gone`, dead, 'cafe0000-1');
    const forgotten = await holderLike(executorName, process.pid, `${pool}-9999`);
    const otherPool = await holderLike(executorName, process.pid, 'ffffffff-1');

    const removed = await r.cleanupOrphans(new Set());
    const ids = (await docker.listContainers({ all: true })).map((c) => c.Id);
    expect(ids).not.toContain(ofDeadExecutor);
    expect(ids).not.toContain(forgotten);
    expect(ids).toContain(idle!.Id);
    // Another runtime's pool in this process: not this janitor's to judge.
    expect(ids).toContain(otherPool);
    expect(removed).toEqual(
      expect.arrayContaining([
        expect.stringContaining(ofDeadExecutor.slice(0, 12)),
        expect.stringContaining(forgotten.slice(0, 12)),
      ]),
    );
    expect(removed.some((x) => x.includes(idle!.Id.slice(0, 12)) || x.includes(otherPool.slice(0, 12)))).toBe(
      false,
    );

    // Closing the runtime (the executor stopping) removes its idle holder, and only its own.
    await r.close?.();
    expect((await holdersOf(executorName)).map((c) => c.Id)).toEqual([otherPool]);
  }, 240_000);

  it("removing the network first removes the holders a killed executor left on it, not a live one's", async () => {
    const other = `${NET}-rm`;
    expect(await ensureJobNetwork(docker, other, parseCidr(`10.99.${X + 1}.0/24`) as Cidr)).toMatchObject({
      ok: true,
    });
    const onIt = async (pid: number) => {
      const c = await docker.createContainer({
        Image: TEST_IMAGE,
        Cmd: ['sleep', '600'],
        Labels: {
          'executor.host': os.hostname(),
          'executor.pid': String(pid),
          'executor.role': 'network-holder',
          'executor.holder': 'x-1',
        },
        HostConfig: { NetworkMode: other },
      });
      leftovers.push(c.id);
      await c.start();
      return c.id;
    };
    const live = await onIt(process.pid);
    await expect(removeJobNetwork(docker, other)).rejects.toThrow(/active endpoints/);
    await docker.getContainer(live).remove({ force: true });
    const left = await onIt(spawnSync('true').pid!);
    await removeJobNetwork(docker, other);
    expect((await docker.listContainers({ all: true })).map((c) => c.Id)).not.toContain(left);
    expect((await docker.listNetworks()).map((n) => n.Name)).not.toContain(other);
  }, 120_000);
});
