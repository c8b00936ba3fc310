/**
 * queue-ab: this checkout's server against another checkout's, in one process, on the queue
 * benchmark's cycle (16 real queue clients, dequeue + markComplete over HTTP, clients in the
 * server's process). Separate runs of `npm run bench -- queue` on a shared machine differ by 10 %
 * and more from run to run; here both servers take turns in 2 s slices of the same run (the order
 * swapped every round), so what the machine does to one it does to the other.
 *
 *   npx tsx bench/queue-ab.ts BASE_DIR [sqlite|postgres] [ROUNDS]
 *
 * BASE_DIR is the other checkout (a git worktree of an older commit, say), with its dependencies
 * installed or `node_modules` linked to these. Each side drives its own server with its own queue
 * client (`bench/cluster.ts` startBenchServer and `src/executor/client/queue-client.ts` of its tree),
 * on a database of its own: SQLite by default, PostgreSQL at BENCH_POSTGRES_URL (or
 * TEST_DATABASE_URL). Prints both medians, their ratio and the median of the per-round ratios
 * (this checkout / BASE_DIR: below 1 means this checkout is slower), and the process's CPU time per
 * cycle of each (the slices take turns, so a slice's CPU is its side's). A first slice of each side
 * warms the JIT up and is not counted.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { JobSpec } from '../src/protocol/job-spec.js';
import type * as Cluster from './cluster.js';
import { freshDatabase, median, quietLogger } from './lib.js';
import { CLIENTS, oursClients, SLICE_MS } from './queue-drive.js';

type QueueClientModule = typeof import('../src/executor/client/queue-client.js');

const here = path.resolve(import.meta.dirname, '..');
const [baseArg, storeArg = 'sqlite', roundsArg = '10'] = process.argv.slice(2);
if (!baseArg || !['sqlite', 'postgres'].includes(storeArg) || !(Number(roundsArg) > 0)) {
  console.error('usage: npx tsx bench/queue-ab.ts BASE_DIR [sqlite|postgres] [ROUNDS]');
  process.exit(2);
}
const rounds = Number(roundsArg);
const postgresUrl =
  process.env.BENCH_POSTGRES_URL ??
  process.env.TEST_DATABASE_URL ??
  'postgres://postgres:postgres@127.0.0.1:5432/postgres';
const logger = quietLogger();
const spec = { queue: 'bench', steps: [{ image: 'busybox', run: 'true' }] } as JobSpec;
const newJob = {
  queue: 'bench',
  spec,
  repositoryName: '',
  commit: '',
  priority: 0,
  maxAttempts: 1,
  timeoutMs: 60_000,
};

const load = async <T>(root: string, file: string): Promise<T> =>
  (await import(pathToFileURL(path.join(root, file)).href)) as T;

async function side(label: string, root: string) {
  const { startBenchServer } = await load<typeof Cluster>(root, 'bench/cluster.ts');
  const { createQueueClient } = await load<QueueClientModule>(root, 'src/executor/client/queue-client.ts');
  const db = storeArg === 'postgres' ? await freshDatabase(postgresUrl, `ab_${label}`) : undefined;
  const server = await startBenchServer({ logger, ...(db ? { databaseUrl: db.url } : {}) });
  const clients = await oursClients(server.url, server.executorsToken, logger, createQueueClient);
  let ready = 0;
  const rates: number[] = [];
  const cpu: number[] = [];
  return {
    label,
    rates,
    cpu,
    /** Keeps enough jobs queued for a slice (outside the timed part). */
    async fill() {
      while (ready < (storeArg === 'postgres' ? 3_000 : 12_000)) {
        await Promise.all(Array.from({ length: 8 }, () => server.store.enqueue(newJob, Date.now())));
        ready += 8;
      }
    },
    async slice() {
      let cycles = 0;
      const cpuBefore = process.cpuUsage();
      const start = performance.now();
      const until = start + SLICE_MS;
      let end = start;
      await Promise.all(
        clients.map(async (c) => {
          while (performance.now() < until) {
            const job = await c.dequeue();
            if (!job) throw new Error(`${label}: the queue ran dry during a slice`);
            await c.markComplete(job);
            cycles++;
          }
          end = Math.max(end, performance.now());
        }),
      );
      ready -= cycles;
      rates.push(cycles / ((end - start) / 1000));
      const used = process.cpuUsage(cpuBefore);
      cpu.push((used.user + used.system) / cycles);
    },
    async close() {
      await server.close();
      await db?.drop();
    },
  };
}

const base = await side('base', path.resolve(baseArg));
const ours = await side('this', here);
try {
  // A slice of each first, not counted: the JIT's warm-up.
  for (const s of [base, ours]) {
    await s.fill();
    await s.slice();
    s.rates.length = 0;
    s.cpu.length = 0;
  }
  for (let r = 0; r < rounds; r++) {
    for (const s of r % 2 === 0 ? [base, ours] : [ours, base]) {
      await s.fill();
      await s.slice();
    }
  }
} finally {
  await base.close();
  await ours.close();
}
const perRound = ours.rates.map((o, i) => o / base.rates[i]!);
const r0 = (xs: number[]) => xs.map((x) => Math.round(x)).join(' ');
console.log(`queue-ab ${storeArg}, ${rounds} rounds of ${SLICE_MS / 1000} s slices, ${CLIENTS} clients`);
console.log(
  `  base (${path.resolve(baseArg)}): median ${median(base.rates).toFixed(0)} cycles/s [${r0(base.rates)}]`,
);
console.log(`  this checkout:     median ${median(ours.rates).toFixed(0)} cycles/s [${r0(ours.rates)}]`);
console.log(
  `  this / base: ${(median(ours.rates) / median(base.rates)).toFixed(3)} (medians), ${median(perRound).toFixed(3)} (median of the rounds' ratios)`,
);
console.log(
  `  this process's CPU per cycle (clients, server, driver; not the database's): base ${median(base.cpu).toFixed(0)} us, this checkout ${median(ours.cpu).toFixed(0)} us (${(median(ours.cpu) / median(base.cpu)).toFixed(3)})`,
);
process.exit(0);
