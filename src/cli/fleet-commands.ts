/**
 * Client commands about the fleet: `executors` (all of them, or a page by name with --limit and
 * --after) and `queues`. Human output by default, `--json` for scripts.
 */
import type { Command } from 'commander';
import { EXECUTOR_PAGE_MAX } from '../protocol/user-api.js';
import {
  clientFrom,
  type GlobalOpts,
  out,
  runAction,
  str,
  UsageError,
  withGlobal,
} from './client-commands.js';
import { ago, humanDuration, paint, table } from './format.js';

export function registerFleetCommands(program: Command): void {
  withGlobal(
    program.command('executors').description('List executors with versions and compatibility, by name'),
  )
    .option('--limit <n>', `At most this many (1 to ${EXECUTOR_PAGE_MAX}); all of them without it`)
    .option('--after <name>', 'Executors named after this one (the next page; needs --limit)')
    .action((opts: GlobalOpts & { limit?: string; after?: string }) =>
      runAction(async () => {
        const limit = opts.limit === undefined ? undefined : Number(opts.limit);
        if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= EXECUTOR_PAGE_MAX))
          throw new UsageError(
            `--limit must be an integer from 1 to ${EXECUTOR_PAGE_MAX}, not "${opts.limit}"`,
          );
        if (opts.after !== undefined && limit === undefined) throw new UsageError('--after needs --limit');
        const res = (await clientFrom(opts).executors({ limit, after: opts.after })) as
          | {
              executors?: Record<string, unknown>[];
              total?: number;
              active?: number;
              nextAfter?: string | null;
            }
          | Record<string, unknown>[];
        const list = Array.isArray(res) ? res : (res.executors ?? []);
        const next = Array.isArray(res) ? null : (res.nextAfter ?? null);
        if (opts.json) out(JSON.stringify(res));
        else {
          out(
            list.length === 0
              ? 'no executors have been seen'
              : table(
                  ['NAME', 'QUEUES', 'VERSION', 'COMPATIBILITY', 'ACTIVE', 'LAST SEEN'],
                  list.map((e) => [
                    str(e.name ?? e.hostname),
                    str((e.queueNames as string[] | null)?.join(',') ?? e.queueName),
                    str(e.executorVersion),
                    str(e.compatibility),
                    e.active ? paint('yes', 'green') : paint('no', 'gray'),
                    ago(e.lastSeenAt as string),
                  ]),
                ),
          );
          if (next !== null && !Array.isArray(res))
            out(paint(`${res.total} in all, ${res.active} active; next page: --after ${next}`, 'gray'));
        }
        return 0;
      }),
    );

  withGlobal(
    program
      .command('queues')
      .description('Queue depth, processing, oldest waiting job and the active executors polling each'),
  ).action((opts: GlobalOpts) =>
    runAction(async () => {
      const res = await clientFrom(opts).queues();
      if (opts.json) out(JSON.stringify(res));
      else
        out(
          res.queues.length === 0
            ? 'no queues yet'
            : table(
                ['QUEUE', 'QUEUED', 'PROCESSING', 'OLDEST WAITING', 'POLLED BY'],
                res.queues.map((q) => [
                  q.queue,
                  String(q.depth),
                  String(q.processing),
                  q.oldestAgeSeconds === null ? '-' : humanDuration(q.oldestAgeSeconds * 1000),
                  q.pollers === 0 && q.depth > 0 ? paint('no active executor', 'yellow') : String(q.pollers),
                ]),
              ),
        );
      return 0;
    }),
  );
}
