/**
 * Prepared checkouts of the clone cache (EXECUTOR_GIT_CACHE_CHECKOUTS): after a job's full clone,
 * the cache builds, in the background and at low CPU priority, a repository of its own at that
 * commit (`git init`, the entry's packs copied in, `git checkout`): what a clone would leave, at
 * that commit. The next full clone of the repository moves it into its workspace (one rename),
 * fetches its own commit from the server and checks it out, which writes only the files that
 * differ: on a large tree the checkout of every file is most of a clone once its objects are local.
 *
 * Contracts
 * - Built from the local entry only: no network, no token (origin is the repository's name, as a
 *   clone leaves it). No job has touched a prepared checkout before the one it is moved to; after
 *   the move it is that job's alone, as a fresh clone is.
 * - `<dir>/<key>-<id>/` is a ready checkout, `<dir>/<key>-<id>.json` its commit and size (written
 *   after the rename: a checkout without it is not ready). `.tmp-*` are being built; anything of
 *   either kind left by a process that died is removed at the first use of the directory.
 * - Taken by rename, so only on the same file system (EXDEV: left for later, the clone goes on
 *   without it), and only onto an empty directory.
 * - At most `max` per repository, ready or being built; one build at a time per executor.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { diskUsage } from '../../lib/disk-usage.js';
import { hostEnv } from '../command.js';
import { QUIET_GIT_ENV } from './clone.js';

/** Nice value of the builds' git processes: a running job's steps come first. */
const BUILD_NICENESS = 10;

export interface PreparedCheckout {
  commit: string;
  bytes: number;
}

export interface BuildRequest {
  key: string;
  repositoryName: string;
  commit: string;
  /** Copies the entry's packs into `objectsDir/pack` (CacheLease.copyPacks). */
  copyPacks(objectsDir: string): Promise<number>;
  /** Called once the build has ended, built or not (releases the entry's lease). */
  done(): void;
}

export interface PreparedCheckouts {
  /**
   * Moves a ready checkout of `key` onto `dest`, an empty directory on the same file system, with
   * `dest`'s permissions; resolves with its commit, undefined when none was taken.
   */
  take(key: string, dest: string): Promise<string | undefined>;
  /** Builds one in the background unless `max` of the key are ready or being built. */
  prepare(req: BuildRequest): void;
  /** Resolves once nothing is being built (tests, benchmarks). */
  idle(): Promise<void>;
  /** Ready checkouts by key (eviction counts their bytes with their entry's). */
  list(): Promise<Map<string, PreparedCheckout[]>>;
  /** Deletes every ready checkout of `key` (its entry is evicted). */
  drop(key: string): Promise<void>;
  /** Stops building: the build running is killed and removed, none starts after. */
  close(): Promise<void>;
  /** The last build's failure, if the last build failed (diagnostics, tests). */
  readonly lastError: string | undefined;
}

function git(args: string[], cwd: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'git',
      args,
      { cwd, signal, env: hostEnv({ GIT_TERMINAL_PROMPT: '0', ...QUIET_GIT_ENV }), maxBuffer: 1024 * 1024 },
      (err, _stdout, stderr) =>
        err ? reject(new Error(`git ${args[0]}: ${stderr.trim() || err.message}`)) : resolve(),
    );
    if (child.pid !== undefined) {
      try {
        os.setPriority(child.pid, BUILD_NICENESS);
      } catch {
        // Exited already, or not permitted: it runs at the default priority.
      }
    }
  });
}

const READY = /^([0-9a-f]{32})-([0-9a-f]{12})\.json$/;

