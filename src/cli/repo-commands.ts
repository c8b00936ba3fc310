/**
 * `executor repos add|list|show|sync|remove`: the server's mirrored repositories, through
 * /api/v1/repositories. Adding and removing need an admin token, syncing a submit token, listing a
 * read token. A credential is named, never given: `--credential-env VAR` names a variable of the
 * server's environment holding the password or token, read by the server at each fetch.
 */
import type { Command } from 'commander';
import type { NewRepositoryBody, RepositoryView } from '../protocol/user-api.js';
import { clientFrom, type GlobalOpts, runAction, withGlobal } from './client-commands.js';
import { ago, humanDuration, paint, table } from './format.js';

const out = (s: string) => process.stdout.write(`${s}\n`);
const NOT_FOUND = '; list repositories with `executor repos list`';

function size(bytes: number | null): string {
  if (bytes === null) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

function state(s: RepositoryView['state']): string {
  return s === 'ready' ? paint(s, 'green') : s === 'failed' ? paint(s, 'red') : paint(s, 'yellow');
}

function show(r: RepositoryView): string {
  const cred = r.credential
    ? Object.entries(r.credential)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')
    : 'none';
  return [
    `name:            ${r.name}`,
    `url:             ${r.url}`,
    `credential:      ${cred}`,
    `source:          ${r.source === 'file' ? 'repositories file' : 'api'}`,
    `state:           ${state(r.state)}`,
    `default branch:  ${r.defaultBranch ?? '-'}`,
    `size on disk:    ${size(r.sizeBytes)}`,
    `last sync:       ${r.lastSyncAt === null ? 'never' : `${ago(r.lastSyncAt)} (took ${humanDuration(r.lastSyncDurationMs)})`}`,
    ...(r.lastError ? [`last error:      ${r.lastError}`] : []),
  ].join('\n');
}

export function registerRepoCommands(program: Command): void {
  const repos = program
    .command('repos')
    .description("Manage the server's mirrored repositories (fetched from a Git host, kept current)");

  withGlobal(
    repos.command('add <name> <url>').description('Register a repository and fetch its first mirror'),
  )
    .option(
      '--credential-env <var>',
      "Name of a variable in the server's environment holding the password or token (read by the server at each fetch)",
    )
    .option('--username <name>', 'User name sent with it (default x-access-token, which token hosts accept)')
    .option('--username-env <var>', "Name of a variable in the server's environment holding the user name")
    .action(
      (
        name: string,
        url: string,
        opts: GlobalOpts & { credentialEnv?: string; username?: string; usernameEnv?: string },
      ) =>
        runAction(async () => {
          const body: NewRepositoryBody = { name, url };
          if (
            opts.credentialEnv !== undefined ||
            opts.username !== undefined ||
            opts.usernameEnv !== undefined
          ) {
            body.credential = {
              ...(opts.username !== undefined ? { username: opts.username } : {}),
              ...(opts.usernameEnv !== undefined ? { usernameEnv: opts.usernameEnv } : {}),
              ...(opts.credentialEnv !== undefined ? { passwordEnv: opts.credentialEnv } : {}),
            };
          }
          const r = await clientFrom(opts).addRepository(body);
          out(opts.json ? JSON.stringify(r) : show(r));
          return 0;
        }, NOT_FOUND),
    );

  withGlobal(repos.command('list').description('List repositories: state, last sync, size, error')).action(
    (opts: GlobalOpts) =>
      runAction(async () => {
        const { repositories } = await clientFrom(opts).listRepositories();
        if (opts.json) {
          out(JSON.stringify({ repositories }));
          return 0;
        }
        out(
          repositories.length === 0
            ? 'no repositories registered (add one with `executor repos add NAME URL`)'
            : table(
                ['NAME', 'STATE', 'LAST SYNC', 'SIZE', 'URL', 'ERROR'],
                repositories.map((r) => [
                  r.name,
                  state(r.state),
                  r.lastSyncAt === null ? 'never' : ago(r.lastSyncAt),
                  size(r.sizeBytes),
                  r.url,
                  r.lastError ?? '',
                ]),
              ),
        );
        return 0;
      }, NOT_FOUND),
  );

  withGlobal(repos.command('show <name>').description('Show a repository and its last sync')).action(
    (name: string, opts: GlobalOpts) =>
      runAction(async () => {
        const r = await clientFrom(opts).getRepository(name);
        out(opts.json ? JSON.stringify(r) : show(r));
        return 0;
      }, NOT_FOUND),
  );

  withGlobal(repos.command('sync <name>').description('Fetch a repository from its URL now')).action(
    (name: string, opts: GlobalOpts) =>
      runAction(async () => {
        const r = await clientFrom(opts).syncRepository(name);
        out(opts.json ? JSON.stringify(r) : show(r));
        return 0;
      }, NOT_FOUND),
  );

  withGlobal(
    repos.command('remove <name>').description('Unregister a repository and delete its mirror'),
  ).action((name: string, opts: GlobalOpts) =>
    runAction(async () => {
      await clientFrom(opts).removeRepository(name);
      out(opts.json ? JSON.stringify({ removed: name }) : `removed repository "${name}"`);
      return 0;
    }, NOT_FOUND),
  );
}
