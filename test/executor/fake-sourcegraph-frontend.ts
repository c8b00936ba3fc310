/**
 * A FAKE Sourcegraph frontend on loopback, for executor tests. It records every request (method,
 * path, headers, parsed JSON body) and answers either from scripted responses (`script`, used by the
 * conformance tables, which replay Sourcegraph's client tests) or from a small stateful model of the
 * `/.executors` routes (jobs to hand out, heartbeat known/cancel ids, marks, log entries, files).
 *
 * It is a fake because the tests must pin exact bytes against Sourcegraph's behaviour, which only
 * a Sourcegraph instance has; our own server is tested against a stock-executor view elsewhere.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  /** The query string's parameters. */
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  /** Raw body text. */
  raw: string;
  /** JSON-parsed body, or undefined when empty / not JSON. */
  json: unknown;
}

export interface ScriptedResponse {
  status: number;
  body?: string;
  headers?: Record<string, string>;
}

export interface FakeLogEntry {
  id: number;
  jobId: number;
  key: string;
  command: string[] | null;
  startTime: string;
  exitCode?: number;
  out: string;
  durationMs?: number;
}

export interface FakeMark {
  route: 'markComplete' | 'markErrored' | 'markFailed';
  queue: string;
  jobId: number;
  errorMessage?: string;
}

export interface FakeFrontend {
  url: string;
  requests: RecordedRequest[];
  /** Responses used in order, one per request, before the stateful model. */
  script: ScriptedResponse[];
  /** Jobs (wire JSON) handed out by dequeue, per queue name. */
  jobs: Map<string, Record<string, unknown>[]>;
  /** Heartbeat: ids answered as cancelIds. */
  cancelIds: Set<string>;
  /** Heartbeat: ids left out of knownIds (every other running id is known). */
  forgetIds: Set<string>;
  /** Sent as X-Executor-Capabilities on ping/heartbeat responses when non-empty. */
  capabilities: string;
  marks: FakeMark[];
  logEntries: Map<number, FakeLogEntry>;
  files: Map<string, Buffer>;
  /** Status to answer marks with (404 when the job is unknown, as Sourcegraph does). */
  markStatus: number;
  /** A rejection for every job route while set (e.g. 500 for log updates). */
  failLogUpdates: boolean;
  entriesFor(jobId: number): FakeLogEntry[];
  close(): Promise<void>;
}

export async function startFakeSourcegraphFrontend(): Promise<FakeFrontend> {
  const fake: Omit<FakeFrontend, 'url' | 'close' | 'entriesFor'> = {
    requests: [],
    script: [],
    jobs: new Map(),
    cancelIds: new Set(),
    forgetIds: new Set(),
    capabilities: '',
    marks: [],
    logEntries: new Map(),
    files: new Map(),
    markStatus: 204,
    failLogUpdates: false,
  };
  let nextEntryId = 1;

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let json: unknown;
      try {
        json = raw ? JSON.parse(raw) : undefined;
      } catch {
        json = undefined;
      }
      const [path, search = ''] = (req.url ?? '').split('?') as [string, string?];
      const query = Object.fromEntries(new URLSearchParams(search));
      const rec: RecordedRequest = { method: req.method ?? '', path, query, headers: req.headers, raw, json };
      fake.requests.push(rec);
      const reply = (r: ScriptedResponse) => {
        res.writeHead(r.status, r.headers ?? {});
        res.end(r.body ?? '');
      };
      const scripted = fake.script.shift();
      if (scripted) return reply(scripted);
      reply(model(rec));
    });
  });

  function model(rec: RecordedRequest): ScriptedResponse {
    const body = (rec.json ?? {}) as Record<string, unknown>;
    const capHeaders: Record<string, string> = fake.capabilities
      ? { 'x-executor-capabilities': fake.capabilities }
      : {};
    const q = /^\/\.executors\/queue\/(?:([^/]+)\/)?([A-Za-z]+)$/.exec(rec.path);
    if (q) {
      const [, queue, route] = q;
      switch (route) {
        case 'dequeue': {
          const queues = queue ? [queue] : ((body.queues as string[]) ?? []);
          for (const name of queues) {
            const list = fake.jobs.get(name);
            const job = list?.shift();
            if (job) return { status: 200, body: JSON.stringify(queue ? job : { ...job, queue: name }) };
          }
          return { status: 204 };
        }
        case 'heartbeat': {
          let ids: string[] = [];
          if (Array.isArray(body.jobIds)) ids = (body.jobIds as unknown[]).map(String);
          if (Array.isArray(body.jobIdsByQueue)) {
            for (const g of body.jobIdsByQueue as { queueName: string; jobIds: string[] }[]) {
              for (const id of g.jobIds ?? []) ids.push(`${id}-${g.queueName}`);
            }
          }
          return {
            status: 200,
            headers: { 'content-type': 'application/json', ...capHeaders },
            body: JSON.stringify({
              knownIds: ids.filter((id) => !fake.forgetIds.has(id)),
              cancelIds: ids.filter((id) => fake.cancelIds.has(id)),
            }),
          };
        }
        case 'markComplete':
        case 'markErrored':
        case 'markFailed': {
          fake.marks.push({
            route,
            queue: queue ?? '',
            jobId: body.jobId as number,
            errorMessage: body.errorMessage as string | undefined,
          });
          return { status: fake.markStatus };
        }
        case 'addExecutionLogEntry': {
          if (fake.failLogUpdates) return { status: 500, body: '{"error":"unknown job"}' };
          const id = nextEntryId++;
          fake.logEntries.set(id, {
            id,
            jobId: body.jobId as number,
            key: body.key as string,
            command: (body.command as string[] | null) ?? null,
            startTime: body.startTime as string,
            exitCode: body.exitCode as number | undefined,
            out: (body.out as string) ?? '',
            durationMs: body.durationMs as number | undefined,
          });
          return { status: 200, body: String(id) };
        }
        case 'updateExecutionLogEntry': {
          if (fake.failLogUpdates) return { status: 500, body: '{"error":"unknown job"}' };
          const e = fake.logEntries.get(body.entryId as number);
          if (!e) return { status: 500, body: '{"error":"unknown log entry"}' };
          Object.assign(e, {
            out: (body.out as string) ?? '',
            exitCode: body.exitCode as number | undefined,
            durationMs: body.durationMs as number | undefined,
          });
          return { status: 204 };
        }
      }
    }
    const f = /^\/\.executors\/files\/(.+)$/.exec(rec.path);
    if (f) {
      const content = fake.files.get(f[1]!);
      if (!content) return { status: 404 };
      return { status: 200, body: rec.method === 'HEAD' ? '' : content.toString('utf8') };
    }
    if (rec.path === '/.executors/test/auth') return { status: 200, body: 'ok' };
    return { status: 404, body: 'not found' };
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(fake, {
    url: `http://127.0.0.1:${port}`,
    entriesFor: (jobId: number) => [...fake.logEntries.values()].filter((e) => e.jobId === jobId),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

/** JSON normalisation as Sourcegraph's tests do it (unmarshal, marshal again): key order ignored. */
export function normalizeJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalizeJson);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v as object)
        .sort()
        .map((k) => [k, normalizeJson((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}
