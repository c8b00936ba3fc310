/**
 * Clones the job's repository into the workspace with Sourcegraph's exact git sequence and log keys
 * (`workspace/clone.go`), through the local auth proxy (git-proxy.ts):
 *
 *   setup.git.init          git -C <repo> init
 *   setup.git.add-remote    git -C <repo> remote add origin http://127.0.0.1:P/<repoName>
 *   setup.git.disable-gc    git -C <repo> config --local gc.auto 0
 *   setup.git.fetch         git -C <repo> -c protocol.version=2 fetch --no-recurse-submodules
 *                               [--tags] [--no-tags] [--depth=1] [--filter=blob:none] origin <commit>
 *   setup.git.sparse-checkout-config / -set   (only when sparse)
 *   setup.git.checkout      git -C <repo> [-c protocol.version=2] checkout --force <commit>
 *   setup.git.set-remote    git -C <repo> remote set-url origin <repoName>
 *
 * The first failure aborts with `failed <key>: <reason>`. The proxy is closed afterwards either way.
 *
 * With the clone cache (git-cache.ts), the cache's entry is first brought up to date through the
 * same proxy (`setup.git.cache-update`), then the objects the job needs are copied from it before
 * the fetch: a full clone gets copies of the entry's pack files (`setup.git.cache-copy`, at disk
 * speed), a shallow or sparse one a local fetch with its depth or filter (`setup.git.cache-fetch`,
 * so they keep their semantics). The fetch from origin then transfers nothing the cache had. A
 * failed copy is not the job's failure: the fetch from origin brings everything.
 *
 * A full clone may instead start from a checkout the cache prepared after an earlier job
 * (prepared-checkouts.ts), moved into the workspace (`setup.git.cache-checkout`): then only
 * `setup.git.fetch` (from the proxy's URL: origin is already named as a clone leaves it) and
 * `setup.git.checkout` run, and the checkout writes only the files that differ.
 *
 * After a copy of packs, the commit is given a ref of its own (COPIED_REF) for the length of the
 * fetch: git's fetch finds the commit complete and connected through it instead of walking the
 * whole history the copy brought (every tree of every commit: most of a warm setup's time on a
 * large repository, measured in bench/clone.ts). The entry's update just checked that history
 * connected, and the copy checked every pack against its checksum. The ref is deleted before the
 * checkout: the workspace's refs are what they are without a cache.
 *
 * Unlike Sourcegraph, without `--progress` and with git's hints and advice off (GIT_CONFIG_* in the
 * environment, git 2.31 and later): progress counters written with carriage returns read as one
 * long line in a log, and the default-branch hint and detached-HEAD advice are about 35 lines of
 * noise before a job's first step. Errors still come through.
 */
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { errorMessage } from '../../lib/errors.js';
import type { Job } from '../../protocol/job.js';
import { hostEnv, runCommand } from '../command.js';
import type { JobContext } from '../job-context.js';
import type { CacheLease, GitCache } from './git-cache.js';
import { startGitProxy } from './git-proxy.js';
import { resolveInside } from './safe-path.js';

const pexec = promisify(execFile);

export interface CloneOptions {
  workspacePath: string;
  frontendUrl: string;
  /** EXECUTOR_FRONTEND_PASSWORD; used only when the job carries no token. */
  frontendPassword: string;
  executorName: string;
  graceMs?: number;
  /** The executor's clone cache (EXECUTOR_GIT_CACHE_DIR); undefined = clone from origin only. */
  cache?: GitCache;
  /**
   * The cache's prepared checkouts may be moved into this workspace (its directory is on the
   * workspace root's file system); false for a workspace that is a disk image of its own.
   */
  preparedCheckouts?: boolean;
}

export interface GitCommand {
  key: string;
  argv: string[];
  /** A failure does not fail the clone (the copy from the cache). */
  optional?: boolean;
}

/** The job's fetch flags: tags, depth and filter. */
function fetchFlagsOf(job: Job): string[] {
  const flags: string[] = [];
  if (job.fetchTags) flags.push('--tags');
  if (job.shallowClone && !job.fetchTags) flags.push('--no-tags');
  if (job.shallowClone) flags.push('--depth=1');
  if (job.sparseCheckout.length > 0) flags.push('--filter=blob:none');
  return flags;
}

/** `git fetch` of `commit` from `source` (a remote's name, a URL or a directory). */
const fetchArgv = (git: string[], flags: string[], source: string, commit: string): string[] => [
  ...git,
  '-c',
  'protocol.version=2',
  'fetch',
  '--no-recurse-submodules',
  ...flags,
  source,
  commit,
];

