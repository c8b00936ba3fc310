/** Numbered migrations (migrations.ts), serialised across replicas by a transaction-scoped advisory lock. */
import type { Store } from '../types.js';
import type { PgContext } from './connection.js';
import { MIGRATION_LOCK_KEY } from './fragments.js';
import { POSTGRES_MIGRATIONS } from './migrations.js';

export function migrateQueries(c: PgContext): Pick<Store, 'migrate' | 'pendingMigrations'> {
  const { inTransaction, rows } = c;
  return {
    async pendingMigrations() {
      const [t] = await rows<{ present: boolean }>(
        "SELECT to_regclass('schema_migrations') IS NOT NULL AS present",
      );
      const applied = new Set(
        t?.present
          ? (await rows<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => r.version)
          : [],
      );
      return POSTGRES_MIGRATIONS.map((m) => m.version).filter((v) => !applied.has(v));
    },
    /** Serialised across replicas by a transaction-scoped advisory lock. */
    async migrate() {
      await inTransaction(async (c) => {
        await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [MIGRATION_LOCK_KEY]);
        await c.query(
          `CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
        );
        const applied = new Set(
          (await c.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map(
            (r) => r.version,
          ),
        );
        for (const m of POSTGRES_MIGRATIONS) {
          if (applied.has(m.version)) continue;
          await c.query(m.sql);
          await c.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
        }
      });
    },
  };
}
