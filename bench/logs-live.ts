/**
 * Live logs, from a step's write to a follower, and what it costs in requests.
 *
 * logs.latency: one step prints its own clock (microseconds since the epoch) every 100 ms for 8 s;
 * a follower on `GET /api/v1/jobs/:id/logs?follow=1` (the CLI's client, as `executor logs -f`)
 * takes each line's arrival time minus the clock it carries: p50 and p99, shell and docker
 * runtimes. The executor runs in its own process; the server and the follower in this one (same
 * host, same realtime clock as the step). Baseline, in the same run: the same executor against the
 * same server with the capabilities header hidden, so it sends Sourcegraph's 1 s snapshots.
 *
 * logs.requests: a step printing continuously (a line per `date` call, about a thousand a second,
 * bounded to 5 s and far below the output cap), appends per second during the step, against the
 * snapshot executor's updates per second.
 */
import Dockerode from 'dockerode';
import { createApiClient } from '../src/cli/api-client.js';
import type { JobSpec } from '../src/protocol/job-spec.js';
import { executorEnv, startBenchServer } from './cluster.js';
import {
  type Bench,
  type BenchContext,
  type BenchResult,
  percentile,
  result,
  tempDir,
  waitFor,
} from './lib.js';
import { spawnCli } from './procs.js';

type RuntimeName = 'shell' | 'docker';

const PROBE_LINES = Number(process.env.BENCH_LOGS_PROBE_LINES ?? 80);
/** The step's own clock in microseconds: GNU date on the host; busybox has no %N, but adjtimex. */
const CLOCK: Record<RuntimeName, string> = {
  shell: 'date +%s%6N',
  docker: `adjtimex | awk '/tv_sec/{s=$2} /tv_usec/{u=$2} END{printf "%d%06d", s, u}'`,
};
const probeScript = (runtime: RuntimeName) =>
  `i=0; while [ $i -lt ${PROBE_LINES} ]; do echo "probe $i $(${CLOCK[runtime]})"; i=$((i+1)); sleep 0.1; done`;
const REQUESTS_SECONDS = 5;
const WRITER = `end=$(( $(date +%s) + ${REQUESTS_SECONDS} )); while [ $(date +%s) -lt $end ]; do echo "line $(date +%s%N)"; done`;
const PROBE_LINE = /^stdout: probe (\d+) (\d+)$/;

interface Run {
  /** Line latencies in ms (probe), in arrival order. */
  samples: number[];
  /** Per line: its arrival at the follower minus the answer to the last log write before it. */
  serverSamples: number[];
  /** Log write requests (append or update) per second while the step ran. */
  perSecond: number;
  requests: number;
  stepMs: number;
}

/** One job with one step on a fresh server and executor; `snapshot`: hide log-append from it. */
async function runJob(
  ctx: BenchContext,
  runtime: RuntimeName,
  script: string,
  snapshot: boolean,
): Promise<Run> {
  const writes: number[] = [];
  let polled = false;
  const server = await startBenchServer({
    logger: ctx.logger,
    hideCapabilities: snapshot,
    onFinish: (req, res) => {
      if (req.url?.endsWith('/dequeue')) polled = true;
      // The path alone: a log-append-bytes append carries its fields in the query string.
      if (/\/(append|update)ExecutionLogEntry(\?|$)/.test(req.url ?? '') && res.statusCode < 300)
        writes.push(Date.now());
    },
  });
  const work = tempDir('logs-live');
  const exec = spawnCli(
    ['run'],
    executorEnv(server, {
      EXECUTOR_RUNTIME: runtime,
      EXECUTOR_WORKSPACE_ROOT: `${work.path}/ws`,
      EXECUTOR_JOB_NETWORK: process.env.BENCH_JOB_NETWORK ?? 'none',
      EXECUTOR_LOG_LEVEL: 'warn',
    }),
  );
  const api = createApiClient({ server: server.url, token: server.apiToken });
  try {
    // Without the capabilities header the executor polls instead of long-polling.
    await waitFor('the executor to poll', () => polled || server.app.waiting() >= 1, 60_000, 20);
    const job = await api.submit({
      queue: 'bench',
      steps: [{ image: ctx.dockerImage, run: script }],
    } as JobSpec);
    const samples: number[] = [];
    const serverSamples: number[] = [];
    let partial = '';
    const end = await api.followLogs(job.id, (e) => {
      if (e.type !== 'output') return;
      const now = Date.now();
      const lines = (partial + e.data).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        const m = PROBE_LINE.exec(line);
        if (!m) continue;
        samples.push(now - Number(m[2]) / 1000);
        const written = writes.findLast((t) => t <= now);
        if (written !== undefined) serverSamples.push(now - written);
      }
    });
    if (end.state !== 'completed')
      throw new Error(`job ${end.state}: ${end.failureMessage}\n${exec.output()}`);
    const entries = await server.store.getLogEntries(job.id, {});
    const step = entries.find((e) => e.key.startsWith('step.'));
    if (!step) throw new Error(`no step entry: ${entries.map((e) => e.key).join(', ')}`);
    const from = Date.parse(step.startTime);
    const stepMs = step.durationMs ?? 0;
    const during = writes.filter((t) => t >= from && t <= from + stepMs).length;
    return { samples, serverSamples, perSecond: during / (stepMs / 1000), requests: during, stepMs };
  } finally {
    await exec.stop();
    await server.close();
    work.remove();
  }
}

