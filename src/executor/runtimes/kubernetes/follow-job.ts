/**
 * Following one Kubernetes Job to its end: a pod watch (resumed from the last resourceVersion after
 * a dropped connection, given up after maxWatchFailures failures in a row), a log entry per
 * container as it starts with its log followed while it runs, and the pod's status read by
 * classifyPod. A cancel deletes the Job and its pods at once, without grace.
 */
import { errorMessage } from '../../../lib/errors.js';
import type { Logger } from '../../../lib/logger.js';
import type { JobContext, LogEntryHandle } from '../../job-context.js';
import type { BuiltJob } from './convert.js';
import type { KubeClient, WatchEvent } from './kube-client.js';
import type { Pod } from './kube-types.js';
import { JOB_NAME_LABEL } from './naming.js';
import { classifyPod, startedContainers } from './pod-status.js';

export type PodResult = { kind: 'ok' } | { kind: 'step-failed'; key: string; exitCode: number };

export interface FollowJobDeps {
  client: KubeClient;
  log: Logger;
  /** After a container ends, how long its followed log may take to deliver its last bytes. */
  drainMs: number;
  /** Consecutive failed watch (re)connections before the job errors. */
  maxWatchFailures: number;
  /** KUBERNETES_JOB_DEADLINE, named in the error when the pod exceeds it. */
  jobDeadlineSeconds: number;
}

/**
 * Follows the pods of one Job until it succeeds or fails, opening a log entry per container as
 * it starts and streaming its log while it runs. Resolves with the outcome; rejects with an
 * infrastructure failure or the abort reason.
 */
export async function followJob(built: BuiltJob, ctx: JobContext, deps: FollowJobDeps): Promise<PodResult> {
  const { client, log, drainMs, maxWatchFailures } = deps;
  const jobName = built.job.metadata.name!;
  const local = new AbortController();
  const stopLocal = () => local.abort(ctx.signal.reason);
  ctx.signal.addEventListener('abort', stopLocal, { once: true });

  interface Tracked {
    entry: LogEntryHandle;
    key: string;
    done: Promise<void>;
    exitCode?: number;
    closed: boolean;
  }
  const tracked = new Map<string, Tracked>();
  const pods = new Set<string>();
  let settle: (r: PodResult | Error) => void = () => {};
  const finished = new Promise<PodResult | Error>((r) => {
    settle = r;
  });
  let over = false;
  let resourceVersion = '';

  const finish = (r: PodResult | Error) => {
    if (over) return;
    over = true;
    settle(r);
  };

  const track = (pod: string, container: string) => {
    const id = `${pod}/${container}`;
    let t = tracked.get(id);
    if (t) return t;
    const known = built.containers[container];
    const key = known?.key ?? container.replaceAll('-', '.');
    const entry = ctx.logger.entry(key, known?.command ?? null);
    const done = client
      .followLog(pod, container, (b) => entry.write('stdout', b), local.signal)
      .catch((err) => {
        if (!local.signal.aborted)
          entry.writeRaw(`error: cannot read the container log: ${errorMessage(err)}\n`);
      });
    t = { entry, key, done, closed: false };
    tracked.set(id, t);
    return t;
  };

  const onPod = (pod: Pod) => {
    const podName = pod.metadata.name ?? '';
    pods.add(podName);
    for (const c of startedContainers(pod)) {
      const t = track(podName, c.name);
      if (c.exitCode !== undefined && t.exitCode === undefined) t.exitCode = c.exitCode;
    }
    const v = classifyPod(pod, deps.jobDeadlineSeconds);
    if (v.kind === 'succeeded') finish({ kind: 'ok' });
    else if (v.kind === 'step-failed') {
      const key = built.containers[v.container]?.key ?? v.container.replaceAll('-', '.');
      finish({ kind: 'step-failed', key, exitCode: v.exitCode });
    } else if (v.kind === 'infra-failed') finish(new Error(`job ${jobName} failed: ${v.message}`));
  };

  const onEvent = (ev: WatchEvent) => {
    if (over) return;
    const rv = ev.object?.metadata?.resourceVersion;
    if (rv) resourceVersion = rv;
    if (ev.type === 'ERROR') {
      // 410 Gone: the resourceVersion is too old; watch again from now.
      log.warn('pod watch error event', { job: jobName, status: ev.object as unknown });
      resourceVersion = '';
      return;
    }
    if (ev.type === 'BOOKMARK') return;
    if (ev.type === 'DELETED') {
      finish(
        new Error(`job ${jobName} failed: pod ${ev.object.metadata.name} was deleted before it finished`),
      );
      return;
    }
    onPod(ev.object);
  };

  const watchLoop = (async () => {
    let failures = 0;
    while (!over && !local.signal.aborted) {
      try {
        await client.watchPods(`${JOB_NAME_LABEL}=${jobName}`, resourceVersion, onEvent, local.signal);
        failures = 0;
      } catch (err) {
        if (over || local.signal.aborted) return;
        failures++;
        log.warn('pod watch failed', { job: jobName, failures, err });
        if (failures >= maxWatchFailures) {
          finish(
            new Error(`job ${jobName}: watching its pods failed ${failures} times: ${errorMessage(err)}`),
          );
          return;
        }
        await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** failures, 5_000)));
      }
    }
  })();

  const aborted = new Promise<'aborted'>((resolve) => {
    if (ctx.signal.aborted) resolve('aborted');
    ctx.signal.addEventListener('abort', () => resolve('aborted'), { once: true });
  });

  try {
    const result = await Promise.race([finished, aborted]);
    if (result === 'aborted') {
      over = true;
      local.abort(ctx.signal.reason);
      // Kill at once: the Job (so no new pod starts) and every pod we saw, without grace.
      await Promise.allSettled([
        client.delete('jobs', jobName, { propagationPolicy: 'Background' }),
        ...[...pods].map((p) => client.delete('pods', p, { gracePeriodSeconds: 0 })),
      ]);
      for (const t of tracked.values()) {
        if (t.closed) continue;
        t.entry.writeRaw(`step cancelled: ${errorMessage(ctx.signal.reason)}\n`);
        t.closed = true;
        t.entry.close(-1);
      }
      throw ctx.signal.reason;
    }
    // Let every followed log deliver its last bytes, then close the entries.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...tracked.values()].map((t) => t.done)),
      new Promise<void>((r) => (timer = setTimeout(r, drainMs))),
    ]);
    clearTimeout(timer);
    local.abort(new Error('job finished'));
    for (const t of tracked.values()) {
      if (t.closed) continue;
      t.closed = true;
      if (t.exitCode === undefined && result instanceof Error) t.entry.writeRaw(`error: ${result.message}\n`);
      t.entry.close(t.exitCode ?? -1);
    }
    if (result instanceof Error) throw result;
    return result;
  } finally {
    over = true;
    local.abort(new Error('job finished'));
    ctx.signal.removeEventListener('abort', stopLocal);
    await watchLoop;
  }
}
