/**
 * User-API access from the page. The API token is asked for once and kept in sessionStorage (gone
 * when the tab closes). Every request carries `X-Executor-Dashboard: 1`, which the server's
 * loopback rule requires (a cross-origin page cannot send it without a preflight).
 *
 * Log follows use fetch streaming instead of EventSource, because EventSource cannot send the
 * Authorization header and a token in a URL would land in logs and history.
 */
const TOKEN_KEY = 'executor.apiToken';

export class UnauthenticatedError extends Error {}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}
export function setToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { 'x-executor-dashboard': '1', ...extra };
  const t = getToken();
  if (t) h.authorization = `Bearer ${t}`;
  return h;
}

async function failure(res: Response): Promise<never> {
  if (res.status === 401) throw new UnauthenticatedError('The API token is missing or wrong.');
  let code = 'HTTP';
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    if (body.error?.message) message = body.error.message;
    if (body.error?.code) code = body.error.code;
  } catch {
    // not JSON: keep the status line
  }
  throw new ApiError(res.status, code, message);
}

export async function apiGet<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, { headers: headers(), signal });
  if (!res.ok) await failure(res);
  return (await res.json()) as T;
}

export async function apiPost<T>(path: string): Promise<T> {
  const res = await fetch(path, { method: 'POST', headers: headers() });
  if (!res.ok) await failure(res);
  return (await res.json()) as T;
}

export interface SseEvent {
  event: string;
  data: string;
}

/**
 * Reads a server-sent-event stream with fetch; calls onEvent per event until the stream ends or
 * `signal` aborts. Resolves when the stream ends.
 */
export async function followStream(
  path: string,
  onEvent: (e: SseEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  const res = await fetch(path, { headers: headers({ accept: 'text/event-stream' }), signal });
  if (!res.ok) await failure(res);
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let cut = buf.indexOf('\n\n');
    while (cut >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
      }
      if (data.length > 0) onEvent({ event, data: data.join('\n') });
      cut = buf.indexOf('\n\n');
    }
  }
}

export interface Job {
  id: number;
  queue: string;
  state: string;
  attempts: number;
  maxAttempts: number;
  numFailures: number;
  numResets: number;
  cancelRequested: boolean;
  failureMessage: string | null;
  priority: number;
  timeoutMs: number;
  repositoryName: string | null;
  commit: string | null;
  executor: string | null;
  createdAt: string;
  queuedAt: string;
  processAfter: string | null;
  startedAt: string | null;
  lastHeartbeatAt: string | null;
  finishedAt: string | null;
  spec: unknown;
}

export interface LogEntry {
  attempt: number;
  entryId: number;
  key: string;
  command: string[] | null;
  startTime: string;
  exitCode: number | null;
  durationMs: number | null;
  outLength: number;
  truncated: boolean;
  out?: string;
}

export interface Executor {
  name: string;
  hostname: string;
  queueName: string | null;
  queueNames: string[] | null;
  os: string;
  architecture: string;
  dockerVersion: string;
  executorVersion: string;
  gitVersion: string;
  igniteVersion: string;
  srcCliVersion: string;
  firstSeenAt: string;
  lastSeenAt: string;
  active: boolean;
  compatibility: 'UP_TO_DATE' | 'OUTDATED' | 'VERSION_AHEAD' | null;
}

export interface QueueRow {
  queue: string;
  depth: number;
  processing: number;
  oldestQueuedAt: string | null;
  oldestAgeSeconds: number | null;
}

export interface QueueSample {
  at: number;
  depth: number;
  processing: number;
  oldestAgeSeconds: number | null;
  started: number;
  finished: number;
  dispatchP50Ms: number | null;
}
