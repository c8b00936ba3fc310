/**
 * Where a process's CPU went, from a V8 CPU profile (`node --cpu-prof`, e.g. the fleet bench's
 * server under BENCH_CHILD_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR"):
 *
 *   npx tsx bench/cpuprofile-summary.ts FILE.cpuprofile [--from US --to US] [--per N]
 *
 * --from/--to keep the samples of a span of the monotonic clock in microseconds (the fleet bench
 * prints its window's bounds on that clock when profiling); --per N also gives each line's time
 * divided by N (the heartbeats answered in the span, say), in microseconds.
 *
 * Prints the busy time (samples not idle), self time by category (with the largest functions of
 * each), the functions with the most self time, and the functions of the compiled server (dist/) with the most total time (self plus
 * callees). A sample's category is that of its innermost frame a rule below knows: native frames
 * (no script) take their caller's, so a better-sqlite3 call counts as the store that made it.
 * Only the main thread is sampled: the time of libuv's and GC's helper threads is not in it. The
 * samples measure wall time: on a loaded machine a thread that waits for a core still counts as
 * busy, so read the shares, and take CPU time from /proc (the fleet bench's cpu row).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface Frame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: Frame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** ServerResponse's, in node:_http_server beside the request's parsing. */
const ANSWER_FUNCTIONS = new Set(['writeHead', '_implicitHeader', 'end', 'write']);

/** First match wins, innermost frame first. */
const CATEGORIES: [string, (f: Frame) => boolean][] = [
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  ['native, outside JavaScript ((program))', (f) => f.functionName === '(program)'],
  [
    'JSON parse / stringify',
    (f) => f.url === '' && (f.functionName === 'parse' || f.functionName === 'stringify'),
  ],
  ['validation (zod)', (f) => f.url.includes('/node_modules/zod/')],
  [
    'auth: token digest and compare',
    (f) =>
      f.url.includes('internal/crypto') ||
      f.url.includes('/executor-api/auth') ||
      f.url.endsWith('/guards.js'),
  ],
  [
    'store (SQLite, PostgreSQL, the heartbeat writer)',
    (f) =>
      f.url.includes('/store/') ||
      f.url.includes('better-sqlite3') ||
      f.url.includes('/node_modules/pg') ||
      f.url.includes('/heartbeat-writer'),
  ],
  [
    "HTTP answers and socket writes (pg's too)",
    (f) =>
      ANSWER_FUNCTIONS.has(f.functionName) ||
      f.url.includes('node:_http_outgoing') ||
      f.url.includes('node:net') ||
      f.url.includes('node:internal/stream_base_commons') ||
      f.url.includes('node:internal/streams/'),
  ],
  [
    'HTTP parsing (llhttp, headers, body read)',
    (f) =>
      (f.url === '' && f.functionName === 'execute') ||
      f.url.includes('node:_http_common') ||
      f.url.includes('node:_http_incoming') ||
      f.url.includes('node:_http_server'),
  ],
  ['timers', (f) => f.url.includes('node:internal/timers')],
  [
    'promises, microtasks, async hooks',
    (f) => f.url.includes('node:internal/process/task_queues') || f.url.includes('async_hooks'),
  ],
  ['server code (other)', (f) => f.url.includes('/dist/')],
  ['Node internals (other)', (f) => f.url.startsWith('node:')],
];

function parseArgs(argv: string[]) {
  const file = argv.find((a) => !a.startsWith('--') && !/^\d+$/.test(a));
  const num = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? Number(argv[i + 1]) : undefined;
  };
  if (!file) throw new Error('usage: cpuprofile-summary FILE.cpuprofile [--from US --to US] [--per N]');
  return { file, from: num('--from') ?? -Infinity, to: num('--to') ?? Infinity, per: num('--per') };
}

const where = (f: Frame) => (f.url ? `${path.basename(f.url)}:${f.lineNumber + 1}` : '(native)');

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const profile = JSON.parse(readFileSync(args.file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stack = (id: number): ProfileNode[] => {
    const out: ProfileNode[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) out.push(byId.get(at)!);
    return out;
  };
  const category = (id: number) => {
    for (const n of stack(id)) for (const [name, test] of CATEGORIES) if (test(n.callFrame)) return name;
    return 'other';
  };

  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const categories = new Map<string, number>();
  const inCategory = new Map<string, Map<string, number>>();
  const add = (m: Map<string, number>, k: string, us: number) => m.set(k, (m.get(k) ?? 0) + us);
  let busy = 0;
  let idle = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    // A sample stands for the time until the next one.
    const us = profile.timeDeltas[i + 1] ?? 0;
    if (t < args.from || t > args.to) continue;
    const id = profile.samples[i]!;
    const leaf = byId.get(id)!.callFrame;
    if (leaf.functionName === '(idle)') {
      idle += us;
      continue;
    }
    busy += us;
    const fn = `${leaf.functionName || '(anonymous)'} ${where(leaf)}`;
    const cat = category(id);
    add(self, fn, us);
    add(categories, cat, us);
    if (!inCategory.has(cat)) inCategory.set(cat, new Map());
    add(inCategory.get(cat)!, fn, us);
    const seen = new Set<string>();
    for (const n of stack(id)) {
      const f = n.callFrame;
      if (!f.url.includes('/dist/')) continue;
      const k = `${f.functionName || '(anonymous)'} ${where(f)}`;
      if (!seen.has(k)) add(total, k, us);
      seen.add(k);
    }
  }
  const span = Math.min(args.to, profile.endTime) - Math.max(args.from, profile.startTime);
  const line = (name: string, us: number) => {
    const per = args.per ? `  ${(us / args.per).toFixed(1).padStart(8)} us each` : '';
    return `${(us / 1000).toFixed(0).padStart(8)} ms ${((100 * us) / busy).toFixed(1).padStart(5)} %${per}  ${name}`;
  };
  const top = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => line(k, us))
      .join('\n');
  process.stdout.write(
    [
      `span ${(span / 1e6).toFixed(1)} s: busy ${(busy / 1000).toFixed(0)} ms (${((100 * busy) / span).toFixed(1)} % of a core), idle ${(idle / 1000).toFixed(0)} ms`,
      '',
      'self time by category (% of busy), with its largest functions:',
      [...categories]
        .sort((x, y) => y[1] - x[1])
        .map(([name, us]) => `${line(name, us)}\n${top(inCategory.get(name)!, 4).replace(/^/gm, '        ')}`)
        .join('\n'),
      '',
      'functions, self time:',
      top(self, 25),
      '',
      'compiled server functions (dist/), total time:',
      top(total, 15),
      '',
    ].join('\n'),
  );
}

main();
