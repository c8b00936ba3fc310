/**
 * Repository lookup and commit resolution at submit time. A repository `org/repo` is found the way
 * `git http-backend` finds it under GIT_PROJECT_ROOT (`org/repo/.git`, `org/repo`, `org/repo.git/.git`,
 * `org/repo.git`), so what the API accepts is exactly what executors can clone. A sha or ref is
 * resolved to the full commit sha with `git rev-parse --verify <commit>^{commit}`; a full sha of a
 * commit, or of nothing the repository has, is answered from its files without git (object-type.ts).
 */
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { AppError } from '../../lib/errors.js';
import { objectType } from './object-type.js';

function isGitDir(dir: string): boolean {
  try {
    return (
      statSync(dir).isDirectory() &&
      existsSync(path.join(dir, 'HEAD')) &&
      existsSync(path.join(dir, 'objects'))
    );
  } catch {
    return false;
  }
}

/** The git directory serving `name`, or undefined. `name` must already be a valid repository name. */
export function findRepository(reposDir: string, name: string): string | undefined {
  const base = path.join(reposDir, name);
  if (!base.startsWith(path.resolve(reposDir) + path.sep)) return undefined;
  for (const candidate of [path.join(base, '.git'), base, path.join(`${base}.git`, '.git'), `${base}.git`]) {
    if (isGitDir(candidate)) return candidate;
  }
  return undefined;
}

function runGit(args: string[], signal?: AbortSignal): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      args,
      {
        timeout: 30_000,
        signal,
        maxBuffer: 1024 * 1024,
        env: { PATH: process.env.PATH, GIT_CONFIG_NOSYSTEM: '1' },
      },
      (err, stdout) => {
        if (err && typeof (err as NodeJS.ErrnoException).code !== 'number') {
          reject(err);
          return;
        }
        resolve({ code: err ? Number((err as NodeJS.ErrnoException).code) : 0, stdout });
      },
    );
  });
}

/**
 * Resolves `commit` (sha, branch or tag) in repository `name` to a full sha. Throws AppError
 * UNKNOWN_REPOSITORY or UNKNOWN_REVISION; the message names what the user sent, never a path.
 */
export async function resolveCommit(reposDir: string, name: string, commit: string): Promise<string> {
  const gitDir = findRepository(reposDir, name);
  if (!gitDir) {
    throw new AppError('UNKNOWN_REPOSITORY', `Repository "${name}" is not served by this server.`, {
      details: [{ path: 'repository.name', message: 'no such repository in the repositories directory' }],
    });
  }
  const unknown = () =>
    new AppError('UNKNOWN_REVISION', `"${commit}" is not a commit, branch or tag of "${name}".`, {
      details: [{ path: 'repository.commit', message: 'does not resolve to a commit' }],
    });
  if (/[\s\0]/.test(commit) || commit.startsWith('-')) throw unknown();
  // A full sha is looked up in the repository's files (object-type.ts); git only when that
  // cannot tell, or for what names another object (a tag to peel) or is not a sha.
  const type = await objectType(gitDir, commit);
  if (type === 'commit') return commit;
  if (type === 'absent') throw unknown();
  const r = await runGit([
    '--git-dir',
    gitDir,
    'rev-parse',
    '--verify',
    '--quiet',
    '--end-of-options',
    `${commit}^{commit}`,
  ]);
  const sha = r.stdout.trim();
  if (r.code !== 0 || !/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(sha)) throw unknown();
  return sha;
}
