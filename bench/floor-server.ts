/**
 * The floor of the footprint benchmark's server figure: a bare node:http server answering the
 * executor traffic with canned responses (heartbeat: 200 with empty id lists and the capabilities
 * header; dequeue: held for the asked time, then 204). Prints `listening <port>`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
    res.setHeader('x-executor-capabilities', 'long-poll, log-append');
    if ((req.url ?? '').endsWith('/dequeue')) {
      const hold = Math.min(Number(req.headers['x-executor-long-poll-ms']) || 0, 30_000);
      const t = setTimeout(() => {
        res.writeHead(204, { 'content-length': '0' });
        res.end();
      }, hold);
      res.on('close', () => clearTimeout(t));
      return;
    }
    const body = '{"knownIds":[],"cancelIds":[]}\n';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) });
    res.end(body);
  });
});
server.requestTimeout = 0;
// As the executor server: an executor keeps its connection between heartbeats 5 s apart.
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
