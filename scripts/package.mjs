#!/usr/bin/env node
import { execFileSync } from 'node:child_process';
/**
 * `npm run package`: builds `dist/sea/executor-linux-x64`, one executable holding the queue server,
 * the executor and the CLI, with Node's single-executable-application support (Node >= 20.12).
 *
 * 1. esbuild bundles src/cli/main.ts and its dependencies into one CommonJS file (SEA runs one
 *    CommonJS script). The package version is injected with `define` (there is no package.json
 *    next to a single binary); `import.meta.url` becomes the binary's own file URL.
 * 2. better-sqlite3's native addon cannot be loaded from inside the blob: it is embedded as a SEA
 *    asset and, at first use, written to a per-user cache directory named after its SHA-256
 *    (`$EXECUTOR_NATIVE_CACHE_DIR`, else `$XDG_CACHE_HOME/executor/native`, else
 *    `~/.cache/executor/native`), checked against that hash on every load, then `process.dlopen`ed.
 * 3. `node --experimental-sea-config` writes the blob; postject injects it into a copy of this
 *    Node binary.
 *
 * Flags: `--if-stale` rebuilds only when the inputs (sources, lockfile, this script, the Node
 * binary) changed since the last build; `--out <file>` writes the binary elsewhere.
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const ifStale = args.includes('--if-stale');
const outIdx = args.indexOf('--out');
const out = path.resolve(outIdx >= 0 ? args[outIdx + 1] : path.join(repo, 'dist/sea/executor-linux-x64'));
const work = path.join(repo, 'dist/sea/work');
const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

function die(msg) {
  process.stderr.write(`package: ${msg}\n`);
  process.exit(1);
}

if (process.platform !== 'linux' || process.arch !== 'x64') {
  die(`builds the linux-x64 binary from a linux-x64 Node; this is ${process.platform}-${process.arch}`);
}
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 12))
  die(`needs Node >= 20.12 (SEA assets), this is ${process.version}`);

const pkg = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8'));
const addon = path.join(
  path.dirname(require.resolve('better-sqlite3/package.json')),
  'build/Release/better_sqlite3.node',
);
if (!existsSync(addon)) die(`better-sqlite3's addon is not built (${addon}); run npm ci`);

// ---- staleness: a hash of everything that goes into the binary ----
function listFiles(dir) {
  const outFiles = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) outFiles.push(...listFiles(p));
    else outFiles.push(p);
  }
  return outFiles.sort();
}
function inputsHash() {
  const h = createHash('sha256');
  const files = [
    ...listFiles(path.join(repo, 'src')),
    path.join(repo, 'package.json'),
    path.join(repo, 'package-lock.json'),
    fileURLToPath(import.meta.url),
    addon,
  ];
  for (const f of files) {
    if (!existsSync(f)) continue;
    h.update(path.relative(repo, f)).update('\0').update(readFileSync(f)).update('\0');
  }
  h.update(process.version).update(String(statSync(process.execPath).size));
  return h.digest('hex');
}
// ---- one build at a time: test files (binary, images) call `--if-stale` side by side, and two
// builds would write the same work directory and output. A lock file holds the builder's pid; a
// lock whose process is gone is taken over.
const lockFile = path.join(repo, 'dist/sea/.package.lock');
function takeLock() {
  mkdirSync(path.dirname(lockFile), { recursive: true });
  for (const deadline = Date.now() + 600_000; ; ) {
    try {
      writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
      process.on('exit', () => rmSync(lockFile, { force: true }));
      return;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    const holder = Number(readFileSync(lockFile, 'utf8').trim() || 0);
    let alive = false;
    try {
      if (holder > 0) process.kill(holder, 0);
      alive = holder > 0;
    } catch {}
    if (!alive) rmSync(lockFile, { force: true });
    else if (Date.now() > deadline) die(`another build (pid ${holder}) holds ${lockFile}`);
    else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
  }
}
takeLock();

const stamp = `${out}.inputs`;
const hash = inputsHash();
if (ifStale && existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === hash) {
  process.stdout.write(`package: ${path.relative(repo, out)} is up to date\n`);
  process.exit(0);
}

mkdirSync(work, { recursive: true });
mkdirSync(path.dirname(out), { recursive: true });

// ---- 1. bundle ----
// `bindings` is what better-sqlite3 loads its addon with; inside the binary it reads the SEA asset.
const BINDINGS_SHIM = `
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
let sea;
try { sea = require('node:sea'); } catch {}
function cacheRoot() {
  if (process.env.EXECUTOR_NATIVE_CACHE_DIR) return process.env.EXECUTOR_NATIVE_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'executor', 'native');
}
module.exports = function bindings(name) {
  const file = String(name).endsWith('.node') ? String(name) : String(name) + '.node';
  if (!sea || !sea.isSea()) throw new Error('native addon ' + file + ' is embedded only in the single-file binary');
  const data = Buffer.from(sea.getAsset(file));
  const digest = crypto.createHash('sha256').update(data).digest('hex');
  const dir = path.join(cacheRoot(), digest.slice(0, 32));
  const target = path.join(dir, file);
  const intact = () => {
    try { return crypto.createHash('sha256').update(fs.readFileSync(target)).digest('hex') === digest; }
    catch { return false; }
  };
  if (!intact()) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = target + '.' + process.pid + '.tmp';
    fs.writeFileSync(tmp, data, { mode: 0o500 });
    fs.renameSync(tmp, target);
    if (!intact()) throw new Error('cannot write the native addon to ' + target);
  }
  const m = { exports: {} };
  process.dlopen(m, target);
  return m.exports;
};
`;

const { build } = await import('esbuild');
const bundle = path.join(work, 'executor.cjs');
await build({
  entryPoints: [path.join(repo, 'src/cli/main.ts')],
  outfile: bundle,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  legalComments: 'none',
  logLevel: 'warning',
  define: {
    'import.meta.url': '__executorImportMetaUrl',
    __EXECUTOR_PACKAGE_VERSION__: JSON.stringify(pkg.version),
  },
  banner: { js: 'var __executorImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
  plugins: [
    {
      // Optional native or development-only modules, loaded lazily or in try/catch by their users
      // (ssh2's crypto addon and cpu-features, pg-native, ws's and debug's optional helpers, the
      // dashboard's esbuild): not in the binary, and failing as a missing module would, without
      // SEA's warning about require() from disk.
      name: 'unavailable',
      setup(b) {
        b.onResolve(
          {
            filter:
              /^(esbuild|pg-native|cpu-features|utf-8-validate|bufferutil|supports-color|encoding)$|\.node$/,
          },
          (a) => ({
            path: a.path,
            namespace: 'unavailable',
          }),
        );
        b.onLoad({ filter: /.*/, namespace: 'unavailable' }, (a) => ({
          contents: `const e = new Error(${JSON.stringify(`Cannot find module '${a.path}' (not included in the single-file binary)`)}); e.code = 'MODULE_NOT_FOUND'; throw e;`,
          loader: 'js',
        }));
      },
    },
    {
      name: 'sea-bindings',
      setup(b) {
        b.onResolve({ filter: /^bindings$/ }, () => ({ path: 'bindings', namespace: 'sea-bindings' }));
        b.onLoad({ filter: /.*/, namespace: 'sea-bindings' }, () => ({
          contents: BINDINGS_SHIM,
          loader: 'js',
        }));
      },
    },
  ],
});

