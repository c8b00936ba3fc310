/**
 * A fake of the server's `/.executors/git/` route, on loopback: it records the headers each request
 * arrived with and serves the repositories under `reposRoot` through the real `git http-backend`
 * (CGI). Used to prove what the executor's clone proxy sends.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeFrontend {
  url: string;
  requests: { method: string; url: string; headers: http.IncomingHttpHeaders }[];
  /** Bytes of git-upload-pack responses served (the packs that crossed the network). */
  uploadPackBytes: number;
  close(): Promise<void>;
}

export async function startFakeFrontend(reposRoot: string): Promise<FakeFrontend> {
  const requests: FakeFrontend['requests'] = [];
  const counters = { uploadPackBytes: 0 };
  const server = http.createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const u = new URL(req.url ?? '/', 'http://x');
    const prefix = '/.executors/git';
    if (!u.pathname.startsWith(`${prefix}/`)) {
      res.writeHead(404).end();
      return;
    }
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      GIT_PROJECT_ROOT: reposRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: u.pathname.slice(prefix.length),
      QUERY_STRING: u.search.replace(/^\?/, ''),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_ADDR: '127.0.0.1',
      REMOTE_USER: 'executor',
    };
    if (req.headers['git-protocol']) env.GIT_PROTOCOL = String(req.headers['git-protocol']);
    if (req.headers['content-encoding']) env.HTTP_CONTENT_ENCODING = String(req.headers['content-encoding']);
    if (req.headers['content-length']) env.CONTENT_LENGTH = String(req.headers['content-length']);
    const cgi = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headerDone = false;
    const isPack = u.pathname.endsWith('/git-upload-pack');
    cgi.stdout.on('data', (b: Buffer) => {
      if (isPack) counters.uploadPackBytes += b.length;
      if (headerDone) {
        res.write(b);
        return;
      }
      head = Buffer.concat([head, b]);
      const sep = head.indexOf('\r\n\r\n');
      if (sep === -1) return;
      headerDone = true;
      let status = 200;
      for (const line of head.subarray(0, sep).toString('latin1').split('\r\n')) {
        const i = line.indexOf(':');
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = Number.parseInt(v, 10);
        else res.setHeader(k, v);
      }
      res.writeHead(status);
      res.write(head.subarray(sep + 4));
    });
    cgi.on('close', () => {
      if (!headerDone) res.writeHead(500);
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get uploadPackBytes() {
      return counters.uploadPackBytes;
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
