/**
 * The error catalogue. Each error a user can see has a stable code, an HTTP status and a message that
 * says what to do. Tests assert on codes. Anything not in the catalogue becomes INTERNAL (500) with a
 * request id; its original message is logged, never sent.
 */
export const ERRORS = {
  BAD_REQUEST: { status: 400, message: 'The request is malformed.' },
  VALIDATION: { status: 400, message: 'The request has invalid fields.' },
  UNAUTHENTICATED: { status: 401, message: 'Missing or invalid credentials.' },
  FORBIDDEN: { status: 403, message: 'These credentials do not allow this.' },
  NOT_FOUND: { status: 404, message: 'No such resource.' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'This method is not allowed on this route.' },
  CONFLICT: { status: 409, message: 'The resource is not in a state that allows this.' },
  REQUEST_TIMEOUT: { status: 408, message: 'The request body did not arrive in time; send it again.' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is too large.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Send the body as application/json.' },
  TOO_MANY_FOLLOWERS: {
    status: 429,
    message: 'Too many clients follow this job; retry later, or read its log without follow.',
  },
  RATE_LIMITED: {
    status: 429,
    message: 'Too many failed authentication attempts; retry after the time in Retry-After.',
  },
  UNAVAILABLE: { status: 503, message: 'The server is temporarily unavailable; retry shortly.' },
  OVERLOADED: { status: 503, message: 'The server is at capacity; retry after the time in Retry-After.' },
  INTERNAL: { status: 500, message: 'Internal error.' },
  CONFIG: { status: 500, message: 'Invalid configuration.' },
  UNKNOWN_REVISION: { status: 400, message: 'The commit or ref does not exist in the repository.' },
  UNKNOWN_REPOSITORY: { status: 400, message: 'The repository is not served by this server.' },
  REPOSITORY_UNREACHABLE: {
    status: 502,
    message: "The repository's host cannot be reached; check the URL and the network, then sync again.",
  },
  REPOSITORY_AUTH_FAILED: {
    status: 502,
    message: "The repository's host refused the credential; fix it on the server, then sync again.",
  },
  REPOSITORY_FETCH_FAILED: {
    status: 502,
    message: 'The repository could not be fetched from its URL; see the message, then sync again.',
  },
  REPOSITORY_TOO_LARGE: {
    status: 400,
    message: 'The repository is larger than EXECUTOR_SERVER_REPO_MAX_SIZE allows.',
  },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export interface ErrorDetail {
  path: string;
  message: string;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details?: ErrorDetail[];
  /** Sent as Retry-After (seconds) with the error: when a 429 or 503 is worth retrying. */
  readonly retryAfterSeconds?: number;

  constructor(
    code: ErrorCode,
    message?: string,
    opts: { details?: ErrorDetail[]; cause?: unknown; retryAfterSeconds?: number } = {},
  ) {
    super(message ?? ERRORS[code].message, { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.details = opts.details;
    this.retryAfterSeconds = opts.retryAfterSeconds;
  }
}

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}

/** Error message of anything thrown, for logs. */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
