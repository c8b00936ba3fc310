/**
 * The dashboard, served by the queue server itself: `/` is the page, `/assets/app.js` and
 * `/assets/app.css` its only assets (no CDN; works offline). The page talks to the user API with
 * the API token, or without one under the loopback rule (see loopback-access.ts).
 *
 * Also the two history routes the charts read, `GET /api/v1/queues/history` and
 * `GET /api/v1/executors/history` (user-API auth, read scope).
 *
 * Assets: after `npm run build` they are files in dist/server/web/static/ (app.js bundled there by
 * scripts/postbuild.mjs); in a single executable, SEA assets `dashboard/<name>`. Running from sources there is no app.js next to this file, so the client
 * is bundled from app/main.ts on the first request and kept in memory.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { RouteDeps } from '../deps.js';
import { type RouteContext, type Router, sendJson, sendText } from '../http.js';
import type { QueueHistory } from '../queue-history.js';
import { addUserRoute } from '../user-api/scopes.js';
import { bundleClient } from './bundle.js';

const STATIC = new URL('./static/', import.meta.url);

/**
 * The page loads only same-origin script and style; inline style attributes set through the DOM
 * (timeline bar widths, 24-bit ANSI colours) are allowed by CSSOM, not by 'unsafe-inline'.
 */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/**
 * Inside a single executable (`npm run package`) there are no files next to the code: the
 * packaging step embeds the three files as SEA assets named `dashboard/<name>`.
 */
async function seaAsset(name: string): Promise<Buffer | undefined> {
  try {
    const sea = await import('node:sea');
    if (!sea.isSea()) return undefined;
    return Buffer.from(sea.getAsset(`dashboard/${name}`));
  } catch {
    return undefined;
  }
}

export function registerWebRoutes(router: Router, deps: RouteDeps, history: QueueHistory): void {
  const cache = new Map<string, Promise<Buffer>>();
  const load = (name: string): Promise<Buffer> => {
    let p = cache.get(name);
    if (!p) {
      p = (async () => (await seaAsset(name)) ?? readFile(new URL(name, STATIC)))().catch(
        async (e: NodeJS.ErrnoException) => {
          if (name !== 'app.js' || e.code !== 'ENOENT') throw e;
          const entry = fileURLToPath(new URL('./app/main.ts', import.meta.url));
          return Buffer.from(await bundleClient(entry), 'utf8');
        },
      );
      // A failed load is retried on the next request rather than cached.
      p.catch(() => cache.delete(name));
      cache.set(name, p);
    }
    return p;
  };

  const serve = async (ctx: RouteContext, name: string) => {
    let body: Buffer;
    try {
      body = await load(name);
    } catch (e) {
      deps.logger.error('dashboard asset unavailable', { asset: name, error: e });
      sendText(ctx.res, 500, `dashboard asset ${name} unavailable (request id ${ctx.requestId})`);
      return;
    }
    ctx.res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': TYPES[name]!,
      'content-length': String(body.length),
      // The page is tiny and its assets change with the server version: always revalidate.
      'cache-control': 'no-cache',
    });
    ctx.res.end(ctx.req.method === 'HEAD' ? undefined : body);
  };

  router.add(['GET', 'HEAD'], '/', (ctx) => serve(ctx, 'index.html'), 'dashboard');
  router.add(
    ['GET', 'HEAD'],
    '/assets/:name',
    (ctx) => {
      const name = ctx.params.name!;
      if (name !== 'app.js' && name !== 'app.css') {
        sendText(ctx.res, 404, '404 page not found\n');
        return;
      }
      return serve(ctx, name);
    },
    'dashboard assets',
  );

  addUserRoute(router, deps, 'GET /api/v1/queues/history', async (ctx) => {
    sendJson(ctx.res, 200, { intervalMs: history.intervalMs, queues: history.queues() });
  });
  addUserRoute(router, deps, 'GET /api/v1/executors/history', async (ctx) => {
    // ?after=&through=: the executors of one page of GET /api/v1/executors (names in between).
    const q = ctx.url.searchParams;
    const range = { after: q.get('after') || undefined, through: q.get('through') || undefined };
    const ranged = range.after !== undefined || range.through !== undefined;
    sendJson(ctx.res, 200, {
      intervalMs: history.intervalMs,
      executors: history.executors(ranged ? range : undefined),
    });
  });
}
