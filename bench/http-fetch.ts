/**
 * A `fetch` for the simulated fleet (bench/fleet-sim.ts), over node:http with a keep-alive agent:
 * what the queue client's `fetch` option takes, doing only what the client uses of it (method,
 * headers, a string or Buffer body, an abort signal; the answer's status, headers and body). The
 * queue client above it is the executor's own; only the transport is lighter. Measured in one
 * simulator process of 2,500 executors, fetch (undici, with its web streams and abort plumbing)
 * cost about 0.6 of a core and a fifth of it in garbage collection: a simulator of 5,000 on two
 * cores then delayed its own clients by hundreds of ms, and the latencies it reported were its own.
 */
import http from 'node:http';

/** The part of a Response the queue client reads. */
interface LightResponse {
  status: number;
  headers: { get(name: string): string | null };
  arrayBuffer(): Promise<ArrayBuffer>;
}

export function createHttpFetch(opts: { maxSockets?: number } = {}): typeof fetch {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? Number.POSITIVE_INFINITY });
  const lightFetch = (input: string | URL | Request, init: RequestInit = {}): Promise<LightResponse> =>
    new Promise((resolve, reject) => {
      const target = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
      if (target.protocol !== 'http:') {
        reject(new TypeError(`the fleet's transport speaks http only, not ${target.protocol}`));
        return;
      }
      const signal = init.signal ?? undefined;
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const headers = { ...(init.headers as Record<string, string> | undefined) };
      const body = init.body as string | Buffer | undefined | null;
      if (body != null) headers['content-length'] = String(Buffer.byteLength(body));
      const req = http.request(target, { method: init.method ?? 'GET', headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', fail);
        res.on('end', () => {
          signal?.removeEventListener('abort', onAbort);
          const buf = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: {
              get(name) {
                const v = res.headers[name.toLowerCase()];
                return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
              },
            },
            arrayBuffer: async () => buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength),
          });
        });
      });
      function fail(e: unknown) {
        signal?.removeEventListener('abort', onAbort);
        reject(e);
      }
      function onAbort() {
        req.destroy();
        fail(signal!.reason);
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', fail);
      req.end(body ?? undefined);
    });
  return lightFetch as unknown as typeof fetch;
}
