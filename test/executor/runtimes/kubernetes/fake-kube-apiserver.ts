/**
 * A FAKE Kubernetes API server on loopback, for the runtime's watch, log, failure and cancel logic
 * (no real cluster can run here). It keeps Jobs, Secrets, PVCs and pods in memory, answers the
 * REST calls the runtime makes, streams pod watch events and followed container logs, and records
 * every (resource, verb) it served. Pods do not start by themselves: a test drives each one
 * through a realistic status sequence with setPod/appendLog/endLog.
 *
 * A create is refused as a real API server refuses it, so the fake cannot hide what a cluster would
 * reject: 409 AlreadyExists for a taken name, 422 Invalid for an object that fails the upstream
 * schema or the API server's rules (invalid names, duplicate container or volume names, a request
 * above its limit; kubernetes-validity.ts), 400 BadRequest for a kind or namespace that does not
 * match the URL.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { objectProblems } from './kubernetes-validity.js';

export type Obj = {
  metadata: { name: string; labels?: Record<string, string>; resourceVersion?: string };
} & Record<string, unknown>;

interface LogStream {
  text: string;
  ended: boolean;
  listeners: Set<http.ServerResponse>;
}

export interface FakeKubeApiServer {
  url: string;
  jobs: Map<string, Obj>;
  secrets: Map<string, Obj>;
  pvcs: Map<string, Obj>;
  pods: Map<string, Obj>;
  /** `resource verb` pairs served, e.g. `jobs create`, `pods/log get`. */
  calls: string[];
  /** `resource/name` of every successful create, in order. */
  created: string[];
  deleteBodies: Array<{ resource: string; name: string; body: Record<string, unknown> }>;
  /** Creates or replaces a pod and sends ADDED/MODIFIED to watchers. */
  setPod(pod: Obj): void;
  appendLog(pod: string, container: string, text: string): void;
  endLog(pod: string, container: string): void;
  /** Open log followers of a container. */
  logFollowers(pod: string, container: string): number;
  close(): Promise<void>;
}

function matches(labels: Record<string, string> | undefined, selector: string): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return labels?.[k!] === v;
  });
}

