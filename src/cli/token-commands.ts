/**
 * `executor tokens create|list|revoke`: the server's scoped API tokens, through /api/v1/tokens
 * (which needs an admin token: the bootstrap EXECUTOR_SERVER_API_TOKEN or an admin-scoped one).
 * A new token's value is printed once, on stdout alone, so it can be captured; the server keeps
 * only its hash.
 */
import type { Command } from 'commander';
import { TOKEN_SCOPES } from '../protocol/user-api.js';
import { clientFrom, type GlobalOpts, runAction, UsageError, withGlobal } from './client-commands.js';
import { ago, paint, table } from './format.js';

const out = (s: string) => process.stdout.write(`${s}\n`);
const NOT_FOUND = '; list tokens with `executor tokens list`';

/** An expiry as the server's UTC time to the minute ("2026-02-01 12:00 UTC"), or "never". */
function expiry(iso: string | null): string {
  return iso === null ? 'never' : `${iso.slice(0, 16).replace('T', ' ')} UTC`;
}

export function registerTokenCommands(program: Command): void {
  const tokens = program
    .command('tokens')
    .description("Manage the server's scoped API tokens (read, submit, admin); needs an admin token");

  withGlobal(tokens.command('create').description('Create a token and print its value (shown once)'))
    .requiredOption('--name <name>', 'Unique name: letters, digits, ".", "_" or "-" (at most 64)')
    .requiredOption('--scope <scope>', `What it may do: ${TOKEN_SCOPES.join(', ')}`)
    .option('--expires <lifetime>', 'Expire after this long, such as 30d, 12h or 1d12h (default: never)')
    .action((opts: GlobalOpts & { name: string; scope: string; expires?: string }) =>
      runAction(async () => {
        if (!(TOKEN_SCOPES as readonly string[]).includes(opts.scope)) {
          throw new UsageError(`--scope must be one of ${TOKEN_SCOPES.join(', ')}, not "${opts.scope}"`);
        }
        const t = await clientFrom(opts).createToken({
          name: opts.name,
          scope: opts.scope,
          ...(opts.expires !== undefined ? { expires: opts.expires } : {}),
        });
        if (opts.json) {
          out(JSON.stringify(t));
          return 0;
        }
        out(t.token);
        process.stderr.write(
          `created token "${t.name}" (${t.scope}${t.expiresAt ? `, expires ${t.expiresAt}` : ', never expires'}); ` +
            'this is the only time its value is shown\n',
        );
        return 0;
      }, NOT_FOUND),
    );

  withGlobal(
    tokens.command('list').description('List tokens: name, scope, created, last used, expiry (never values)'),
  ).action((opts: GlobalOpts) =>
    runAction(async () => {
      const { tokens: list } = await clientFrom(opts).listTokens();
      if (opts.json) {
        out(JSON.stringify({ tokens: list }));
        return 0;
      }
      out(
        list.length === 0
          ? 'no tokens (the bootstrap EXECUTOR_SERVER_API_TOKEN is not listed)'
          : table(
              ['NAME', 'SCOPE', 'STATE', 'CREATED', 'LAST USED', 'EXPIRES'],
              list.map((t) => [
                t.name,
                t.scope,
                t.state === 'active' ? paint(t.state, 'green') : paint(t.state, 'red'),
                ago(t.createdAt),
                t.lastUsedAt === null ? 'never' : ago(t.lastUsedAt),
                t.state === 'revoked' ? `revoked ${ago(t.revokedAt)}` : expiry(t.expiresAt),
              ]),
            ),
      );
      return 0;
    }, NOT_FOUND),
  );

  withGlobal(
    tokens.command('revoke <name>').description('Revoke a token: refused from its next request on'),
  ).action((name: string, opts: GlobalOpts) =>
    runAction(async () => {
      const t = await clientFrom(opts).revokeToken(name);
      out(opts.json ? JSON.stringify(t) : `revoked token "${t.name}" (${t.scope})`);
      return 0;
    }, NOT_FOUND),
  );
}
