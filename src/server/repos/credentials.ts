/**
 * A mirrored repository's credential: where the user name and password (or token) come from at
 * fetch time, never the secret itself. The secret is read from the server's environment or a file
 * for each fetch and handed to git as an `http.extraHeader` through GIT_CONFIG_* environment
 * variables: not in argv (visible to every user in `ps`), not in the mirror's config, not in any log,
 * API answer or error message. curl drops the header on a redirect to another host.
 *
 * Files are read only for entries of the repositories file (an operator's choice): a user-API
 * registration may name environment variables only, and never the server's own settings
 * (SERVER_ENV: tokens, database URL), so an admin token cannot be used to send those to a host.
 */
import { readFile } from 'node:fs/promises';
import { SERVER_ENV } from '../../config/server.js';
import type { ErrorDetail } from '../../lib/errors.js';
import type { RepositoryCredential } from '../../store/types.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const KEYS = ['username', 'usernameEnv', 'passwordEnv', 'passwordFile'] as const;
/** The user name sent with a token when none is given; GitHub, GitLab and Gitea accept any. */
export const TOKEN_USERNAME = 'x-access-token';

/** Variables a credential may not name: the server's own settings. */
const RESERVED_ENV: ReadonlySet<string> = new Set(Object.keys(SERVER_ENV));

export type CredentialCheck =
  | { ok: true; credential: RepositoryCredential | null }
  | { ok: false; problems: ErrorDetail[] };

/**
 * Validates a credential as the API or the repositories file gives it (undefined or null = none).
 * `allowFiles`: whether passwordFile may be used (the repositories file only).
 */
export function checkCredential(
  input: unknown,
  opts: { allowFiles: boolean; path: string },
): CredentialCheck {
  if (input === undefined || input === null) return { ok: true, credential: null };
  const problems: ErrorDetail[] = [];
  if (typeof input !== 'object' || Array.isArray(input)) {
    return { ok: false, problems: [{ path: opts.path, message: 'must be an object' }] };
  }
  const o = input as Record<string, unknown>;
  const out: RepositoryCredential = {};
  for (const k of Object.keys(o)) {
    if (!(KEYS as readonly string[]).includes(k)) {
      problems.push({ path: `${opts.path}.${k}`, message: `unknown field; use ${KEYS.join(', ')}` });
    }
  }
  for (const k of KEYS) {
    const v = o[k];
    if (v === undefined) continue;
    if (typeof v !== 'string' || v === '') {
      problems.push({ path: `${opts.path}.${k}`, message: 'must be a non-empty string' });
      continue;
    }
    if (k === 'usernameEnv' || k === 'passwordEnv') {
      if (!ENV_NAME.test(v))
        problems.push({ path: `${opts.path}.${k}`, message: 'must be an environment variable name' });
      else if (RESERVED_ENV.has(v))
        problems.push({
          path: `${opts.path}.${k}`,
          message: "must not name one of the server's own settings",
        });
    }
    if (k === 'passwordFile' && !opts.allowFiles) {
      problems.push({
        path: `${opts.path}.${k}`,
        message: 'files may be named only in the repositories file; use passwordEnv',
      });
    }
    if (k === 'passwordFile' && opts.allowFiles && !v.startsWith('/')) {
      problems.push({ path: `${opts.path}.${k}`, message: 'must be an absolute path' });
    }
    out[k] = v;
  }
  if (out.username !== undefined && out.usernameEnv !== undefined) {
    problems.push({ path: opts.path, message: 'give username or usernameEnv, not both' });
  }
  if (out.passwordEnv === undefined && out.passwordFile === undefined) {
    problems.push({
      path: opts.path,
      message: 'needs passwordEnv (or passwordFile in the repositories file)',
    });
  } else if (out.passwordEnv !== undefined && out.passwordFile !== undefined) {
    problems.push({ path: opts.path, message: 'give passwordEnv or passwordFile, not both' });
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, credential: out };
}

/** Thrown when a credential's source is missing at fetch time; the message names the source only. */
export class CredentialError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CredentialError';
  }
}

export interface ResolvedCredential {
  /** The git configuration pairs that send it (http.extraHeader). */
  config: [string, string][];
  /** The strings a message must never show (password, and the header value). */
  secrets: string[];
}

/** Reads the secret from its source now; `env` is the server's environment. */
export async function resolveCredential(
  c: RepositoryCredential | null,
  env: Record<string, string | undefined>,
): Promise<ResolvedCredential> {
  if (c === null) return { config: [], secrets: [] };
  const fromEnv = (name: string, what: string) => {
    const v = env[name];
    if (v === undefined || v === '') {
      throw new CredentialError(
        `the ${what} variable ${name} named by the credential is not set on the server`,
      );
    }
    return v;
  };
  const username = c.username ?? (c.usernameEnv ? fromEnv(c.usernameEnv, 'username') : TOKEN_USERNAME);
  let password: string;
  if (c.passwordEnv !== undefined) password = fromEnv(c.passwordEnv, 'password');
  else {
    try {
      password = (await readFile(c.passwordFile!, 'utf8')).replace(/\r?\n$/, '');
    } catch (e) {
      throw new CredentialError(
        `the password file named by the credential cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    if (password === '') throw new CredentialError('the password file named by the credential is empty');
  }
  const basic = Buffer.from(`${username}:${password}`).toString('base64');
  return {
    config: [['http.extraHeader', `Authorization: Basic ${basic}`]],
    secrets: [password, basic],
  };
}

/** `text` with every secret replaced. */
export function redactSecrets(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 3) out = out.split(s).join('[REDACTED]');
  return out;
}