/** The commands of a clone, in order (pure, for tests and `executor validate`). */
export function gitCommands(
  job: Job,
  repoPath: string,
  proxyUrl: string,
  cacheGitDir?: string,
): GitCommand[] {
  const sparse = job.sparseCheckout.length > 0;
  const fetchFlags = fetchFlagsOf(job);

  const git = ['git', '-C', repoPath];
  const cmds: GitCommand[] = [
    { key: 'setup.git.init', argv: [...git, 'init'] },
    {
      key: 'setup.git.add-remote',
      argv: [...git, 'remote', 'add', 'origin', `${proxyUrl}/${job.repositoryName}`],
    },
    { key: 'setup.git.disable-gc', argv: [...git, 'config', '--local', 'gc.auto', '0'] },
  ];
  if (cacheGitDir !== undefined) {
    cmds.push({
      key: 'setup.git.cache-fetch',
      argv: fetchArgv(
        git,
        ['--no-tags', ...fetchFlags.filter((f) => f !== '--tags' && f !== '--no-tags')],
        cacheGitDir,
        job.commit,
      ),
      optional: true,
    });
  }
  cmds.push({ key: 'setup.git.fetch', argv: fetchArgv(git, fetchFlags, 'origin', job.commit) });
  if (sparse) {
    cmds.push(
      {
        key: 'setup.git.sparse-checkout-config',
        argv: [...git, 'config', '--local', 'core.sparseCheckout', '1'],
      },
      {
        key: 'setup.git.sparse-checkout-set',
        argv: [...git, 'sparse-checkout', 'set', '--no-cone', '--', ...job.sparseCheckout],
      },
    );
  }
  cmds.push(
    {
      key: 'setup.git.checkout',
      argv: sparse
        ? [...git, '-c', 'protocol.version=2', 'checkout', '--force', job.commit]
        : [...git, 'checkout', '--force', job.commit],
    },
    { key: 'setup.git.set-remote', argv: [...git, 'remote', 'set-url', 'origin', job.repositoryName] },
  );
  return cmds;
}

/**
 * Copies the cache entry's packs into the new repository, logged as `setup.git.cache-copy`, and
 * points COPIED_REF at the commit. Resolves whether both were done. A failure is reported (and the
 * entry checked) but not thrown: the fetch brings everything.
 */
async function copyFromCache(
  lease: CacheLease,
  repoPath: string,
  commit: string,
  env: Record<string, string>,
  ctx: JobContext,
): Promise<boolean> {
  const handle = ctx.logger.entry('setup.git.cache-copy', null);
  try {
    const bytes = await lease.copyPacks(path.join(repoPath, '.git', 'objects'));
    // update-ref refuses a commit the copy did not bring: the fetch then brings it.
    await pexec('git', ['-C', repoPath, 'update-ref', COPIED_REF, commit], { env });
    handle.writeRaw(`Copied ${bytes} bytes of packs from the clone cache\n`);
    handle.close(0);
    return true;
  } catch (err) {
    handle.writeRaw(`Copy from the clone cache failed: ${errorMessage(err)}; fetching everything\n`);
    handle.close(1);
    await lease.copyFailed();
    return false;
  }
}

/**
 * The commands of a full clone into a checkout prepared by the cache (already a repository with
 * origin named as a clone leaves it): the fetch of the job's commit from the proxy's URL, and its
 * checkout, which writes only the files that differ from the prepared commit's.
 */
export function preparedCommands(job: Job, repoPath: string, proxyUrl: string): GitCommand[] {
  const git = ['git', '-C', repoPath];
  return [
    {
      key: 'setup.git.fetch',
      argv: fetchArgv(git, fetchFlagsOf(job), `${proxyUrl}/${job.repositoryName}`, job.commit),
    },
    { key: 'setup.git.checkout', argv: [...git, 'checkout', '--force', job.commit] },
  ];
}

/**
 * Moves a checkout prepared by the cache into `repoPath`, logged as `setup.git.cache-checkout`, and
 * points COPIED_REF at its commit for the fetch. Resolves whether one was taken.
 */
async function takePrepared(
  lease: CacheLease,
  repoPath: string,
  env: Record<string, string>,
  ctx: JobContext,
): Promise<boolean> {
  const commit = await lease.takeCheckout(repoPath).catch(() => undefined);
  if (commit === undefined) return false;
  const handle = ctx.logger.entry('setup.git.cache-checkout', null);
  try {
    await pexec('git', ['-C', repoPath, 'update-ref', COPIED_REF, commit], { env });
    handle.writeRaw(`Took a checkout of ${commit} prepared by the clone cache\n`);
    handle.close(0);
    return true;
  } catch (err) {
    handle.writeRaw(`The prepared checkout is unusable: ${errorMessage(err)}\n`);
    handle.close(1);
    throw new Error(`failed setup.git.cache-checkout: ${errorMessage(err)}`);
  }
}

