/**
 * `GET|HEAD /.executors/files/<bucket>/<key...>`: the large files of a job's spec, referenced from the
 * dequeued Job as bucket `job-files`, key `<jobId>/<index>`. A caller reads only its own job's files:
 * the key's job must be the job of the token (or of the X-Sourcegraph-Job-ID header on the
 * shared-token path). HEAD answers 200 or 404 with no body, as the executor's Exists() expects.
 */
import type { RouteDeps } from '../deps.js';
import { type Router, sendEmpty, sendText } from '../http.js';
import { JOB_FILES_BUCKET, specFiles } from './build-job.js';
import { wrapExecutorHandler } from './envelope.js';
import { requireJob } from './guards.js';

export function registerFileRoutes(router: Router, deps: RouteDeps): void {
  const handler = wrapExecutorHandler(deps, async (ctx) => {
    const caller = await requireJob(ctx, deps, { kind: 'files' });
    const head = ctx.req.method === 'HEAD';
    const notFound = () => (head ? sendEmpty(ctx.res, 404) : sendText(ctx.res, 404, 'file not found\n'));
    const m = /^(\d+)\/(\d+)$/.exec(ctx.params.key!);
    if (ctx.params.bucket !== JOB_FILES_BUCKET || !m) return notFound();
    const jobId = Number(m[1]);
    if (jobId !== caller.jobId) {
      if (head) sendEmpty(ctx.res, 403);
      else sendText(ctx.res, 403, 'invalid token\n');
      return;
    }
    const job = await deps.store.getJob(jobId);
    const file = job ? specFiles(job.spec)[Number(m[2])] : undefined;
    if (!file) return notFound();
    const content = file[1];
    ctx.res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(content.length),
      'x-content-type-options': 'nosniff',
    });
    ctx.res.end(head ? undefined : content);
  });
  router.add(['GET', 'HEAD'], '/.executors/files/:bucket/*key', handler, '/.executors/files');
}
