/**
 * The invariant checker every chaos scenario ends with. It reads the store directly, the audit
 * file (see audit-store.ts), Docker (containers labelled with our executors' names) and the
 * workspace roots, and returns every violation found (an empty list is a pass):
 *
 *   I1 every acknowledged job is in exactly one terminal state (completed, failed, canceled);
 *   I2 no write (log or mark) was accepted from an attempt that had already ended or been
 *      superseded when the write began, and no job was completed twice;
 *   I4 attempts <= maxAttempts + maxResets, numResets <= maxResets;
 *   I5 no container labelled with one of our executors, and no workspace, is left;
 *   I6 each stored `step.docker.count` log (every attempt) is a gap-free prefix `line-1..line-k` of
 *      what the job wrote, complete when the step exited 0, with a marker where a cap cut it.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import type { Store } from '../../src/store/types.js';
import { TERMINAL_STATES } from '../../src/store/types.js';
import { readAudit } from './audit-store.js';

export interface InvariantInput {
  store: Store;
  auditFile: string;
  jobIds: number[];
  /** Lines each counting job writes (I6 is checked for these jobs only). */
  countLines?: Map<number, number>;
  maxResets: number;
  executorNames?: string[];
  workspaceRoots?: string[];
  /** Whether to query Docker for leftover containers. */
  docker?: boolean;
}

export interface InvariantReport {
  violations: string[];
  jobs: number;
  states: Record<string, number>;
  attempts: number;
  resets: number;
  auditedWrites: number;
  /** Failure messages of jobs that ended failed, with counts. */
  failures: Record<string, number>;
}

const LINE = /^stdout: line-(\d+)$/;
const MARKERS = [/^\[output truncated: .*\]$/, /^\[\.\.\. \d+ bytes of output omitted: .*\]$/];

/** Checks one stored output against `line-1..line-n`; returns problems. */
export function checkCountingLog(
  out: string,
  n: number,
  exitCode: number | null,
  truncated: boolean,
): string[] {
  const problems: string[] = [];
  const segments: number[][] = [[]];
  let markers = 0;
  for (const line of out.split('\n')) {
    // stderr carries the shell's `set -x` trace; the job's output is its stdout.
    if (line === '' || line.startsWith('stderr: ')) continue;
    const m = LINE.exec(line);
    if (m) segments[segments.length - 1]!.push(Number(m[1]));
    else if (MARKERS.some((r) => r.test(line))) {
      markers++;
      segments.push([]);
    } else problems.push(`unexpected line ${JSON.stringify(line.slice(0, 80))}`);
  }
  const head = segments[0]!;
  head.forEach((v, i) => {
    if (v !== i + 1) problems.push(`gap in head at position ${i + 1}: line-${v}`);
  });
  for (const seg of segments.slice(1)) {
    for (let i = 1; i < seg.length; i++)
      if (seg[i] !== seg[i - 1]! + 1) problems.push(`gap in tail: line-${seg[i - 1]} then line-${seg[i]}`);
    if (seg.length > 0 && seg[0]! <= (head[head.length - 1] ?? 0)) problems.push('tail overlaps head');
  }
  if (truncated && markers === 0) problems.push('entry flagged truncated but carries no marker');
  if (exitCode === 0 && markers === 0 && head.length !== n)
    problems.push(`complete step stored ${head.length} of ${n} lines`);
  if (exitCode === 0 && markers > 0) {
    const last = segments[segments.length - 1]!;
    if (last.length > 0 && last[last.length - 1] !== n && !truncated)
      problems.push('tail does not end at the last line');
  }
  return problems;
}

export function leftoverContainers(executorNames: string[]): string[] {
  const out: string[] = [];
  for (const name of executorNames) {
    const ids = execFileSync('docker', ['ps', '-aq', '--filter', `label=executor.name=${name}`], {
      stdio: 'pipe',
    })
      .toString()
      .split('\n')
      .filter(Boolean);
    out.push(...ids.map((id) => `${id} (${name})`));
  }
  return out;
}

export function leftoverWorkspaces(roots: string[]): string[] {
  return roots.flatMap((r) =>
    existsSync(r)
      ? readdirSync(r)
          .filter((n) => n.startsWith('workspace-'))
          .map((n) => `${r}/${n}`)
      : [],
  );
}

