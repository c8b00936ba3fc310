/**
 * A fresh PostgreSQL database per test file, created through the admin URL (TEST_DATABASE_URL) and
 * dropped (with its connections) at the end.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export interface FreshDatabase {
  name: string;
  /** The admin URL with the database replaced by the fresh one. */
  url: string;
  /** One query on a short-lived connection to the fresh database. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]>;
  drop(): Promise<void>;
}

/** Replaces the database of a postgres:// URL, keeping credentials and query (e.g. ?host=/socket). */
export function withDatabase(url: string, dbName: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^/?]*)(\/[^?]*)?/, `$1/${dbName}`);
}

/** Host and port a postgres:// URL connects to (defaults 127.0.0.1:5432). */
export function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || 5432) };
}

async function once<R extends pg.QueryResultRow>(url: string, sql: string, params?: unknown[]): Promise<R[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

export async function createFreshDatabase(
  adminUrl: string,
  prefix = 'executor_test',
): Promise<FreshDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await once(adminUrl, `CREATE DATABASE ${name}`);
  const url = withDatabase(adminUrl, name);
  return {
    name,
    url,
    query: (sql, params) => once(url, sql, params),
    drop: async () => {
      await once(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}
