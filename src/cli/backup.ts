/**
 * `executor backup --data DIR --out FILE` and `executor restore --data DIR --from FILE`: an online
 * copy of a SQLite server's data directory as one file, and its restore into an empty directory
 * (the work is in server/backup.ts). With a PostgreSQL store (--database-url / DATABASE_URL) both
 * print the pg_dump / pg_restore command instead and exit 2: PostgreSQL has its own tools.
 */
import type { Command } from 'commander';
import { errorMessage, isAppError } from '../lib/errors.js';

interface Opts {
  data?: string;
  databaseUrl?: string;
}

const DEFAULT_DATA = './.executor-data';
const isPostgres = (url: string | undefined): url is string =>
  url !== undefined && /^postgres(ql)?:\/\//i.test(url);

function common(cmd: Command): Command {
  return cmd
    .option('--data <dir>', `Data directory; env EXECUTOR_SERVER_DATA (default ${DEFAULT_DATA})`)
    .option('--database-url <url>', 'PostgreSQL URL of the store, if it is not SQLite; env DATABASE_URL');
}

async function act(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    process.stderr.write(`error: ${errorMessage(e)}\n`);
    process.exitCode = isAppError(e) && e.status < 500 ? 2 : 1;
  }
}

export function registerBackupCommands(program: Command): void {
  common(
    program
      .command('backup')
      .description(
        "Copy a running or stopped SQLite server's data directory (database and repositories) into one .tar.gz file",
      ),
  )
    .requiredOption('--out <file>', 'The backup file to write (outside the data directory)')
    .action((opts: Opts & { out: string }) =>
      act(async () => {
        const url = opts.databaseUrl ?? process.env.DATABASE_URL;
        const { backupDataDir, pgDumpAdvice } = await import('../server/backup.js');
        if (isPostgres(url)) {
          process.stdout.write(pgDumpAdvice('backup', url, opts.out));
          process.exitCode = 2;
          return;
        }
        const data = opts.data ?? process.env.EXECUTOR_SERVER_DATA ?? DEFAULT_DATA;
        const r = await backupDataDir(data, opts.out);
        process.stdout.write(
          `backed up ${r.jobs} jobs to ${r.out} (${r.bytes} bytes); the database copy passed integrity_check\n`,
        );
      }),
    );

  common(
    program
      .command('restore')
      .description('Restore a backup made by `executor backup` into an empty data directory'),
  )
    .requiredOption('--from <file>', 'The backup file')
    .action((opts: Opts & { from: string }) =>
      act(async () => {
        const url = opts.databaseUrl ?? process.env.DATABASE_URL;
        const { pgDumpAdvice, restoreDataDir } = await import('../server/backup.js');
        if (isPostgres(url)) {
          process.stdout.write(pgDumpAdvice('restore', url, opts.from));
          process.exitCode = 2;
          return;
        }
        const data = opts.data ?? process.env.EXECUTOR_SERVER_DATA ?? DEFAULT_DATA;
        const r = await restoreDataDir(data, opts.from);
        process.stdout.write(
          `restored ${r.jobs} jobs into ${data}; the database passed integrity_check. Start the server with --data ${data}\n`,
        );
      }),
    );
}
