/**
 * Shared pieces of the end-to-end tests that run jobs in real containers (docker, gvisor, crash):
 * availability of Docker and the test image, containers by job label, and job/log readers over the
 * user API and the store.
 */
import Dockerode from 'dockerode';
import type { ApiJob, ApiLogEntry } from '../../src/cli/api-client.js';
import type { LocalCluster } from '../../src/cli/local-cluster.js';
import {
  dockerAvailable,
  dockerImagePresent,
  gvisorAvailable,
  requireOrSkip,
  waitFor,
} from '../helpers/env.js';

/** Built locally by scripts/build-test-images.sh; no registry is reachable. */
export const IMAGE = 'executor-test/busybox:latest';

/** Docker and the test image; skips (or fails under CI) with one line naming what is missing. */
export function haveDockerAndImage(): boolean {
  return (
    requireOrSkip('Docker', dockerAvailable()) &&
    requireOrSkip(`image ${IMAGE} (run scripts/build-test-images.sh)`, dockerImagePresent(IMAGE))
  );
}

export function haveGvisorAndImage(): boolean {
  return haveDockerAndImage() && requireOrSkip('gVisor (runsc registered with Docker)', gvisorAvailable());
}

export const docker = new Dockerode();

/**
 * Containers (running or not) labelled for the job by one of the given executors. `executor.job`
 * is `<id>` when the job came from a single-queue dequeue (no queue in the payload) and
 * `<id>-<queue>` from a multi-queue one. The executor name matters: every cluster has its own
 * database, so job ids repeat across test files running side by side on one Docker daemon.
 */
export async function containersOfJob(id: number, executorNames: readonly string[], queue = 'default') {
  const lists = await Promise.all(
    executorNames.flatMap((name) =>
      [String(id), `${id}-${queue}`].map((uid) =>
        docker.listContainers({
          all: true,
          filters: { label: [`executor.job=${uid}`, `executor.name=${name}`] },
        }),
      ),
    ),
  );
  return lists.flat();
}

/** Containers of the job created by the cluster's in-process executor. */
export function clusterContainersOfJob(cluster: LocalCluster, id: number) {
  const name = cluster.executorConfig?.executorName;
  if (!name) throw new Error('the cluster has no in-process executor');
  return containersOfJob(id, [name]);
}

export const TERMINAL = new Set(['completed', 'errored', 'failed', 'canceled']);

/** Waits until the job is in a terminal state (errored counts only without a pending retry). */
export async function waitForEnd(cluster: LocalCluster, id: number, timeoutMs = 90_000): Promise<ApiJob> {
  return waitFor(
    async () => {
      const j = await cluster.api.getJob(id);
      return TERMINAL.has(j.state) ? j : undefined;
    },
    { timeoutMs, intervalMs: 100, what: `job ${id} to end` },
  );
}

export async function waitForState(
  cluster: LocalCluster,
  id: number,
  state: string,
  timeoutMs = 60_000,
): Promise<ApiJob> {
  return waitFor(
    async () => {
      const j = await cluster.api.getJob(id);
      return j.state === state ? j : undefined;
    },
    { timeoutMs, intervalMs: 100, what: `job ${id} to be ${state}` },
  );
}

/** Log entries of a job through the user API (the latest attempt's, with output). */
export async function apiEntries(cluster: LocalCluster, id: number): Promise<ApiLogEntry[]> {
  const logs = await cluster.api.getLogs(id);
  return Array.isArray(logs) ? logs : logs.entries;
}

export function entry(entries: ApiLogEntry[], key: string): ApiLogEntry {
  const e = entries.find((x) => x.key === key);
  if (!e) throw new Error(`no log entry ${key}; have ${entries.map((x) => x.key).join(', ')}`);
  return e;
}

/**
 * Everything stored for the job's log (keys, command arguments, output) as raw text, straight from
 * the database rows of the latest attempt.
 */
export async function storedLogText(cluster: LocalCluster, id: number): Promise<string> {
  const rows = await cluster.store.getLogEntries(id, { withOutput: true });
  return rows.map((r) => [r.key, ...(r.command ?? []), r.out ?? ''].join('\n')).join('\n');
}
