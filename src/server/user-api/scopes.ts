/**
 * The scope every user-API route needs, in one table: `read` sees, `submit` also changes jobs,
 * `admin` also manages tokens and registers or removes mirrored repositories (a registration makes
 * the server fetch from a URL with a credential of its environment), while `submit` may ask for a
 * sync. Routes are registered through addUserRoute with a key of this
 * table, so a route cannot be added without a scope. The scope-matrix test walks this table.
 */
import type { TokenScope } from '../../protocol/user-api.js';
import type { RouteDeps } from '../deps.js';
import type { RouteContext, Router } from '../http.js';
import { wrapUser } from './wrap.js';

export const ROUTE_SCOPES = {
  'GET /api/v1/whoami': 'read',
  'GET /api/v1/jobs': 'read',
  'GET /api/v1/jobs/:id': 'read',
  'GET /api/v1/jobs/:id/logs': 'read',
  'GET /api/v1/executors': 'read',
  'GET /api/v1/executors/history': 'read',
  'GET /api/v1/queues': 'read',
  'GET /api/v1/queues/history': 'read',
  'POST /api/v1/jobs': 'submit',
  'POST /api/v1/jobs/:id/cancel': 'submit',
  'POST /api/v1/jobs/:id/retry': 'submit',
  'GET /api/v1/tokens': 'admin',
  'POST /api/v1/tokens': 'admin',
  'DELETE /api/v1/tokens/:name': 'admin',
  'GET /api/v1/repositories': 'read',
  'GET /api/v1/repositories/*name': 'read',
  'POST /api/v1/repositories': 'admin',
  'DELETE /api/v1/repositories/*name': 'admin',
  'POST /api/v1/repositories/*name/sync': 'submit',
} as const satisfies Record<string, TokenScope>;

export type UserRoute = keyof typeof ROUTE_SCOPES;

/** Registers `fn` on the route's method and path, behind the scope the table gives it. */
export function addUserRoute(
  router: Router,
  deps: RouteDeps,
  route: UserRoute,
  fn: (ctx: RouteContext) => Promise<void>,
): void {
  const [method, path] = route.split(' ') as [string, string];
  router.add(method, path, wrapUser(deps, fn, { scope: ROUTE_SCOPES[route] }));
}
