/**
 * The raw floor of the fleet benchmark: the same canned answers as bench/floor-server.ts, over
 * node:net with a hand-written HTTP/1.1 reader instead of node:http (heartbeat: 200 with empty id
 * lists and the capabilities header; dequeue: held for the asked time, then 204). What a process
 * that answered the executors' two hot routes without node:http's request and response objects
 * would pay for the requests alone: the bound on what a hand-written HTTP path could save.
 *
 * It is a measuring stick, not a server: it reads only what the simulated fleet sends (a
 * Content-Length body, keep-alive, no chunked bodies, no pipelining guarantees beyond order) and
 * checks nothing. Prints `listening <port>`.
 */
import net from 'node:net';

const CAPABILITIES = 'x-executor-capabilities: long-poll, log-append\r\n';
const EMPTY_ANSWER = '{"knownIds":[],"cancelIds":[]}\n';
const HEARTBEAT = Buffer.from(
  `HTTP/1.1 200 OK\r\n${CAPABILITIES}content-type: application/json\r\ncontent-length: ${EMPTY_ANSWER.length}\r\nconnection: keep-alive\r\n\r\n${EMPTY_ANSWER}`,
);
const NO_CONTENT = Buffer.from(
  `HTTP/1.1 204 No Content\r\n${CAPABILITIES}content-length: 0\r\nconnection: keep-alive\r\n\r\n`,
);
const MAX_HOLD_MS = 30_000;

/** A header's value in `head` (its lines after the first), or undefined. */
function header(head: string, lowerName: string): string | undefined {
  const lower = head.toLowerCase();
  const at = lower.indexOf(`\r\n${lowerName}:`);
  if (at < 0) return undefined;
  const from = at + lowerName.length + 3;
  const end = head.indexOf('\r\n', from);
  return head.slice(from, end < 0 ? undefined : end).trim();
}

const server = net.createServer((socket) => {
  let pending: Buffer | null = null;
  let hold: NodeJS.Timeout | undefined;
  socket.on('data', (chunk: Buffer) => {
    pending = pending === null ? chunk : Buffer.concat([pending, chunk]);
    while (pending !== null) {
      const headEnd: number = pending.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const head = pending.toString('latin1', 0, headEnd);
      const length = Number(header(head, 'content-length') ?? 0);
      const end: number = headEnd + 4 + length;
      if (pending.length < end) return;
      // The floor parses the body as the node:http floor does.
      JSON.parse(pending.toString('utf8', headEnd + 4, end) || 'null');
      pending = pending.length === end ? null : pending.subarray(end);
      const target = head.slice(head.indexOf(' ') + 1, head.indexOf(' ', head.indexOf(' ') + 1));
      if (target.endsWith('/dequeue')) {
        const ms = Math.min(Number(header(head, 'x-executor-long-poll-ms')) || 0, MAX_HOLD_MS);
        hold = setTimeout(() => socket.write(NO_CONTENT), ms);
      } else socket.write(HEARTBEAT);
    }
  });
  socket.on('close', () => clearTimeout(hold));
  socket.on('error', () => {});
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as net.AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
