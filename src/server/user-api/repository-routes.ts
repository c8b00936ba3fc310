/**
 * `/api/v1/repositories`: mirrored repositories (server/repos). Register (admin: the server then
 * fetches from the URL with a credential of its own environment), list and show (read), sync now
 * (submit), remove (admin). A repository name has slashes, so it is the rest of the path.
 */
import { AppError } from '../../lib/errors.js';
import type { RepositoryListView, RepositoryView } from '../../protocol/user-api.js';
import type { RepositoryRecord } from '../../store/types.js';
import type { RouteDeps } from '../deps.js';
import { type RouteContext, type Router, sendJson } from '../http.js';
import { addUserRoute } from './scopes.js';
import { readJson } from './wrap.js';

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

export function repositoryView(r: RepositoryRecord): RepositoryView {
  return {
    name: r.name,
    url: r.url,
    credential: r.credential,
    source: r.source,
    state: r.state,
    createdAt: new Date(r.createdAt).toISOString(),
    lastSyncAt: iso(r.lastSyncAt),
    lastSyncDurationMs: r.lastSyncDurationMs,
    lastError: r.lastError,
    sizeBytes: r.sizeBytes,
    defaultBranch: r.defaultBranch,
  };
}

function nameOf(ctx: RouteContext): string {
  const name = ctx.params.name;
  if (!name) throw new AppError('NOT_FOUND', 'No such repository.');
  return name;
}

export function registerRepositoryRoutes(router: Router, deps: RouteDeps): void {
  const { repos } = deps;

  addUserRoute(router, deps, 'GET /api/v1/repositories', async (ctx) => {
    const list = await repos.list();
    sendJson(ctx.res, 200, { repositories: list.map(repositoryView) } satisfies RepositoryListView);
  });

  addUserRoute(router, deps, 'POST /api/v1/repositories', async (ctx) => {
    const input = await readJson(ctx, deps);
    const { repository, created } = await repos.register(input);
    sendJson(ctx.res, created ? 201 : 200, repositoryView(repository), {
      location: `/api/v1/repositories/${repository.name}`,
    });
  });

  // Registered before the rest-of-path routes so that `.../org/app/sync` is the sync of org/app.
  addUserRoute(router, deps, 'POST /api/v1/repositories/*name/sync', async (ctx) => {
    sendJson(ctx.res, 200, repositoryView(await repos.sync(nameOf(ctx))));
  });

  addUserRoute(router, deps, 'GET /api/v1/repositories/*name', async (ctx) => {
    sendJson(ctx.res, 200, repositoryView(await repos.get(nameOf(ctx))));
  });

  addUserRoute(router, deps, 'DELETE /api/v1/repositories/*name', async (ctx) => {
    await repos.remove(nameOf(ctx));
    ctx.res.writeHead(204).end();
  });
}
