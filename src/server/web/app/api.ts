/**
 * User-API access from the page. The API token is asked for once and kept in sessionStorage (gone
 * when the tab closes). Every request carries `X-Executor-Dashboard: 1`, which the server's
 * loopback rule requires (a cross-origin page cannot send it without a preflight).
 *
 * Who is signed in (name and scope, from /api/v1/whoami) is kept beside the token, so pages can
 * hide what the scope cannot do; a 401 forgets both (main.ts shows the sign-in again).
 *
 * Log follows use fetch streaming instead of EventSource, because EventSource cannot send the
 * Authorization header and a token in a URL would land in logs and history.
 */
import type { SpecProblem } from '../../../protocol/job-spec.js';
import {
  type ErrorBody,
  type LogStreamEvent,
  readLogStreamEvents,
  scopeAllows,
  type TokenScope,
  type WhoamiView,
} from '../../../protocol/user-api.js';

const TOKEN_KEY = 'executor.apiToken';

export class UnauthenticatedError extends Error {}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Per-field problems (a refused job spec names each field). */
    readonly details: SpecProblem[] = [],
  ) {
    super(message);
  }
}

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}
export function setToken(token: string | null): void {
  signedIn = null;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

let signedIn: WhoamiView | null = null;

/** Who the current credentials are; asks the server once per token. */
export async function loadWhoami(signal?: AbortSignal): Promise<WhoamiView> {
  if (!signedIn) signedIn = await apiGet<WhoamiView>('/api/v1/whoami', signal);
  return signedIn;
}

/** True when the signed-in principal's scope covers `needs` (false before whoami answered). */
export function may(needs: TokenScope): boolean {
  return signedIn !== null && scopeAllows(signedIn.scope, needs);
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { 'x-executor-dashboard': '1', ...extra };
  const t = getToken();
  if (t) h.authorization = `Bearer ${t}`;
  return h;
}

async function failure(res: Response): Promise<never> {
  if (res.status === 401) {
    let message = 'The API token is missing or wrong.';
    try {
      message = ((await res.json()) as Partial<ErrorBody>).error?.message ?? message;
    } catch {
      // not JSON: keep the generic message
    }
    throw new UnauthenticatedError(message);
  }
  let code = 'HTTP';
  let message = `${res.status} ${res.statusText}`;
  let details: SpecProblem[] = [];
  try {
    const body = (await res.json()) as Partial<ErrorBody>;
    if (body.error?.message) message = body.error.message;
    if (body.error?.code) code = body.error.code;
    if (Array.isArray(body.error?.details)) details = body.error.details;
  } catch {
    // not JSON: keep the status line
  }
  throw new ApiError(res.status, code, message, details);
}

export async function apiGet<T>(path: string, signal?: AbortSignal): Promise<T> {
  const res = await fetch(path, { headers: headers(), signal });
  if (!res.ok) await failure(res);
  return (await res.json()) as T;
}

/** POSTs `body` as JSON when given. The body is not kept: it may hold a job's secret values. */
export async function apiPost<T>(path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method: 'POST',
    headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) await failure(res);
  return (await res.json()) as T;
}

/**
 * Follows a log stream with fetch; calls onEvent per event until the stream ends or `signal`
 * aborts. Resolves when the stream ends.
 */
export async function followStream(
  path: string,
  onEvent: (e: LogStreamEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  const res = await fetch(path, { headers: headers({ accept: 'text/event-stream' }), signal });
  if (!res.ok) await failure(res);
  if (!res.body) return;
  for await (const e of readLogStreamEvents(res.body)) onEvent(e);
}
