/**
 * What a pod's status means for the job: still running, succeeded, a step failed with its exit
 * code, or an infrastructure failure that will not resolve by waiting. Pure; every rule has a test.
 */
import type { ContainerStatus, Pod } from './kube-types.js';

/** Container waiting reasons that will not resolve by waiting. */
export const FATAL_WAITING_REASONS: Record<string, string> = {
  ErrImagePull: 'image pull failed',
  ImagePullBackOff: 'image pull failed',
  InvalidImageName: 'invalid image name',
  ErrImageNeverPull: 'image not present and pull policy is Never',
  CreateContainerConfigError: 'container configuration error',
  CreateContainerError: 'container could not be created',
};

export type PodVerdict =
  | { kind: 'running' }
  | { kind: 'succeeded' }
  /** A container ended with a non-zero exit code (the job's own failure). */
  | { kind: 'step-failed'; container: string; exitCode: number }
  /** The pod cannot or will not finish: image pull, unschedulable, evicted, deadline, deleted. */
  | { kind: 'infra-failed'; reason: string; message: string };

function statuses(pod: Pod): ContainerStatus[] {
  return [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])];
}

/**
 * What a pod's status means for the job. Checked in this order: eviction and deadline (pod-level
 * ends), a container that ended non-zero (the step's exit code wins over the phase), a fatal
 * waiting reason, unschedulable, deletion before the end, then the phase.
 */
export function classifyPod(pod: Pod, deadlineSeconds: number): PodVerdict {
  const st = pod.status ?? {};
  // Pod-level ends first: an evicted or deadline-killed pod also shows containers killed non-zero.
  if (st.reason === 'Evicted') {
    return {
      kind: 'infra-failed',
      reason: 'Evicted',
      message: `pod was evicted${st.message ? `: ${st.message}` : ''}`,
    };
  }
  if (st.reason === 'DeadlineExceeded') {
    return {
      kind: 'infra-failed',
      reason: 'DeadlineExceeded',
      message: `pod exceeded its deadline of ${deadlineSeconds}s (KUBERNETES_JOB_DEADLINE)`,
    };
  }
  for (const c of statuses(pod)) {
    const t = c.state?.terminated;
    if (t && t.exitCode !== 0) return { kind: 'step-failed', container: c.name, exitCode: t.exitCode };
  }
  for (const c of statuses(pod)) {
    const w = c.state?.waiting;
    const what = w?.reason ? FATAL_WAITING_REASONS[w.reason] : undefined;
    if (what) {
      return {
        kind: 'infra-failed',
        reason: w!.reason!,
        message: `${what} for container ${c.name}${c.image ? ` (image ${c.image})` : ''}: ${w!.reason}${w!.message ? `: ${w!.message}` : ''}`,
      };
    }
  }
  const sched = st.conditions?.find((c) => c.type === 'PodScheduled');
  if (sched && sched.status === 'False' && sched.reason === 'Unschedulable') {
    return {
      kind: 'infra-failed',
      reason: 'Unschedulable',
      message: `pod could not be scheduled${sched.message ? `: ${sched.message}` : ''}`,
    };
  }
  if (st.phase === 'Succeeded') return { kind: 'succeeded' };
  if (st.phase === 'Failed') {
    return {
      kind: 'infra-failed',
      reason: st.reason ?? 'Failed',
      message: `pod failed${st.message ? `: ${st.message}` : ''}`,
    };
  }
  if (st.phase === 'Pending' && pod.metadata.deletionTimestamp) {
    return {
      kind: 'infra-failed',
      reason: 'Deleted',
      message: 'deleted by scheduler: pod could not be scheduled',
    };
  }
  return { kind: 'running' };
}

/** Containers that have started (running or terminated), in pod order, with their exit code. */
export function startedContainers(pod: Pod): Array<{ name: string; exitCode?: number }> {
  const out: Array<{ name: string; exitCode?: number }> = [];
  for (const c of statuses(pod)) {
    if (c.state?.terminated) out.push({ name: c.name, exitCode: c.state.terminated.exitCode });
    else if (c.state?.running) out.push({ name: c.name });
  }
  return out;
}
