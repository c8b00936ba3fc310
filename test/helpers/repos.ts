import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** git's environment for tests that commit: an author and committer, no system or global config. */
export const GIT_TEST_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@example.com',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@example.com',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
};

/** Creates a repository `demo/hello` with two commits under reposDir; returns the first commit's sha. */
export function makeDemoRepo(reposDir: string): { first: string; second: string } {
  const dir = join(reposDir, 'demo', 'hello');
  mkdirSync(dir, { recursive: true });
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', dir, ...args], { env: GIT_TEST_ENV })
      .toString()
      .trim();
  git('init', '-q', '-b', 'main');
  writeFileSync(join(dir, 'VERSION'), 'one\n');
  git('add', '.');
  git('commit', '-qm', 'first');
  const first = git('rev-parse', 'HEAD');
  writeFileSync(join(dir, 'VERSION'), 'two\n');
  git('commit', '-qam', 'second');
  return { first, second: git('rev-parse', 'HEAD') };
}
