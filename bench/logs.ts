/**
 * logs: one Docker step writing 100 MiB to stdout, the executor in its own process. RUNS rounds
 * (BENCH_LOGS_RUNS, default 3) of: the job, the raw container, the attached raw container.
 *   - wall: dequeue answered -> markComplete answered (timed at the server), against the same
 *     container with its output discarded inside it (create + start + wait + remove); medians;
 *   - wall.vs_attach: the same, against the same container writing to its stdout, attached and
 *     drained by a bare client (runRawAttached: the least any reader of the output pays); medians;
 *   - peak RSS of the executor process (VmHWM) after the first job, against its RSS before it;
 *   - stored bytes of the first job (the server's log rows) against the executor's cap plus the
 *     truncation markers it wrote.
 */
import Dockerode from 'dockerode';
import { createApiClient } from '../src/cli/api-client.js';
import { truncationMarker } from '../src/executor/logs/job-logger.js';
import type { JobSpec } from '../src/protocol/job-spec.js';
import { executorEnv, startBenchServer } from './cluster.js';
import { recordedCreates, replayOptions, runRaw, runRawAttached } from './docker-baseline.js';
import { type Bench, MiB, median, memoryOf, result, tempDir, waitFor } from './lib.js';
import { spawnCli } from './procs.js';
import { recordTemplate } from './step.js';

const TOTAL = Number(process.env.BENCH_LOGS_MIB ?? 100) * MiB;
const CAP = 16 * MiB; // EXECUTOR_MAX_LOG_BYTES default
const RUNS = Number(process.env.BENCH_LOGS_RUNS ?? 3);
const WRITER = `yes 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ | head -c ${TOTAL}`;

export const logs: Bench = async (ctx) => {
  if (recordedCreates.length === 0) await recordTemplate(ctx);
  const template = recordedCreates.at(-1)!;
  const docker = new Dockerode();
  const stamps = new Map<string, number>();
  const server = await startBenchServer({
    logger: ctx.logger,
    onFinish: (req, res) => {
      const url = req.url ?? '';
      if (url.endsWith('/dequeue') && res.statusCode === 200) stamps.set('dequeued', performance.now());
      if (/\/mark(Complete|Errored|Failed)$/.test(url)) stamps.set('completed', performance.now());
    },
  });
  const work = tempDir('logs');
  const exec = spawnCli(
    ['run'],
    executorEnv(server, {
      EXECUTOR_RUNTIME: 'docker',
      EXECUTOR_WORKSPACE_ROOT: `${work.path}/ws`,
      EXECUTOR_JOB_NETWORK: process.env.BENCH_JOB_NETWORK ?? 'none',
      EXECUTOR_MAX_LOG_BYTES: String(CAP),
      EXECUTOR_LOG_LEVEL: 'warn',
    }),
  );
  const api = createApiClient({ server: server.url, token: server.apiToken });
  try {
    await waitFor('the executor to long-poll', () => server.app.waiting() >= 1, 60_000, 20);
    const idleRss = memoryOf(exec.pid).rss;
    const runJob = async () => {
      stamps.clear();
      const job = await api.submit({
        queue: 'bench',
        steps: [{ image: ctx.dockerImage, run: WRITER }],
      } as JobSpec);
      await waitFor('the job to finish', () => stamps.has('completed'), 300_000, 20);
      const record = await server.store.getJob(job.id);
      if (record?.state !== 'completed')
        throw new Error(`job ${record?.state}: ${record?.failureMessage}\n${exec.output()}`);
      return { id: job.id, wall: stamps.get('completed')! - stamps.get('dequeued')! };
    };
    const walls: number[] = [];
    const raws: number[] = [];
    const attaches: number[] = [];
    let firstJob = 0;
    let peak = 0;
    for (let round = 0; round < RUNS; round++) {
      ctx.say(
        `logs: round ${round + 1}/${RUNS}: the ${TOTAL / MiB} MiB job, then the raw container, discarded and attached`,
      );
      const ran = await runJob();
      walls.push(ran.wall);
      if (round === 0) {
        firstJob = ran.id;
        peak = memoryOf(exec.pid).peak;
      }
      raws.push(await runRaw(docker, replayOptions(template, `${WRITER} > /dev/null`, `${work.path}/raw`)));
      const attached = await runRawAttached(docker, replayOptions(template, WRITER, `${work.path}/raw`));
      if (attached.bytes !== TOTAL)
        throw new Error(`the attached baseline read ${attached.bytes} bytes, not ${TOTAL}`);
      attaches.push(attached.ms);
    }
    const wall = median(walls);
    const raw = median(raws);
    const attach = median(attaches);
    const ms = (xs: number[]) => xs.map((x) => Math.round(x)).join(' / ');

    const entries = await server.store.getLogEntries(firstJob, { withOutput: true });
    const stored = entries.reduce((n, e) => n + Buffer.byteLength(e.out ?? '', 'utf8'), 0);
    // Markers as the executor writes them: one per entry it truncated.
    const markerRe = /\n\[\.\.\. (\d+) bytes of output omitted: log limit of (\d+) bytes reached \.\.\.\]\n/g;
    let markerBytes = 0;
    for (const e of entries) {
      for (const m of (e.out ?? '').matchAll(markerRe))
        markerBytes += Buffer.byteLength(truncationMarker(Number(m[1]), Number(m[2])));
    }
    const expected = CAP + markerBytes;
    return [
      result({
        name: 'logs.wall',
        ours: wall,
        baseline: raw,
        unit: 'ms',
        target: 'ratio <= 1.3',
        met: (_o, r) => r <= 1.3,
        note: `dequeue -> markComplete of the 100 MiB job (executor in its own process) vs the same container writing to /dev/null; medians of ${RUNS} rounds (ours ${ms(walls)} ms, baseline ${ms(raws)} ms); entries of the first job: ${entries.map((e) => `${e.key} ${e.durationMs} ms`).join(', ')}`,
      }),
      result({
        name: 'logs.wall.vs_attach',
        ours: wall,
        baseline: attach,
        unit: 'ms',
        target: 'ratio <= 1.1',
        met: (_o, r) => r <= 1.1,
        note: `the same job vs the same container writing to its stdout, attached over the daemon's socket and drained by a bare client (frames counted, nothing kept; ${TOTAL} bytes each run); medians of the same ${RUNS} rounds (attached ${ms(attaches)} ms)`,
      }),
      result({
        name: 'logs.peak_rss',
        ours: peak / MiB,
        baseline: idleRss / MiB,
        unit: 'MiB',
        target: '<= 150 MiB',
        met: (o) => o <= 150,
        note: 'executor VmHWM after the first job vs its VmRSS just before it',
      }),
      result({
        name: 'logs.stored_bytes',
        ours: stored,
        baseline: expected,
        unit: 'bytes',
        target: `= cap (${CAP}) + markers`,
        met: (o) => o === expected,
        note: `${entries.length} entries; ${entries.filter((e) => e.truncated).length} cut by the server; markers ${markerBytes} bytes; server cap ${server.config.maxLogBytesPerJob}`,
      }),
    ];
  } finally {
    await exec.stop();
    await server.close();
    work.remove();
  }
};
