/**
 * Backup and restore of a server's data directory (`executor backup`, `executor restore`).
 *
 * SQLite: the database is copied with `VACUUM INTO` on a connection of its own. In WAL mode that is
 * one read transaction: it sees one consistent snapshot (every transaction committed before it
 * began, nothing after) and never blocks the server's writers, so the copy is taken while the
 * server runs and writes. The copy is checked with `PRAGMA integrity_check`, then packed with the
 * rest of the data directory (mirrored repositories) into one gzipped tar file by the system's
 * `tar`. Job files live in the database (in each job's spec), so they are in the copy.
 *
 * Restore unpacks into an empty (or missing) directory only and checks the database again; it never
 * writes over a directory that holds anything, least of all one a server is using.
 *
 * PostgreSQL is backed up with its own tool, pg_dump; `pgDumpAdvice` says how.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { AppError } from '../lib/errors.js';

const run = promisify(execFile);

/** The database file inside a data directory, and its WAL companions (never archived as they are). */
export const DB_FILE = 'executor.db';
const DB_COMPANIONS = [DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`, `${DB_FILE}-journal`];

export interface BackupResult {
  out: string;
  bytes: number;
  jobs: number;
}

/** What integrity_check answers on a sound database. */
const checkDatabase = (file: string): { jobs: number } => {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const problems = (db.pragma('integrity_check') as { integrity_check: string }[]).map(
      (r) => r.integrity_check,
    );
    if (problems.length !== 1 || problems[0] !== 'ok')
      throw new AppError('INTERNAL', `integrity_check of ${file} failed: ${problems.slice(0, 5).join('; ')}`);
    const { n } = db.prepare('SELECT count(*) AS n FROM jobs').get() as { n: number };
    return { jobs: n };
  } finally {
    db.close();
  }
};

const inside = (dir: string, p: string) => {
  const rel = path.relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

/**
 * Writes `out` (a .tar.gz): the database as of one moment, then the data directory's other files.
 * `out` is written under a temporary name and renamed when complete, so a file named `out` is
 * always a whole backup.
 */
export async function backupDataDir(dataDir: string, out: string): Promise<BackupResult> {
  const data = path.resolve(dataDir);
  const target = path.resolve(out);
  const dbPath = path.join(data, DB_FILE);
  if (!existsSync(dbPath))
    throw new AppError('VALIDATION', `${dbPath} does not exist: --data must name a server's data directory.`);
  if (inside(data, target))
    throw new AppError(
      'VALIDATION',
      `--out ${target} is inside the data directory; write the backup elsewhere.`,
    );
  mkdirSync(path.dirname(target), { recursive: true });
  const stage = mkdtempSync(path.join(path.dirname(target), '.executor-backup-'));
  const partial = `${target}.partial`;
  try {
    const snapshot = path.join(stage, DB_FILE);
    const src = new Database(dbPath, { fileMustExist: true });
    try {
      src.pragma('busy_timeout = 10000');
      src.prepare('VACUUM INTO ?').run(snapshot);
    } finally {
      src.close();
    }
    const { jobs } = checkDatabase(snapshot);
    const others = readdirSync(data).filter((f) => !DB_COMPANIONS.includes(f));
    await run('tar', [
      '-czf',
      partial,
      '-C',
      stage,
      DB_FILE,
      ...(others.length > 0 ? ['-C', data, '--', ...others] : []),
    ]);
    renameSync(partial, target);
    return { out: target, bytes: statSync(target).size, jobs };
  } finally {
    rmSync(stage, { recursive: true, force: true });
    rmSync(partial, { force: true });
  }
}

/** Unpacks a backup into `dataDir`, which must be missing or empty; checks the database. */
export async function restoreDataDir(dataDir: string, from: string): Promise<{ jobs: number }> {
  const data = path.resolve(dataDir);
  const file = path.resolve(from);
  if (!existsSync(file)) throw new AppError('VALIDATION', `--from ${file} does not exist.`);
  if (existsSync(data)) {
    const present = readdirSync(data);
    if (present.length > 0) {
      const live = present.some((f) => f === `${DB_FILE}-wal` || f === `${DB_FILE}-shm`);
      throw new AppError(
        'CONFLICT',
        `${data} is not empty (${present.slice(0, 5).join(', ')}${present.length > 5 ? ', ...' : ''})` +
          `${live ? '; its database looks in use by a server' : ''}. ` +
          'Restore refuses to overwrite a data directory: stop the server and restore into an empty ' +
          'directory, then point the server at it (--data / EXECUTOR_SERVER_DATA).',
      );
    }
  }
  mkdirSync(data, { recursive: true });
  try {
    await run('tar', ['-xzf', file, '-C', data, '--no-same-owner']);
    return checkDatabase(path.join(data, DB_FILE));
  } catch (e) {
    // The directory was empty: leave it so again, not half restored.
    for (const f of readdirSync(data)) rmSync(path.join(data, f), { recursive: true, force: true });
    throw e;
  }
}

/** A PostgreSQL URL with its password replaced, fit for printing. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = 'PASSWORD';
    return u.toString();
  } catch {
    return 'postgres://USER:PASSWORD@HOST:5432/DATABASE';
  }
}

/** What `executor backup` / `restore` print for a PostgreSQL store. */
export function pgDumpAdvice(kind: 'backup' | 'restore', databaseUrl: string, file: string): string {
  const url = redactUrl(databaseUrl);
  const quoted = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  return kind === 'backup'
    ? 'The store is PostgreSQL: back it up with pg_dump (online, consistent), not with this command:\n' +
        `  pg_dump --format=custom --file=${quoted(file)} ${quoted(url)}\n` +
        '(PGPASSWORD or ~/.pgpass supplies the password.) Mirrored repositories in the data directory can be fetched again.\n'
    : 'The store is PostgreSQL: restore it with pg_restore into an empty database, then start the servers:\n' +
        `  pg_restore --no-owner --dbname=${quoted(url)} ${quoted(file)}\n` +
        '(PGPASSWORD or ~/.pgpass supplies the password.)\n';
}
