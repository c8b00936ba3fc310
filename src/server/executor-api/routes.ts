/**
 * The /.executors API (Sourcegraph `queuehandler.go` and `handler/*.go`): dequeue and heartbeat,
 * single and multi-queue; log entries; marks; test/auth; plus our negotiated extensions (long-poll
 * dequeue, appendExecutionLogEntry). Git and files routes live in their own files.
 *
 * One file a group: dequeue.ts, heartbeat.ts, logs.ts, marks.ts; the response envelope and body
 * decoding in envelope.ts (upstream's `wrapHandler`), the token checks in guards.ts and auth.ts.
 */
import type { RouteDeps } from '../deps.js';
import { type Router, sendText } from '../http.js';
import { registerDequeueRoutes } from './dequeue.js';
import { wrapExecutorHandler as wrap } from './envelope.js';
import { requireExecutor } from './guards.js';
import { type QuickHeartbeat, registerHeartbeatRoutes } from './heartbeat.js';
import { registerLogRoutes } from './logs.js';
import { registerMarkRoutes } from './marks.js';

export { CAPABILITIES_VALUE } from './envelope.js';

export function registerExecutorRoutes(router: Router, deps: RouteDeps): QuickHeartbeat {
  router.add(
    'GET',
    '/.executors/test/auth',
    wrap(deps, async (ctx) => {
      requireExecutor(ctx, deps);
      sendText(ctx.res, 200, 'ok');
    }),
  );

  registerDequeueRoutes(router, deps);
  const quick = registerHeartbeatRoutes(router, deps);
  registerLogRoutes(router, deps);
  registerMarkRoutes(router, deps);
  return quick;
}
