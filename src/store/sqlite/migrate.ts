/**
 * Numbered migrations (migrations.ts), applied in one IMMEDIATE transaction: a second process
 * migrating the same file waits, then finds them applied. Idempotent. Then, once per file, the
 * switch to incremental auto-vacuum (a VACUUM, outside any transaction).
 */
import type { Store } from '../types.js';
import type { SqliteContext } from './connection.js';
import { SQLITE_MIGRATIONS } from './migrations.js';

export function migrateQueries(c: SqliteContext): Pick<Store, 'migrate' | 'pendingMigrations'> {
  const { db, tx } = c;
  const migrateTx = tx(() => {
    db.exec(
      `CREATE TABLE IF NOT EXISTS schema_migrations (
         version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
    );
    const applied = new Set(
      (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map(
        (r) => r.version,
      ),
    );
    for (const m of SQLITE_MIGRATIONS) {
      if (applied.has(m.version)) continue;
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        m.version,
        m.name,
        Date.now(),
      );
    }
  });

  return {
    async pendingMigrations() {
      const table = db
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
        .get();
      const applied = new Set(
        table
          ? (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map(
              (r) => r.version,
            )
          : [],
      );
      return SQLITE_MIGRATIONS.map((m) => m.version).filter((v) => !applied.has(v));
    },
    async migrate() {
      migrateTx();
      // A file made before auto_vacuum was set keeps its mode until a VACUUM rewrites it: done
      // once, here, at start-up (it takes about as long as copying the file; see docs/operating.md).
      if (db.name !== ':memory:' && db.pragma('auto_vacuum', { simple: true }) !== 2) {
        db.pragma('auto_vacuum = INCREMENTAL');
        db.exec('VACUUM');
      }
    },
  };
}
