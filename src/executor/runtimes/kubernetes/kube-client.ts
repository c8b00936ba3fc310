/**
 * The few Kubernetes API calls the runtime makes, over node:http(s). The kubeconfig (file or
 * in-cluster service account) is parsed by @kubernetes/client-node, which also yields the TLS
 * agent and auth headers; the calls themselves are plain REST, because the runtime needs only a
 * handful of them plus two streams (a pod watch and a followed container log).
 *
 * KUBE_API_PERMISSIONS is the complete list of (resource, verb) pairs this client can use: every
 * call checks itself against it, and the RBAC Role in deploy/kubernetes is tested to grant exactly
 * these and nothing more.
 */
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { KubeObject, Pod } from './kube-types.js';

export const KUBE_API_PERMISSIONS = [
  { apiGroup: 'batch', resource: 'jobs', verbs: ['create', 'delete', 'list'] },
  { apiGroup: '', resource: 'pods', verbs: ['delete', 'list', 'watch'] },
  { apiGroup: '', resource: 'pods/log', verbs: ['get'] },
  { apiGroup: '', resource: 'secrets', verbs: ['create', 'delete', 'list'] },
  { apiGroup: '', resource: 'persistentvolumeclaims', verbs: ['create', 'delete', 'list'] },
] as const;

export type KubeResource = (typeof KUBE_API_PERMISSIONS)[number]['resource'];
type ObjectResource = Exclude<KubeResource, 'pods/log'>;
type Verb = 'create' | 'delete' | 'get' | 'list' | 'watch';

export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: Pod & KubeObject;
}

