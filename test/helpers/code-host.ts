/**
 * A real Git code host on loopback for tests: `git http-backend` (smart HTTP, clone and fetch)
 * behind a small Node HTTP server that demands basic auth, so credentials are exercised for real.
 * Repositories are bare, under a temporary root; tests change them through a work tree and push
 * over the file system. The host counts the requests it served, by service.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseCgiHead } from '../../src/server/executor-api/git.js';
import { GIT_TEST_ENV } from './repos.js';

export interface CodeHost {
  /** `http://127.0.0.1:<port>` */
  url: string;
  root: string;
  /** Fetches (and clones) served: their `info/refs` requests, per repository path (`org/app.git`). */
  fetches(repo: string): number;
  /** Requests refused with 401. */
  refused(): number;
  /** A new bare repository with one commit on main and tag v1; returns its commit. */
  createRepo(repo: string): string;
  /** Commits a file change on `branch` (created from main when new) and pushes; returns the sha. */
  commit(repo: string, branch: string, file?: string, content?: string): string;
  /** Tags `ref` as `tag` and pushes the tag. */
  tag(repo: string, tag: string, ref: string): void;
  close(): Promise<void>;
}

export function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, stdio: 'pipe', env: GIT_TEST_ENV }).toString().trim();
}

export async function startCodeHost(auth: { username: string; password: string }): Promise<CodeHost> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'executor-code-host-'));
  const works = new Map<string, string>();
  const packs = new Map<string, number>();
  let refused = 0;
  const expected = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;

  const server = http.createServer((req, res) => {
    if (req.headers.authorization !== expected) {
      refused++;
      req.resume();
      res.writeHead(401, { 'www-authenticate': 'Basic realm="code host"' }).end('unauthorized\n');
      return;
    }
    const url = new URL(req.url ?? '/', 'http://host');
    if (url.pathname.endsWith('/info/refs')) {
      const repo = url.pathname.slice(1, -'/info/refs'.length);
      packs.set(repo, (packs.get(repo) ?? 0) + 1);
    }
    const child = spawn('git', ['http-backend'], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: url.pathname,
        QUERY_STRING: url.search.replace(/^\?/, ''),
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
        HTTP_GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
        REMOTE_USER: auth.username,
        GIT_CONFIG_NOSYSTEM: '1',
      },
    });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.on('close', () => {
      const out = Buffer.concat(chunks);
      let end = out.indexOf('\r\n\r\n');
      let sep = 4;
      if (end < 0) {
        end = out.indexOf('\n\n');
        sep = 2;
      }
      if (end < 0) {
        res.writeHead(500).end('git http-backend failed\n');
        return;
      }
      const head = parseCgiHead(out.subarray(0, end).toString('latin1'));
      for (const [k, v] of head.headers) res.setHeader(k, v);
      res.writeHead(head.status).end(out.subarray(end + sep));
    });
    req.pipe(child.stdin);
    child.stdin.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  const workOf = (repo: string) => {
    const w = works.get(repo);
    if (!w) throw new Error(`no repository ${repo} on the code host`);
    return w;
  };

  return {
    url: `http://127.0.0.1:${port}`,
    root,
    fetches: (repo) => packs.get(repo) ?? 0,
    refused: () => refused,
    createRepo(repo) {
      const bare = path.join(root, repo);
      mkdirSync(path.dirname(bare), { recursive: true });
      git(root, 'init', '-q', '--bare', '-b', 'main', bare);
      const work = mkdtempSync(path.join(os.tmpdir(), 'executor-code-host-work-'));
      git(work, 'init', '-q', '-b', 'main');
      writeFileSync(path.join(work, 'README.md'), `${repo}\n`);
      git(work, 'add', '.');
      git(work, 'commit', '-q', '-m', 'initial');
      git(work, 'tag', 'v1');
      git(work, 'remote', 'add', 'origin', bare);
      git(work, 'push', '-q', 'origin', 'main', 'v1');
      works.set(repo, work);
      return git(work, 'rev-parse', 'HEAD');
    },
    commit(repo, branch, file = 'CHANGES', content = `${Date.now()}-${Math.random()}\n`) {
      const work = workOf(repo);
      const exists = git(work, 'branch', '--list', branch) !== '';
      git(work, 'checkout', '-q', exists ? branch : '-b', ...(exists ? [] : [branch, 'main']));
      writeFileSync(path.join(work, file), content);
      git(work, 'add', '.');
      git(work, 'commit', '-q', '-m', `change ${file}`);
      git(work, 'push', '-q', 'origin', branch);
      const sha = git(work, 'rev-parse', 'HEAD');
      git(work, 'checkout', '-q', 'main');
      return sha;
    },
    tag(repo, tag, ref) {
      const work = workOf(repo);
      git(work, 'tag', tag, ref);
      git(work, 'push', '-q', 'origin', tag);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(root, { recursive: true, force: true });
      for (const w of works.values()) rmSync(w, { recursive: true, force: true });
    },
  };
}
