/**
 * The queue benchmark's clients in a process of their own (bench/queue.ts starts it with an IPC
 * channel), so that the server under test has its thread to itself, as it would in production.
 * Env: QUEUE_OURS_URL and QUEUE_OURS_TOKEN (our server and its executor token), QUEUE_BARE_URL
 * (the bare server), QUEUE_NOOP_URL (the no-op node:http server).
 *
 * Sends `{"ready":true}` once the clients of our server have pinged; then for each message
 * `{"slice":"ours"|"bare"|"http"}` runs one slice (queue-drive.ts) against that server and answers
 * `{"slice":..., "cycles":n, "perSecond":r}`, or `{"error":text}`.
 */
import { quietLogger } from './lib.js';
import {
  bareCycle,
  type Driven,
  drive,
  noopCycle,
  oursClients,
  oursCycle,
  type Target,
} from './queue-drive.js';

const env = (name: string) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

async function main(): Promise<void> {
  if (!process.send)
    throw new Error('bench/queue-clients.ts needs an IPC channel (started by bench/queue.ts)');
  const send = process.send.bind(process);
  const clients = await oursClients(env('QUEUE_OURS_URL'), env('QUEUE_OURS_TOKEN'), quietLogger());
  const cycles: Record<Target, (i: number) => Promise<boolean>> = {
    ours: oursCycle(clients),
    bare: bareCycle(env('QUEUE_BARE_URL')),
    http: noopCycle(env('QUEUE_NOOP_URL')),
  };
  process.on('message', (raw: unknown) => {
    const m = raw as { slice?: Target };
    const cycle = m.slice && Object.hasOwn(cycles, m.slice) ? cycles[m.slice] : undefined;
    if (!cycle) {
      send({ error: `unknown message ${JSON.stringify(m)}` });
      return;
    }
    drive(cycle).then(
      (d: Driven) => send({ slice: m.slice, ...d }),
      (e: unknown) => send({ error: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
    );
  });
  send({ ready: true });
}

process.on('SIGTERM', () => process.exit(0));
// The parent gone, nothing is left to answer.
process.on('disconnect', () => process.exit(0));

main().catch((e) => {
  process.stderr.write(`queue-clients: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
