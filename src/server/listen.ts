/**
 * Binding a server: `listen(app, host, port)` serves the app over HTTP, or HTTPS with a
 * certificate and key, with the heartbeat lane (lane/lane.ts) in front of node:http when it is on.
 */
import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { ServerApp } from './index.js';
import { type Lanes, laneInFront } from './lane/lane.js';

/**
 * Connections the kernel may hold for the server before it accepts them (Linux caps it at
 * net.core.somaxconn, 4096 by default). A fleet that comes back at once, after a restart, sends
 * thousands of SYNs together: with Node's default of 511 the kernel dropped most of them and each
 * dropped client waited 1 s, then 3 s, to try again (docs/operating.md).
 */
export const LISTEN_BACKLOG = 65_535;

export interface Listening {
  url: string;
  port: number;
  /** Stops accepting, ends long-polls and follows, waits for in-flight requests, stops loops. */
  close(): Promise<void>;
  /**
   * HTTPS only: reads the certificate and key files again and uses them for new TLS handshakes;
   * open connections (long-polls, log follows) keep theirs. Throws, keeping the old pair, when the
   * files cannot be read or do not match.
   */
  reloadTls(): void;
}

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** The pair as Node's TLS wants it; createSecureContext checks that key and certificate match. */
function readTls(files: TlsFiles): { cert: Buffer; key: Buffer } {
  const pair = { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
  tls.createSecureContext(pair);
  return pair;
}

/** `tls`: serve HTTPS (HTTP/1.1) with these files instead of HTTP. */
export function listen(app: ServerApp, host: string, port: number, tlsFiles?: TlsFiles): Promise<Listening> {
  const handler = (req: IncomingMessage, res: ServerResponse) => app.handle(req, res);
  const server = tlsFiles ? https.createServer(readTls(tlsFiles), handler) : http.createServer(handler);
  // Node's requestTimeout stays off: request bodies are timed where they are read
  // (EXECUTOR_SERVER_REQUEST_TIMEOUT and EXECUTOR_SERVER_BODY_IDLE_TIMEOUT, see readBody and
  // discardBody), and a long-poll or log follow, which sends nothing after its headers, is never cut.
  server.requestTimeout = 0;
  server.headersTimeout = app.connectionTimeouts.headersMs;
  // By default idle connections stay open well past the executors' 5 s heartbeat interval (and a
  // load balancer's usual 60 s idle timeout): with Node's 5 s default, fetch dropped each
  // connection before the next heartbeat, so every heartbeat paid a new TCP connection (and TLS
  // handshake). EXECUTOR_SERVER_KEEP_ALIVE_TIMEOUT trades that for descriptors.
  server.keepAliveTimeout = app.connectionTimeouts.keepAliveMs;
  const lanes: Lanes | undefined = app.lane
    ? laneInFront(server, tlsFiles ? 'secureConnection' : 'connection', {
        answer: app.lane.answer,
        counted: app.lane.count,
        body: app.lane.body,
        keepAliveMs: app.connectionTimeouts.keepAliveMs,
        headersMs: app.connectionTimeouts.headersMs,
      })
    : undefined;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      server.off('error', reject);
      const addr = server.address() as AddressInfo;
      const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      let closed: Promise<void> | undefined;
      resolve({
        url: `${tlsFiles ? 'https' : 'http'}://${shownHost}:${addr.port}`,
        port: addr.port,
        reloadTls() {
          if (!tlsFiles) throw new Error('the server is not serving HTTPS');
          (server as https.Server).setSecureContext(readTls(tlsFiles));
        },
        close() {
          closed ??= (async () => {
            const done = new Promise<void>((r) => server.close(() => r()));
            server.closeIdleConnections();
            lanes?.close();
            await app.close();
            // In-flight requests get a grace period, then their connections are cut.
            const grace = setTimeout(() => {
              server.closeAllConnections();
              lanes?.destroyAll();
            }, 10_000);
            grace.unref();
            const idle = setInterval(() => server.closeIdleConnections(), 100);
            await done;
            clearTimeout(grace);
            clearInterval(idle);
          })();
          return closed;
        },
      });
    });
  });
}
