/**
 * Opens the Store a URL names: `postgres://` or `postgresql://` -> PostgreSQL; anything else is a
 * SQLite database file path, optionally prefixed `sqlite:` (`sqlite::memory:` and `:memory:` work).
 * The caller runs `migrate()`.
 */
import { createPostgresStore } from './postgres/postgres-store.js';
import { createSqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './types.js';

export function openStore(url: string): Store {
  if (/^postgres(ql)?:\/\//i.test(url)) return createPostgresStore({ connectionString: url });
  const path = url.replace(/^sqlite:(\/\/)?/i, '');
  if (!path) throw new Error('store URL names no SQLite file');
  return createSqliteStore({ path });
}