/** The ref that marks the copied commit during the fetch (see the top of this file). */
export const COPIED_REF = 'refs/executor/cache-copy';

/**
 * git configuration through the environment: no default-branch hint, no detached-HEAD advice, and
 * parallel checkout with one worker per core (git 2.32 and later; older versions ignore it). The
 * checkout of a large tree is most of a clone's time once the objects are local: 20,000 files of
 * 10 KB took 15 s with two workers against 21 to 26 s with one on the 2-core bench machine at load
 * 17 to 37 (bench/clone.ts). It writes the same files and index.
 */
export const QUIET_GIT_ENV: Readonly<Record<string, string>> = {
  GIT_CONFIG_COUNT: '4',
  GIT_CONFIG_KEY_0: 'init.defaultBranch',
  GIT_CONFIG_VALUE_0: 'main',
  GIT_CONFIG_KEY_1: 'advice.detachedHead',
  GIT_CONFIG_VALUE_1: 'false',
  GIT_CONFIG_KEY_2: 'advice.objectNameWarning',
  GIT_CONFIG_VALUE_2: 'false',
  GIT_CONFIG_KEY_3: 'checkout.workers',
  GIT_CONFIG_VALUE_3: '0',
};

/** Clones job.repositoryName at job.commit into the workspace (or its repositoryDirectory). */
export async function cloneRepository(job: Job, ctx: JobContext, opts: CloneOptions): Promise<string> {
  let repoPath: string;
  try {
    repoPath = await resolveInside(opts.workspacePath, job.repositoryDirectory);
  } catch (err) {
    throw new Error('invalid repo path', { cause: err });
  }
  await mkdir(repoPath, { recursive: true });

  const proxy = await startGitProxy({
    frontendUrl: opts.frontendUrl,
    repositoryName: job.repositoryName,
    authorization: job.token ? `Bearer ${job.token}` : `token-executor ${opts.frontendPassword}`,
    jobId: job.id,
    executorName: opts.executorName,
  });
  let lease: CacheLease | undefined;
  try {
    const env = hostEnv({ GIT_TERMINAL_PROMPT: '0', GIT_LFS_SKIP_SMUDGE: '1', ...QUIET_GIT_ENV });
    const remoteUrl = `${proxy.url}/${job.repositoryName}`;
    lease = await opts.cache?.lease({
      repositoryName: job.repositoryName,
      commit: job.commit,
      remoteUrl,
      // A cold cache costs a shallow or sparse job a full history: only a warm one serves them.
      coldOk: !job.shallowClone && job.sparseCheckout.length === 0,
      ctx,
    });
    if (ctx.signal.aborted)
      throw new Error(
        `failed setup.git.cache-update: ${String((ctx.signal.reason as Error)?.message ?? ctx.signal.reason)}`,
      );
    // Full clones take a prepared checkout or copy the entry's packs; shallow and sparse ones fetch
    // from it with their flags.
    const full = !job.shallowClone && job.sparseCheckout.length === 0;
    const prepared =
      lease && full && opts.preparedCheckouts ? await takePrepared(lease, repoPath, env, ctx) : false;
    let copied = prepared;
    const cmds = prepared
      ? preparedCommands(job, repoPath, proxy.url)
      : gitCommands(job, repoPath, proxy.url, full ? undefined : lease?.gitDir);
    for (const cmd of cmds) {
      if (cmd.key === 'setup.git.fetch' && lease && full && !prepared)
        copied = await copyFromCache(lease, repoPath, job.commit, env, ctx);
      const res = await runCommand({
        key: cmd.key,
        argv: cmd.argv,
        env,
        logger: ctx.logger,
        signal: ctx.signal,
        graceMs: opts.graceMs,
      });
      if (res.exitCode !== 0 && cmd.optional && !ctx.signal.aborted) {
        await lease?.copyFailed();
        continue;
      }
      if (res.exitCode !== 0) {
        const reason = ctx.signal.aborted
          ? String((ctx.signal.reason as Error)?.message ?? ctx.signal.reason)
          : (res.error ?? `command failed with exit code ${res.exitCode}`);
        throw new Error(`failed ${cmd.key}: ${reason}`);
      }
      if (cmd.key === 'setup.git.fetch' && copied) {
        await pexec('git', ['-C', repoPath, 'update-ref', '-d', COPIED_REF], { env }).catch((err) => {
          throw new Error(`failed ${cmd.key}: cannot delete ${COPIED_REF}: ${errorMessage(err)}`);
        });
      }
    }
    // The next full clone of this repository may start from this commit's checkout.
    if (lease && full && opts.preparedCheckouts) lease.prepareCheckout(job.commit);
  } finally {
    lease?.release();
    await proxy.close();
  }
  return repoPath;
}
