/**
 * `executor server`: parses the server configuration (flags over environment), opens and migrates
 * the Store, listens, and closes gracefully on SIGTERM/SIGINT (stop accepting, end long-polls,
 * finish in-flight requests, stop loops, close the Store), exiting 0.
 */
import { mkdirSync } from 'node:fs';
import type { Command } from 'commander';
import { loadServerConfig, SERVER_SETTINGS, ServerConfigError } from '../config/server.js';
import { systemClock } from '../lib/clock.js';
import { setHeapGrowingPercent, stopPretenuring } from '../lib/heap-growth.js';
import { createLogger } from '../lib/logger.js';

// The server and the Store drivers are imported when the command runs, not when the CLI registers
// its commands.
export function registerServerCommand(program: Command): void {
  const cmd = program
    .command('server')
    .description('Run the queue server: the /.executors API for executors and the /api/v1 user API');
  for (const s of SERVER_SETTINGS) {
    const def = s.default !== undefined && s.default !== '' ? ` (default ${s.default})` : '';
    // A true/false setting may be given as a bare flag (`--allow-local-repositories`).
    const value = s.default === 'false' ? '[value]' : '<value>';
    cmd.option(
      `--${s.flag} ${value}`,
      `${s.description.charAt(0).toUpperCase()}${s.description.slice(1)}; env ${s.env}${def}`,
    );
  }
  cmd.action(async (flags: Record<string, unknown>) => {
    const logger = createLogger();
    let config: ReturnType<typeof loadServerConfig>;
    try {
      config = loadServerConfig({ env: process.env, flags });
    } catch (e) {
      if (e instanceof ServerConfigError) {
        process.stderr.write(`${e.message}\n`);
        process.exitCode = 2;
        return;
      }
      throw e;
    }
    setHeapGrowingPercent(config.heapGrowingPercent);
    stopPretenuring();
    // A bad repositories file stops the start, every problem listed (it is re-read while running).
    if (config.repositoriesFile) {
      const { readRepositoryFile, RepositoryFileError } = await import('../server/repos/repository-file.js');
      try {
        readRepositoryFile(config.repositoriesFile, config.allowLocalRepositories);
      } catch (e) {
        if (e instanceof RepositoryFileError) {
          process.stderr.write(`${e.message}\n`);
          process.exitCode = 2;
          return;
        }
        throw e;
      }
    }
    const [{ createServer, listen }, { openStore }, { fdLimit }] = await Promise.all([
      import('../server/index.js'),
      import('../store/index.js'),
      import('../server/process-metrics.js'),
    ]);
    mkdirSync(config.dataDir, { recursive: true });
    mkdirSync(config.reposDir, { recursive: true });
    const store = openStore(config.databaseUrl);
    await store.migrate();
    const app = createServer({ store, config, clock: systemClock, logger });
    const tlsFiles = config.tlsCertFile
      ? { certFile: config.tlsCertFile, keyFile: config.tlsKeyFile }
      : undefined;
    let server: Awaited<ReturnType<typeof listen>>;
    try {
      server = await listen(app, config.listenHost, config.listenPort, tlsFiles);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (!tlsFiles || code === 'EADDRINUSE' || code === 'EACCES') throw e;
      // The certificate or key cannot be read, is not PEM, or the two do not match.
      process.stderr.write(
        `--tls-cert / --tls-key (EXECUTOR_SERVER_TLS_CERT / EXECUTOR_SERVER_TLS_KEY): ${(e as Error).message}\n`,
      );
      await app.close();
      await store.close();
      process.exitCode = 2;
      return;
    }
    app.startBackground();
    logger.info('queue server listening', {
      url: server.url,
      repos: config.reposDir,
      store: config.databaseUrl.startsWith('sqlite:') ? config.databaseUrl : 'postgres',
      // Each connected executor holds one or two connections: this bounds the fleet.
      maxFds: fdLimit(),
    });
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      logger.info('shutting down', { signal });
      try {
        await server.close();
        await store.close();
        process.exit(0);
      } catch (e) {
        logger.error('shutdown failed', { error: e });
        process.exit(1);
      }
    };
    // SIGHUP: new certificate files (a renewal) for new connections; open ones are kept.
    if (tlsFiles) {
      process.on('SIGHUP', () => {
        try {
          server.reloadTls();
          logger.info('TLS certificate reloaded', { cert: tlsFiles.certFile });
        } catch (e) {
          logger.error('TLS certificate reload failed; the previous certificate stays in use', { error: e });
        }
      });
    }
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });
}
