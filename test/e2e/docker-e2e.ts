/**
 * Shared pieces of the end-to-end tests that run jobs in real containers (docker, gvisor, crash):
 * availability of Docker and the test image, containers by job label, and job/log readers over the
 * user API and the store.
 */
import { execFileSync } from 'node:child_process';
import Dockerode from 'dockerode';
import type { ApiJob, ApiLogEntry } from '../../src/cli/api-client.js';
import type { LocalCluster } from '../../src/cli/local-cluster.js';
import { dockerAvailable, gvisorAvailable, requireOrSkip, waitFor } from '../helpers/env.js';

/** Built locally by scripts/build-test-images.sh; no registry is reachable. */
export const IMAGE = 'executor-test/busybox:latest';

function imagePresent(): boolean {
  if (!dockerAvailable()) return false;
  try {
    execFileSync('docker', ['image', 'inspect', IMAGE], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

/** Docker and the test image; skips (or fails under CI) with one line naming what is missing. */
export function haveDockerAndImage(): boolean {
  return (
    requireOrSkip('Docker', dockerAvailable()) &&
    requireOrSkip(`image ${IMAGE} (run scripts/build-test-images.sh)`, imagePresent())
  );
}

export function haveGvisorAndImage(): boolean {
  return haveDockerAndImage() && requireOrSkip('gVisor (runsc registered with Docker)', gvisorAvailable());
}

export const docker = new Dockerode();

/**
 * Containers (running or not) labelled for the job: `executor.job` is `<id>` when the job came
 * from a single-queue dequeue (no queue in the payload) and `<id>-<queue>` from a multi-queue one.
 */
export async function containersOfJob(id: number, queue = 'default') {
  const lists = await Promise.all(
    [String(id), `${id}-${queue}`].map((uid) =>
      docker.listContainers({ all: true, filters: { label: [`executor.job=${uid}`] } }),
    ),
  );
  return lists.flat();
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
