/**
 * A throwaway npm registry on loopback that serves this project's production dependencies as they
 * are installed in its node_modules: one packument per package name (every installed version) and
 * a tarball per version, made from the installed directory. `npm install --registry <url>` with an
 * empty cache then resolves every dependency range of a packed tarball against it, as against the
 * public registry, with no network and nothing from the machine's npm cache.
 *
 * Which packages: the lockfile's entries that are not dev-only (optional ones included when they
 * are installed). Tarballs are made when the registry starts; they are the installed trees, so a
 * native addon's install script runs again on install, as it would from the public registry.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

interface LockEntry {
  version?: string;
  dev?: boolean;
  link?: boolean;
}

interface Version {
  manifest: Record<string, unknown>;
  tarball: string;
  integrity: string;
}

export interface LocalRegistry {
  url: string;
  /** Names it serves, for the test's own checks. */
  names: string[];
  close(): Promise<void>;
}

/** Lockfile path `node_modules/a/node_modules/@s/b` -> `@s/b`. */
function nameOf(lockPath: string): string {
  return lockPath.slice(lockPath.lastIndexOf('node_modules/') + 'node_modules/'.length);
}

function packDir(dir: string, out: string): string {
  // `package/` is the prefix npm expects inside a registry tarball.
  execFileSync('tar', ['-czf', out, '--transform', 's,^\\.,package,', '-C', dir, '.'], { stdio: 'pipe' });
  return `sha512-${createHash('sha512').update(readFileSync(out)).digest('base64')}`;
}

export async function startLocalRegistry(projectDir: string): Promise<LocalRegistry> {
  const lock = JSON.parse(readFileSync(path.join(projectDir, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const tarDir = mkdtempSync(path.join(os.tmpdir(), 'registry-tarballs-'));
  const packages = new Map<string, Map<string, Version>>();
  const tarballs = new Map<string, string>();
  for (const [lockPath, entry] of Object.entries(lock.packages)) {
    if (lockPath === '' || entry.dev || entry.link) continue;
    const dir = path.join(projectDir, lockPath);
    if (!existsSync(path.join(dir, 'package.json'))) continue; // an optional one not installed here
    const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    const name = nameOf(lockPath);
    const version = String(manifest.version);
    const versions = packages.get(name) ?? new Map<string, Version>();
    packages.set(name, versions);
    if (versions.has(version)) continue;
    const file = `${name.replace('/', '__')}-${version}.tgz`;
    const integrity = packDir(dir, path.join(tarDir, file));
    tarballs.set(file, path.join(tarDir, file));
    versions.set(version, { manifest: { ...manifest, name, version }, tarball: file, integrity });
  }

  let base = '';
  const server: Server = createServer((req, res) => {
    const url = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    if (url.startsWith('/-/tarballs/')) {
      const file = tarballs.get(url.slice('/-/tarballs/'.length));
      if (!file) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      return void res.end(readFileSync(file));
    }
    const versions = packages.get(url.slice(1));
    if (!versions) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return void res.end('{"error":"not found"}');
    }
    const doc = {
      name: url.slice(1),
      'dist-tags': { latest: [...versions.keys()].at(-1) },
      versions: Object.fromEntries(
        [...versions].map(([v, x]) => [
          v,
          { ...x.manifest, dist: { tarball: `${base}/-/tarballs/${x.tarball}`, integrity: x.integrity } },
        ]),
      ),
    };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(doc));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `${base}/`,
    names: [...packages.keys()],
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
