/**
 * The local reverse proxy git clones through (Sourcegraph `workspace/clone.go`). It listens on
 * 127.0.0.1:<random> for the duration of a clone, forwards `/<repoName>/...` to
 * `<frontendUrl>/.executors/git/<repoName>/...` and adds the credentials there, so git's argv, env
 * and `.git/config` never hold a token. Any other path gets 403.
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface GitProxyOptions {
  frontendUrl: string;
  repositoryName: string;
  /** `Bearer <job token>`, or `token-executor <password>` when the job has no token. */
  authorization: string;
  jobId: number;
  executorName: string;
}

export interface GitProxy {
  /** `http://127.0.0.1:<port>`, without a trailing slash. */
  readonly url: string;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'authorization',
  'cookie',
]);

/** Refuses dot segments and encoded separators, so the prefix check cannot be walked around. */
function allowedPath(url: string, repo: string): boolean {
  const pathname = url.split('?')[0]!;
  if (!pathname.startsWith(`/${repo}/`)) return false;
  if (/%2e|%2f|%5c|\\/i.test(pathname)) return false;
  return !pathname.split('/').some((s) => s === '..' || s === '.');
}

export async function startGitProxy(opts: GitProxyOptions): Promise<GitProxy> {
  const upstream = new URL(opts.frontendUrl);
  const base = `${upstream.pathname.replace(/\/+$/, '')}/.executors/git`;
  const transport = upstream.protocol === 'https:' ? https : http;

  const server = http.createServer((req, res) => {
    if (!req.url || !allowedPath(req.url, opts.repositoryName)) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end('forbidden\n');
      req.resume();
      return;
    }
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    }
    if (req.headers['transfer-encoding']) headers['transfer-encoding'] = req.headers['transfer-encoding'];
    headers.host = upstream.host;
    headers.authorization = opts.authorization;
    headers['x-sourcegraph-actor-uid'] = 'internal';
    headers['x-sourcegraph-job-id'] = String(opts.jobId);
    headers['x-sourcegraph-executor-name'] = opts.executorName;

    const out = transport.request(
      {
        protocol: upstream.protocol,
        hostname: upstream.hostname,
        port: upstream.port || undefined,
        method: req.method,
        path: base + req.url,
        headers,
      },
      (up) => {
        const resHeaders: http.OutgoingHttpHeaders = {};
        for (const [k, v] of Object.entries(up.headers)) {
          if (v !== undefined && !HOP_BY_HOP.has(k)) resHeaders[k] = v;
        }
        res.writeHead(up.statusCode ?? 502, resHeaders);
        up.pipe(res);
      },
    );
    out.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`proxy error: ${err.message}\n`);
    });
    req.pipe(out);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