export function createPreparedCheckouts(dir: string, max: number): PreparedCheckouts {
  const building = new Map<string, number>();
  const claimed = new Set<string>();
  let queue: Promise<void> = Promise.resolve();
  let pending = 0;
  let lastError: string | undefined;
  let swept: Promise<void> | undefined;
  const stop = new AbortController();

  /** Once per process: removes half-built checkouts and checkouts without their metadata. */
  const sweep = (): Promise<void> =>
    (swept ??= (async () => {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const names = await readdir(dir);
      for (const n of names) {
        if (n.startsWith('.tmp-')) await rm(path.join(dir, n), { recursive: true, force: true });
        else if (/^[0-9a-f]{32}-[0-9a-f]{12}$/.test(n) && !names.includes(`${n}.json`))
          await rm(path.join(dir, n), { recursive: true, force: true });
        else if (READY.test(n) && !names.includes(n.slice(0, -'.json'.length)))
          await rm(path.join(dir, n), { force: true });
      }
    })().catch(() => {}));

  async function readyOf(key?: string): Promise<{ name: string; key: string; meta: PreparedCheckout }[]> {
    await sweep();
    const out: { name: string; key: string; meta: PreparedCheckout }[] = [];
    for (const n of await readdir(dir).catch(() => [] as string[])) {
      const m = READY.exec(n);
      if (!m || (key !== undefined && m[1] !== key)) continue;
      try {
        const meta = JSON.parse(await readFile(path.join(dir, n), 'utf8')) as PreparedCheckout;
        out.push({ name: n.slice(0, -'.json'.length), key: m[1]!, meta });
      } catch {
        // Being removed, or unreadable: not ready.
      }
    }
    return out;
  }

  async function build(req: BuildRequest): Promise<void> {
    const id = randomBytes(6).toString('hex');
    const tmp = path.join(dir, `.tmp-${req.key}-${id}`);
    try {
      await mkdir(tmp, { mode: 0o700 });
      const signal = stop.signal;
      await git(['init', '--quiet'], tmp, signal);
      // In a clone's order (remote, then gc.auto), so the configuration file is the same.
      await git(['remote', 'add', 'origin', req.repositoryName], tmp, signal);
      await git(['config', '--local', 'gc.auto', '0'], tmp, signal);
      await req.copyPacks(path.join(tmp, '.git', 'objects'));
      if (signal.aborted) throw new Error('closed');
      await git(['checkout', '--quiet', '--force', req.commit], tmp, signal);
      const bytes = await diskUsage(tmp);
      const ready = path.join(dir, `${req.key}-${id}`);
      await rename(tmp, ready);
      await writeFile(
        `${ready}.json`,
        JSON.stringify({ commit: req.commit, bytes } satisfies PreparedCheckout),
      );
      lastError = undefined;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    } finally {
      await rm(tmp, { recursive: true, force: true }).catch(() => {});
    }
  }

  return {
    async take(key, dest) {
      for (const { name, meta } of await readyOf(key)) {
        if (claimed.has(name)) continue;
        claimed.add(name);
        const from = path.join(dir, name);
        try {
          await chmod(from, (await stat(dest)).mode & 0o7777);
          await rename(from, dest);
          await rm(`${from}.json`, { force: true });
          return meta.commit;
        } catch (err) {
          // Gone (taken by another process meanwhile): its metadata goes too, and the next is tried.
          // Anything else (another file system, a destination that is not an empty directory): the
          // checkout stays for a later job, and this clone goes on without one.
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return undefined;
          await rm(`${from}.json`, { force: true }).catch(() => {});
        } finally {
          claimed.delete(name);
        }
      }
      return undefined;
    },

    prepare(req) {
      if (stop.signal.aborted) {
        req.done();
        return;
      }
      const n = building.get(req.key) ?? 0;
      building.set(req.key, n + 1);
      pending++;
      const run = async () => {
        try {
          if (!stop.signal.aborted && (await readyOf(req.key)).length + n < max) await build(req);
        } finally {
          const left = (building.get(req.key) ?? 1) - 1;
          if (left <= 0) building.delete(req.key);
          else building.set(req.key, left);
          pending--;
          req.done();
        }
      };
      queue = queue.then(run, run);
    },

    async idle() {
      while (pending > 0) await queue.catch(() => {});
    },

    async list() {
      const byKey = new Map<string, PreparedCheckout[]>();
      for (const r of await readyOf()) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.meta]);
      return byKey;
    },

    async drop(key) {
      for (const { name } of await readyOf(key)) {
        if (claimed.has(name)) continue;
        await rm(path.join(dir, `${name}.json`), { force: true });
        await rm(path.join(dir, name), { recursive: true, force: true });
      }
    },

    async close() {
      stop.abort();
      while (pending > 0) await queue.catch(() => {});
    },

    get lastError() {
      return lastError;
    },
  };
}