export async function checkInvariants(input: InvariantInput): Promise<InvariantReport> {
  const v: string[] = [];
  const states: Record<string, number> = {};
  let attempts = 0;
  let resets = 0;
  const failures: Record<string, number> = {};
  for (const id of input.jobIds) {
    const job = await input.store.getJob(id);
    if (!job) {
      v.push(`I1 job ${id} was acknowledged but is not in the store`);
      continue;
    }
    states[job.state] = (states[job.state] ?? 0) + 1;
    attempts += job.attempts;
    if (job.state === 'failed') {
      const m = (job.failureMessage ?? '').slice(0, 100);
      failures[m] = (failures[m] ?? 0) + 1;
    }
    resets += job.numResets;
    if (!TERMINAL_STATES.includes(job.state)) v.push(`I1 job ${id} is ${job.state}, not terminal`);
    if (job.attempts > job.maxAttempts + input.maxResets)
      v.push(`I4 job ${id} has ${job.attempts} attempts > ${job.maxAttempts} + ${input.maxResets}`);
    if (job.numResets > input.maxResets) v.push(`I4 job ${id} was reset ${job.numResets} times`);
    const n = input.countLines?.get(id);
    if (n !== undefined) {
      for (let a = 1; a <= job.attempts; a++) {
        const entries = await input.store.getLogEntries(id, { attempt: a, withOutput: true });
        for (const e of entries.filter((x) => x.key === 'step.docker.count')) {
          for (const p of checkCountingLog(e.out ?? '', n, e.exitCode, e.truncated))
            v.push(`I6 job ${id} attempt ${a}: ${p}`);
        }
        if (
          job.state === 'completed' &&
          a === job.attempts &&
          !entries.some((e) => e.key === 'step.docker.count')
        )
          v.push(`I6 job ${id} completed without a log of its step`);
      }
    }
  }

  // I2 from the audit: a write is stale when its attempt had provably ended (end.t1 < write.t0)
  // or a later attempt had provably started before the write began.
  const audit = readAudit(input.auditFile);
  const ids = new Set(input.jobIds);
  const ends = new Map<string, number>();
  const starts = new Map<number, { attempt: number; t1: number }[]>();
  for (const e of audit) {
    if (e.op === 'end') {
      const k = `${e.job}/${e.attempt}`;
      ends.set(k, Math.min(ends.get(k) ?? Number.POSITIVE_INFINITY, e.t1));
    } else if (e.op === 'start') {
      const list = starts.get(e.job) ?? [];
      list.push({ attempt: e.attempt, t1: e.t1 });
      starts.set(e.job, list);
    }
  }
  const completions = new Map<number, number>();
  const marksPerAttempt = new Map<string, number>();
  let auditedWrites = 0;
  for (const e of audit) {
    if (e.op !== 'write' || !ids.has(e.job)) continue;
    auditedWrites++;
    const k = `${e.job}/${e.attempt}`;
    const ended = ends.get(k);
    // A mark is itself an end: compare with ends recorded by other events only.
    if (ended !== undefined && ended < e.t0)
      v.push(`I2 job ${e.job}: ${e.kind} accepted from attempt ${e.attempt} after it ended`);
    const later = (starts.get(e.job) ?? []).find((s) => s.attempt > e.attempt && s.t1 < e.t0);
    if (later)
      v.push(
        `I2 job ${e.job}: ${e.kind} accepted from attempt ${e.attempt} after attempt ${later.attempt} began`,
      );
    if (e.kind === 'complete') completions.set(e.job, (completions.get(e.job) ?? 0) + 1);
    if (e.kind === 'complete' || e.kind === 'errored' || e.kind === 'failed')
      marksPerAttempt.set(k, (marksPerAttempt.get(k) ?? 0) + 1);
  }
  for (const [job, c] of completions) if (c > 1) v.push(`I2 job ${job} completed ${c} times`);
  for (const [k, c] of marksPerAttempt) if (c > 1) v.push(`I2 attempt ${k} marked ${c} times`);

  if (input.docker && input.executorNames) {
    for (const c of leftoverContainers(input.executorNames)) v.push(`I5 container left: ${c}`);
  }
  for (const w of leftoverWorkspaces(input.workspaceRoots ?? [])) v.push(`I5 workspace left: ${w}`);

  return { violations: v, jobs: input.jobIds.length, states, attempts, resets, auditedWrites, failures };
}