export interface KubeClient {
  readonly namespace: string;
  create(resource: ObjectResource, body: KubeObject): Promise<KubeObject>;
  /** Deletes by name; resolves false when it was already gone (404). */
  delete(
    resource: ObjectResource,
    name: string,
    opts?: { propagationPolicy?: 'Background' | 'Foreground'; gracePeriodSeconds?: number },
  ): Promise<boolean>;
  list(
    resource: ObjectResource,
    labelSelector: string,
  ): Promise<{ items: KubeObject[]; resourceVersion: string }>;
  /**
   * Watches pods matching the selector from `resourceVersion`, calling onEvent per event. Resolves
   * when the server ends the watch (they time out), rejects on HTTP errors; abort stops it.
   */
  watchPods(
    labelSelector: string,
    resourceVersion: string,
    onEvent: (ev: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void>;
  /** Follows a container's log until the container ends (or abort); resolves at the end of the stream. */
  followLog(pod: string, container: string, onChunk: (b: Buffer) => void, signal: AbortSignal): Promise<void>;
  /** `GET /version` gitVersion. */
  serverVersion(): Promise<string>;
}

const PATHS: Record<KubeResource, string> = {
  jobs: '/apis/batch/v1/namespaces/{ns}/jobs',
  pods: '/api/v1/namespaces/{ns}/pods',
  'pods/log': '/api/v1/namespaces/{ns}/pods',
  secrets: '/api/v1/namespaces/{ns}/secrets',
  persistentvolumeclaims: '/api/v1/namespaces/{ns}/persistentvolumeclaims',
};

function allowed(resource: KubeResource, verb: Verb): void {
  const p = KUBE_API_PERMISSIONS.find((x) => x.resource === resource);
  if (!p || !(p.verbs as readonly string[]).includes(verb)) {
    throw new Error(`kubernetes client: ${verb} ${resource} is not in KUBE_API_PERMISSIONS`);
  }
}

async function readAll(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The error of a stream request (GET `p`) the API server refused. */
async function streamError(p: string, res: http.IncomingMessage): Promise<KubeApiError> {
  const text = await readAll(res);
  let msg = text.slice(0, 300);
  try {
    msg = String((JSON.parse(text) as { message?: string }).message ?? msg);
  } catch {
    // plain text
  }
  return new KubeApiError(
    res.statusCode ?? 0,
    '',
    `kubernetes API: GET ${p.split('?')[0]}: ${res.statusCode} ${msg}`,
  );
}

export interface KubeClientOptions {
  /** A loaded config, or a loader called once on first use (createRuntime is synchronous). */
  kubeConfig: KubeConfig | (() => Promise<KubeConfig>);
  namespace: string;
  /** Per-request timeout for non-streaming calls. */
  requestTimeoutMs?: number;
}

export function createKubeClient(opts: KubeClientOptions): KubeClient {
  const ready = (async () => {
    const kc = typeof opts.kubeConfig === 'function' ? await opts.kubeConfig() : opts.kubeConfig;
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    return { kc, server: new URL(cluster.server) };
  })();
  ready.catch(() => {});
  const ns = encodeURIComponent(opts.namespace);
  const timeoutMs = opts.requestTimeoutMs ?? 30_000;
  const base = (r: KubeResource) => PATHS[r].replace('{ns}', ns);

  /** Starts a request; resolves with the response once headers arrive. */
  async function send(
    method: string,
    pathAndQuery: string,
    body: unknown,
    signal?: AbortSignal,
    timeout?: number,
  ): Promise<http.IncomingMessage> {
    const { kc, server } = await ready;
    const o: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(o);
    const url = new URL(pathAndQuery, server);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, {
        ...o,
        method,
        signal,
        timeout,
        headers: {
          ...(o.headers as Record<string, string> | undefined),
          Accept: 'application/json',
          ...(payload
            ? { 'Content-Type': 'application/json', 'Content-Length': String(payload.length) }
            : {}),
        },
      });
      req.on('response', resolve);
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error(`kubernetes API: ${method} ${url.pathname} timed out`)));
      req.end(payload);
    });
  }

  async function call(method: string, p: string, body?: unknown): Promise<KubeObject> {
    const res = await send(method, p, body, undefined, timeoutMs);
    const text = await readAll(res);
    let json: KubeObject = {};
    try {
      json = text ? (JSON.parse(text) as KubeObject) : {};
    } catch {
      // not JSON: keep the text for the error
    }
    const status = res.statusCode ?? 0;
    if (status >= 400) {
      const msg = typeof json.message === 'string' ? json.message : text.slice(0, 300);
      throw new KubeApiError(
        status,
        String(json.reason ?? ''),
        `kubernetes API: ${method} ${p.split('?')[0]}: ${status} ${msg}`,
      );
    }
    return json;
  }

  async function stream(p: string, signal: AbortSignal, onData: (b: Buffer) => void): Promise<void> {
    const res = await send('GET', p, undefined, signal);
    if ((res.statusCode ?? 0) >= 400) throw await streamError(p, res);
    try {
      for await (const c of res) onData(c as Buffer);
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    }
  }

  return {
    namespace: opts.namespace,

    async create(resource, body) {
      allowed(resource, 'create');
      return call('POST', base(resource), body);
    },

    async delete(resource, name, o = {}) {
      allowed(resource, 'delete');
      const body = {
        kind: 'DeleteOptions',
        apiVersion: 'v1',
        ...(o.propagationPolicy ? { propagationPolicy: o.propagationPolicy } : {}),
        ...(o.gracePeriodSeconds !== undefined ? { gracePeriodSeconds: o.gracePeriodSeconds } : {}),
      };
      try {
        await call('DELETE', `${base(resource)}/${encodeURIComponent(name)}`, body);
        return true;
      } catch (err) {
        if (err instanceof KubeApiError && err.status === 404) return false;
        throw err;
      }
    },

    async list(resource, labelSelector) {
      allowed(resource, 'list');
      const r = await call('GET', `${base(resource)}?labelSelector=${encodeURIComponent(labelSelector)}`);
      return {
        items: (r.items as KubeObject[] | undefined) ?? [],
        resourceVersion: String(
          (r.metadata as { resourceVersion?: string } | undefined)?.resourceVersion ?? '',
        ),
      };
    },

    async watchPods(labelSelector, resourceVersion, onEvent, signal) {
      allowed('pods', 'watch');
      const q = new URLSearchParams({ labelSelector, watch: 'true', allowWatchBookmarks: 'true' });
      if (resourceVersion) q.set('resourceVersion', resourceVersion);
      let buf = '';
      await stream(`${base('pods')}?${q}`, signal, (chunk) => {
        buf += chunk.toString('utf8');
        let nl = buf.indexOf('\n');
        while (nl >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) onEvent(JSON.parse(line) as WatchEvent);
          nl = buf.indexOf('\n');
        }
      });
    },

    async followLog(pod, container, onChunk, signal) {
      allowed('pods/log', 'get');
      const q = new URLSearchParams({ container, follow: 'true' });
      await stream(`${base('pods/log')}/${encodeURIComponent(pod)}/log?${q}`, signal, onChunk);
    },

    async serverVersion() {
      const r = await call('GET', '/version');
      return String(r.gitVersion ?? '');
    },
  };
}

/**
 * Loads the kubeconfig: the file at `configPath` when it exists, else the in-cluster service
 * account (KUBERNETES_SERVICE_HOST/PORT and the mounted token). Throws when neither is usable.
 */
export async function loadKubeConfig(configPath: string | undefined): Promise<KubeConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const { existsSync } = await import('node:fs');
  const kc = new KubeConfig();
  if (configPath && existsSync(configPath)) {
    kc.loadFromFile(configPath);
    return kc;
  }
  if (process.env.KUBERNETES_SERVICE_HOST && process.env.KUBERNETES_SERVICE_PORT) {
    kc.loadFromCluster();
    return kc;
  }
  throw new Error(
    `no kubeconfig at ${configPath ?? '(EXECUTOR_KUBERNETES_CONFIG_PATH unset)'} and not running inside a cluster`,
  );
}