export async function startFakeKubeApiServer(): Promise<FakeKubeApiServer> {
  let rv = 100;
  const jobs = new Map<string, Obj>();
  const secrets = new Map<string, Obj>();
  const pvcs = new Map<string, Obj>();
  const pods = new Map<string, Obj>();
  const calls: string[] = [];
  const created: string[] = [];
  const deleteBodies: FakeKubeApiServer['deleteBodies'] = [];
  const watchers = new Set<{ selector: string; res: http.ServerResponse }>();
  const logs = new Map<string, LogStream>();
  const stores: Record<string, Map<string, Obj>> = { jobs, secrets, persistentvolumeclaims: pvcs, pods };
  /** The kind a resource holds, and its `Kind.group` as API server messages name it. */
  const KINDS: Record<string, { kind: string; qualified: string }> = {
    jobs: { kind: 'Job', qualified: 'Job.batch' },
    secrets: { kind: 'Secret', qualified: 'Secret' },
    persistentvolumeclaims: { kind: 'PersistentVolumeClaim', qualified: 'PersistentVolumeClaim' },
    pods: { kind: 'Pod', qualified: 'Pod' },
  };

  const logOf = (pod: string, c: string) => {
    const k = `${pod}/${c}`;
    let l = logs.get(k);
    if (!l) {
      l = { text: '', ended: false, listeners: new Set() };
      logs.set(k, l);
    }
    return l;
  };

  const emit = (type: string, pod: Obj) => {
    for (const w of watchers) {
      if (matches(pod.metadata.labels, w.selector)) w.res.write(`${JSON.stringify({ type, object: pod })}\n`);
    }
  };

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const status = (res: http.ServerResponse, code: number, reason: string, message: string) =>
    json(res, code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code });

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = chunks.length
      ? (JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>)
      : {};
    if (url.pathname === '/version') return json(res, 200, { gitVersion: 'v1.30.0-fake' });
    const m = /^\/(?:api\/v1|apis\/batch\/v1)\/namespaces\/([^/]+)\/([a-z]+)(?:\/([^/]+))?(?:\/(log))?$/.exec(
      url.pathname,
    );
    if (!m) return status(res, 404, 'NotFound', `no route ${url.pathname}`);
    const [, namespace, resource, name, sub] = m as unknown as [
      string,
      string,
      string,
      string | undefined,
      string | undefined,
    ];
    const store = stores[resource];
    if (!store) return status(res, 404, 'NotFound', `no resource ${resource}`);

    if (sub === 'log') {
      calls.push('pods/log get');
      const c = url.searchParams.get('container') ?? '';
      if (!pods.has(name!)) return status(res, 404, 'NotFound', `pods "${name}" not found`);
      const l = logOf(name!, c);
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write(l.text);
      if (l.ended || url.searchParams.get('follow') !== 'true') return res.end();
      l.listeners.add(res);
      res.on('close', () => l.listeners.delete(res));
      return;
    }

    if (req.method === 'POST' && !name) {
      calls.push(`${resource} create`);
      const obj = body as Obj & { kind?: string; metadata: { namespace?: string } };
      const { kind, qualified } = KINDS[resource]!;
      if (obj.kind !== kind) {
        return status(res, 400, 'BadRequest', `the kind ${obj.kind} does not match ${kind} of ${resource}`);
      }
      if (obj.metadata?.namespace !== undefined && obj.metadata.namespace !== namespace) {
        return status(
          res,
          400,
          'BadRequest',
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      }
      const invalid = objectProblems(obj);
      if (invalid.length > 0) {
        return status(
          res,
          422,
          'Invalid',
          `${qualified} "${obj.metadata?.name}" is invalid: ${invalid.join(', ')}`,
        );
      }
      if (store.has(obj.metadata.name))
        return status(res, 409, 'AlreadyExists', `${resource} "${obj.metadata.name}" already exists`);
      obj.metadata.resourceVersion = String(++rv);
      store.set(obj.metadata.name, obj);
      created.push(`${resource}/${obj.metadata.name}`);
      return json(res, 201, obj);
    }
    if (req.method === 'DELETE' && name) {
      calls.push(`${resource} delete`);
      deleteBodies.push({ resource, name, body });
      const obj = store.get(name);
      if (!obj) return status(res, 404, 'NotFound', `${resource} "${name}" not found`);
      store.delete(name);
      if (resource === 'pods') emit('DELETED', obj);
      if (resource === 'jobs') {
        // Background propagation: the garbage collector removes the Job's pods.
        for (const p of [...pods.values()]) {
          if (p.metadata.labels?.['job-name'] === name) {
            pods.delete(p.metadata.name);
            emit('DELETED', p);
          }
        }
      }
      return json(res, 200, { kind: 'Status', status: 'Success' });
    }
    if (req.method === 'GET' && !name) {
      const selector = url.searchParams.get('labelSelector') ?? '';
      if (url.searchParams.get('watch') === 'true') {
        calls.push(`${resource} watch`);
        res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
        const w = { selector, res };
        watchers.add(w);
        res.on('close', () => watchers.delete(w));
        for (const p of store.values())
          if (matches(p.metadata.labels, selector))
            res.write(`${JSON.stringify({ type: 'ADDED', object: p })}\n`);
        return;
      }
      calls.push(`${resource} list`);
      const items = [...store.values()].filter((o) => matches(o.metadata.labels, selector));
      return json(res, 200, { kind: 'List', metadata: { resourceVersion: String(rv) }, items });
    }
    return status(res, 405, 'MethodNotAllowed', `${req.method} ${url.pathname}`);
  });

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    jobs,
    secrets,
    pvcs,
    pods,
    calls,
    created,
    deleteBodies,
    setPod(pod) {
      const existed = pods.has(pod.metadata.name);
      pod.metadata.resourceVersion = String(++rv);
      pods.set(pod.metadata.name, pod);
      emit(existed ? 'MODIFIED' : 'ADDED', pod);
    },
    appendLog(pod, container, text) {
      const l = logOf(pod, container);
      l.text += text;
      for (const r of l.listeners) r.write(text);
    },
    endLog(pod, container) {
      const l = logOf(pod, container);
      l.ended = true;
      for (const r of l.listeners) r.end();
      l.listeners.clear();
    },
    logFollowers(pod, container) {
      return logOf(pod, container).listeners.size;
    },
    async close() {
      for (const w of watchers) w.res.end();
      for (const l of logs.values()) for (const r of l.listeners) r.end();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A pod of `job` as the Job controller would create it, Pending and not yet scheduled. */
export function podForJob(job: Obj, suffix = 'x7k2p'): Obj {
  const name = job.metadata.name;
  const tmpl = (job.spec as { template: { metadata: { labels: Record<string, string> }; spec: unknown } })
    .template;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${name}-${suffix}`,
      labels: { ...tmpl.metadata.labels, 'job-name': name, 'batch.kubernetes.io/job-name': name },
    },
    spec: tmpl.spec as Record<string, unknown>,
    status: { phase: 'Pending' },
  };
}
