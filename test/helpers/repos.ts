import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Creates a repository `demo/hello` with two commits under reposDir; returns the first commit's sha. */
export function makeDemoRepo(reposDir: string): { first: string; second: string } {
  const dir = join(reposDir, 'demo', 'hello');
  mkdirSync(dir, { recursive: true });
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', dir, ...args], {
      env: {
        ...process.env,
        GIT_AUTHOR_NAME: 't',
        GIT_AUTHOR_EMAIL: 't@e',
        GIT_COMMITTER_NAME: 't',
        GIT_COMMITTER_EMAIL: 't@e',
      },
    })
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
