/** Mirrored repositories as the Store keeps them (table repositories; see server/repos). */

/**
 * Where a mirrored repository's credential comes from at fetch time: names of the server's
 * environment variables or files, never the secret itself (the store never holds a secret).
 * `username` is a literal (not secret); without one, a password or token goes with the user
 * name `x-access-token`, which the common hosts accept for tokens.
 */
export interface RepositoryCredential {
  username?: string;
  usernameEnv?: string;
  passwordEnv?: string;
  passwordFile?: string;
}

/** `new` until its first sync ends; `syncing` while a fetch runs; `ready` or `failed` after. */
export type RepositoryState = 'new' | 'syncing' | 'ready' | 'failed';
/** Who registered it: the user API (or CLI), or the repositories file. */
export type RepositorySource = 'api' | 'file';

export interface NewRepository {
  name: string;
  /** Without credentials (refused at registration when it has any). */
  url: string;
  credential: RepositoryCredential | null;
  source: RepositorySource;
}

export interface RepositorySync {
  state: RepositoryState;
  lastSyncAt?: number;
  lastSyncDurationMs?: number;
  /** Set on failure; a success clears it. */
  lastError?: string | null;
  sizeBytes?: number;
  defaultBranch?: string | null;
}

export interface RepositoryRecord extends NewRepository {
  state: RepositoryState;
  createdAt: number;
  lastSyncAt: number | null;
  lastSyncDurationMs: number | null;
  lastError: string | null;
  sizeBytes: number | null;
  defaultBranch: string | null;
}
