/**
 * Git smart-HTTP for executors: `/.executors/git/<repo>/info/refs` and `.../git-upload-pack`, served
 * by `git http-backend` (CGI) over the repositories directory. Read-only (upload-pack only), and a
 * job token only opens the repository of its own job. The CGI gets a minimal environment: nothing of
 * the server's own (tokens, database URL) reaches git.
 */
import { spawn } from 'node:child_process';
import type { RouteDeps } from '../deps.js';
import {
  bodyTimeouts,
  type RouteContext,
  type Router,
  sendBodyTimeout,
  sendText,
  watchBody,
} from '../http.js';
import { wrapExecutorHandler } from './envelope.js';
import { requireJob } from './guards.js';

/** Same rule as a JobSpec repository name: `org/repo`, no `.` or `..` segments. */
export const REPO_NAME = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/;

export function isValidRepoName(name: string): boolean {
  return REPO_NAME.test(name) && !name.split('/').some((p) => p === '.' || p === '..');
}

/** Splits a CGI response head into status and headers. */
export function parseCgiHead(head: string): { status: number; headers: [string, string][] } {
  let status = 200;
  const headers: [string, string][] = [];
  for (const line of head.split(/\r?\n/)) {
    if (line === '') continue;
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim();
    const value = line.slice(i + 1).trim();
    if (name.toLowerCase() === 'status') {
      const code = Number.parseInt(value, 10);
      if (code >= 100 && code <= 599) status = code;
    } else {
      headers.push([name, value]);
    }
  }
  return { status, headers };
}

function findHeadEnd(buf: Buffer): { end: number; sep: number } | undefined {
  const crlf = buf.indexOf('\r\n\r\n');
  const lf = buf.indexOf('\n\n');
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return { end: crlf, sep: 4 };
  if (lf >= 0) return { end: lf, sep: 2 };
  return undefined;
}

function serveGit(
  ctx: RouteContext,
  deps: RouteDeps,
  repo: string,
  service: 'info/refs' | 'git-upload-pack',
): Promise<void> {
  const { req, res } = ctx;
  const header = (n: string) => {
    const v = req.headers[n];
    return (Array.isArray(v) ? v[0] : v) ?? '';
  };
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    GIT_PROJECT_ROOT: deps.config.reposDir,
    GIT_HTTP_EXPORT_ALL: '1',
    PATH_INFO: `/${repo}/${service}`,
    QUERY_STRING: ctx.url.search.replace(/^\?/, ''),
    REQUEST_METHOD: req.method ?? 'GET',
    CONTENT_TYPE: header('content-type'),
    REMOTE_ADDR: req.socket.remoteAddress ?? '',
    GIT_CONFIG_NOSYSTEM: '1',
    HOME: deps.config.dataDir,
    // Executors fetch one commit by sha; allow any reachable one (protocol v0/v1; v2 allows it anyway).
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: 'uploadpack.allowReachableSHA1InWant',
    GIT_CONFIG_VALUE_0: 'true',
  };
  if (header('content-encoding')) env.HTTP_CONTENT_ENCODING = header('content-encoding');
  if (header('git-protocol')) env.HTTP_GIT_PROTOCOL = header('git-protocol');
  if (header('content-length')) env.CONTENT_LENGTH = header('content-length');

  return new Promise((resolve) => {
    const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let head = Buffer.alloc(0);
    let headDone = false;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      resolve();
    };
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString('utf8');
    });
    child.on('error', (e) => {
      deps.logger.error('git http-backend failed to start', { error: e });
      if (!res.headersSent) sendText(res, 500, 'git is unavailable\n');
      else res.destroy();
      finish();
    });
    child.stdout.on('data', (chunk: Buffer) => {
      if (headDone) {
        if (!res.write(chunk)) {
          child.stdout.pause();
          res.once('drain', () => child.stdout.resume());
        }
        return;
      }
      head = Buffer.concat([head, chunk]);
      const at = findHeadEnd(head);
      if (!at) {
        if (head.length > 64 * 1024) {
          child.kill('SIGKILL');
          sendText(res, 502, 'bad response from git\n');
        }
        return;
      }
      headDone = true;
      const parsed = parseCgiHead(head.subarray(0, at.end).toString('latin1'));
      for (const [k, v] of parsed.headers) res.setHeader(k, v);
      res.writeHead(parsed.status);
      const rest = head.subarray(at.end + at.sep);
      if (rest.length) res.write(rest);
    });
    child.on('close', (code) => {
      if (!headDone && !res.headersSent) {
        deps.logger.warn('git http-backend ended without a response', { repo, code, stderr: stderr.trim() });
        sendText(res, 500, 'git failed\n');
      } else {
        if (code !== 0 && stderr)
          deps.logger.debug('git http-backend', { repo, code, stderr: stderr.trim() });
        res.end();
      }
      finish();
    });
    // Request bodies (wants and haves) are capped like every executor request body.
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > deps.config.executorBodyLimitBytes) {
        child.kill('SIGKILL');
        req.unpipe(child.stdin);
        if (!res.headersSent) sendText(res, 413, 'request body too large\n');
        else res.destroy();
      }
    });
    // Wants and haves that stop arriving are cut like any body (408, or the connection once
    // the answer has begun).
    watchBody(req, bodyTimeouts(deps.config), (e) => {
      child.kill('SIGKILL');
      req.unpipe(child.stdin);
      sendBodyTimeout(res, `${e.message}\n`);
    });
    req.pipe(child.stdin);
    child.stdin.on('error', () => {});
    res.on('close', () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
  });
}

export function registerGitRoutes(router: Router, deps: RouteDeps): void {
  const handler = wrapExecutorHandler(deps, async (ctx) => {
    const rest = ctx.params.rest!;
    let repo: string;
    let service: 'info/refs' | 'git-upload-pack';
    if (rest.endsWith('/info/refs')) {
      repo = rest.slice(0, -'/info/refs'.length);
      service = 'info/refs';
    } else if (rest.endsWith('/git-upload-pack')) {
      repo = rest.slice(0, -'/git-upload-pack'.length);
      service = 'git-upload-pack';
    } else {
      sendText(ctx.res, 404, '404 page not found\n');
      return;
    }
    if (!isValidRepoName(repo)) {
      sendText(ctx.res, 404, '404 page not found\n');
      return;
    }
    await requireJob(ctx, deps, { kind: 'git', repo });
    if (service === 'info/refs' && ctx.url.searchParams.get('service') !== 'git-upload-pack') {
      sendText(ctx.res, 403, 'only git-upload-pack is served\n');
      return;
    }
    if (service === 'git-upload-pack' && ctx.req.method !== 'POST') {
      sendText(ctx.res, 405, '405 method not allowed\n', { allow: 'POST' });
      return;
    }
    await serveGit(ctx, deps, repo, service);
  });
  router.add(['GET', 'POST'], '/.executors/git/*rest', handler, '/.executors/git');
}