// The dashboard: its static files and the client bundled as at `npm run build`, embedded as SEA
// assets `dashboard/<name>` (read by src/server/web/routes.ts).
const dashboardDir = path.join(work, 'dashboard');
mkdirSync(dashboardDir, { recursive: true });
const client = await build({
  entryPoints: [path.join(repo, 'src/server/web/app/main.ts')],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  write: false,
  legalComments: 'none',
  logLevel: 'silent',
});
writeFileSync(path.join(dashboardDir, 'app.js'), client.outputFiles[0].text);
const dashboardAssets = { 'dashboard/app.js': path.join(dashboardDir, 'app.js') };
for (const name of ['index.html', 'app.css']) {
  dashboardAssets[`dashboard/${name}`] = path.join(repo, 'src/server/web/static', name);
}

// ---- 2. blob ----
const blob = path.join(work, 'sea-prep.blob');
const seaConfig = path.join(work, 'sea-config.json');
writeFileSync(
  seaConfig,
  `${JSON.stringify(
    {
      main: bundle,
      output: blob,
      disableExperimentalSEAWarning: true,
      useSnapshot: false,
      useCodeCache: false,
      assets: { 'better_sqlite3.node': addon, ...dashboardAssets },
    },
    null,
    2,
  )}\n`,
);
execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { stdio: 'inherit' });

// ---- 3. inject into a copy of node ----
const tmpOut = `${out}.tmp`;
copyFileSync(process.execPath, tmpOut);
chmodSync(tmpOut, 0o755);
const { inject } = require('postject');
await inject(tmpOut, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SENTINEL_FUSE });
renameSync(tmpOut, out);
writeFileSync(stamp, `${hash}\n`);
const size = statSync(out).size;
process.stdout.write(
  `package: wrote ${path.relative(repo, out)} (${(size / 1048576).toFixed(1)} MiB, executor ${pkg.version}, node ${process.version})\n`,
);