async function dockerAnswers(): Promise<boolean> {
  try {
    await new Dockerode().ping();
    return true;
  } catch {
    return false;
  }
}

const ms = (x: number) => `${Math.round(x)} ms`;

export const logsLatency: Bench = async (ctx) => {
  const runtimes: RuntimeName[] = (await dockerAnswers()) ? ['shell', 'docker'] : ['shell'];
  if (runtimes.length === 1) ctx.say('logs.latency: Docker does not answer; shell runtime only');
  const out: BenchResult[] = [];
  for (const runtime of runtimes) {
    ctx.say(`logs.latency: ${runtime}, live appends`);
    const ours = await runJob(ctx, runtime, probeScript(runtime), false);
    ctx.say(`logs.latency: ${runtime}, Sourcegraph-style 1 s snapshots`);
    const base = await runJob(ctx, runtime, probeScript(runtime), true);
    for (const r of [ours, base]) {
      if (r.samples.length !== PROBE_LINES)
        throw new Error(`${runtime}: ${r.samples.length} of ${PROBE_LINES} probe lines arrived`);
    }
    const note = (p: number) =>
      `step write -> SSE follower, ${PROBE_LINES} lines 100 ms apart; baseline: the same executor with log-append hidden (1 s snapshots); ours p${p === 50 ? 99 : 50} ${ms(percentile(ours.samples, p === 50 ? 99 : 50))}, max ${ms(Math.max(...ours.samples))}; of which the server (log write answered -> line at the follower): p50 ${ms(percentile(ours.serverSamples, 50))}, p99 ${ms(percentile(ours.serverSamples, 99))}; baseline max ${ms(Math.max(...base.samples))}`;
    out.push(
      result({
        name: `logs.latency.${runtime}.p50`,
        ours: percentile(ours.samples, 50),
        baseline: percentile(base.samples, 50),
        unit: 'ms',
        target: 'p50 <= 50 ms',
        met: (o) => o <= 50,
        note: note(50),
      }),
      result({
        name: `logs.latency.${runtime}.p99`,
        ours: percentile(ours.samples, 99),
        baseline: percentile(base.samples, 99),
        unit: 'ms',
        target: 'p99 <= 250 ms',
        met: (o) => o <= 250,
        note: note(99),
      }),
    );
  }
  return out;
};

export const logsRequests: Bench = async (ctx) => {
  ctx.say(`logs.requests: shell, a step printing continuously for ${REQUESTS_SECONDS} s, live appends`);
  const ours = await runJob(ctx, 'shell', WRITER, false);
  ctx.say('logs.requests: the same with Sourcegraph-style 1 s snapshots');
  const base = await runJob(ctx, 'shell', WRITER, true);
  // A step that printed for seconds made log writes: none counted means the counting is broken.
  if (ours.requests === 0 || base.requests === 0)
    throw new Error(`no log writes counted (ours ${ours.requests}, baseline ${base.requests})`);
  return [
    result({
      name: 'logs.requests',
      ours: ours.perSecond,
      baseline: base.perSecond,
      unit: 'req/s',
      target: '<= 20 per second per entry',
      met: (o) => o <= 20,
      note: `log write requests while the step ran: ${ours.requests} appends in ${ms(ours.stepMs)}; baseline ${base.requests} snapshot updates in ${ms(base.stepMs)}`,
    }),
  ];
};
