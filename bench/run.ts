/**
 * `npm run bench` runs every benchmark; `npm run bench -- NAME [NAME...]` only those. Each prints our
 * figure, the baseline measured in the same run and the ratio; all results go to
 * bench/results/latest.json. Exit code 1 when a benchmark could not run (a missed target is a
 * result, not a failure); the figures of its parts that did run are recorded all the same.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { clone } from './clone.js';
import { dispatch } from './dispatch.js';
import { fleet } from './fleet.js';
import { footprint } from './footprint.js';
import {
  type Bench,
  type BenchContext,
  type BenchResult,
  PartialResults,
  postgresAnswers,
  quietLogger,
} from './lib.js';
import { logs } from './logs.js';
import { logsLatency, logsRequests } from './logs-live.js';
import { prune } from './prune.js';
import { queue } from './queue.js';
import { step } from './step.js';
import { stepIsolated } from './step-isolated.js';
import { vm } from './vm.js';

const BENCHES: Record<string, Bench> = {
  dispatch,
  queue,
  step,
  'step.isolated': stepIsolated,
  logs,
  'logs.latency': logsLatency,
  'logs.requests': logsRequests,
  footprint,
  fleet,
  prune,
  clone,
  vm,
};

/** Run only when asked by name (`npm run bench -- fleet`): minutes long, and 20,000 sockets. */
const OPT_IN = new Set(['fleet']);

function formatRow(r: BenchResult): string {
  const n = (x: number) => (Number.isFinite(x) ? String(x) : '-');
  return `${r.name.padEnd(28)} ours ${n(r.ours).padStart(10)} ${r.unit.padEnd(9)} baseline ${n(r.baseline).padStart(10)}  ratio ${n(r.ratio).padStart(7)}  target ${r.target}  ${r.met ? 'MET' : 'MISSED'}`;
}

async function main() {
  const asked = process.argv.slice(2).filter((a) => a !== '--');
  const unknown = asked.filter((a) => !(a in BENCHES));
  if (unknown.length > 0) {
    process.stderr.write(
      `unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}\n`,
    );
    process.exit(2);
  }
  const names = asked.length > 0 ? asked : Object.keys(BENCHES).filter((n) => !OPT_IN.has(n));
  const pgUrl = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres:postgres@127.0.0.1:5432/postgres';
  const ctx: BenchContext = {
    logger: quietLogger(),
    postgresUrl: (await postgresAnswers(pgUrl)) ? pgUrl : undefined,
    dockerImage: process.env.BENCH_DOCKER_IMAGE ?? 'executor-test/busybox:latest',
    say: (t) => process.stdout.write(`  .. ${t}\n`),
  };
  const started = Date.now();
  const loadAtStart = os.loadavg()[0]!;
  const results: BenchResult[] = [];
  const failures: string[] = [];
  for (const name of names) {
    const t = Date.now();
    process.stdout.write(`${name}\n`);
    try {
      const rs = await BENCHES[name]!(ctx);
      for (const r of rs) process.stdout.write(`${formatRow(r)}\n`);
      results.push(...rs);
    } catch (e) {
      failures.push(name);
      // The parts that ran are recorded all the same.
      if (e instanceof PartialResults) {
        for (const r of e.results) process.stdout.write(`${formatRow(r)}\n`);
        results.push(...e.results);
      }
      process.stdout.write(`${name} FAILED: ${(e as Error).stack ?? e}\n`);
    }
    process.stdout.write(`  (${((Date.now() - t) / 1000).toFixed(1)} s)\n`);
  }
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
  const doc = {
    date: new Date().toISOString(),
    host: {
      cpus: os.cpus().length,
      model: os.cpus()[0]?.model ?? '',
      memory: os.totalmem(),
      node: process.version,
    },
    durationSeconds: Math.round((Date.now() - started) / 1000),
    // 1-minute load average at start and end: the floors move with it, the ratios should not.
    loadAverage: { start: loadAtStart, end: os.loadavg()[0]! },
    results,
    failures,
  };
  writeFileSync(new URL('./results/latest.json', import.meta.url), `${JSON.stringify(doc, null, 2)}\n`);
  process.stdout.write(
    `\n${results.length} figures in ${doc.durationSeconds} s; results in bench/results/latest.json\n`,
  );
  // Open handles (pools, sockets) must not keep a finished run alive.
  process.exit(failures.length > 0 ? 1 : 0);
}

void main();
