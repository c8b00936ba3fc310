/**
 * What `executor up` shows on a first run: a small repository, a job that clones it, runs two steps
 * and uses a secret that stays redacted, and (for the Docker runtimes) a tiny image made locally so
 * that the demo works with no registry.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { JobSpec } from '../protocol/job-spec.js';

const run = promisify(execFile);

export const DEMO_REPO = 'demo/hello';
/** The demo and the examples use busybox; with no registry, the host's busybox-static is imported under this name. */
export const DEMO_IMAGE = 'busybox:latest';

const GIT_ENV = {
  GIT_AUTHOR_NAME: 'executor demo',
  GIT_AUTHOR_EMAIL: 'demo@example.invalid',
  GIT_COMMITTER_NAME: 'executor demo',
  GIT_COMMITTER_EMAIL: 'demo@example.invalid',
};

/** Creates `<reposDir>/demo/hello` with one commit, unless it exists. */
export async function ensureDemoRepo(reposDir: string): Promise<string> {
  const dir = join(reposDir, DEMO_REPO);
  if (existsSync(join(dir, '.git'))) return dir;
  mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = {
    'README.md': '# hello\n\nA demo repository served by `executor up`.\n',
    'greet.sh': '#!/bin/sh\necho "Hello from $(cat VERSION) on $(uname -s)"\n',
    'test.sh': '#!/bin/sh\nset -e\nsh greet.sh | grep -q Hello\necho "1 test passed"\n',
    VERSION: 'v1.0.0\n',
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const env = { ...process.env, ...GIT_ENV };
  await run('git', ['-C', dir, 'init', '-q', '-b', 'main'], { env });
  await run('git', ['-C', dir, 'add', '.'], { env });
  await run('git', ['-C', dir, 'commit', '-qm', 'Demo repository'], { env });
  return dir;
}

/** The demo job: clone, build, test, and a secret that the log shows as ${{ secrets.DEMO_TOKEN }}. */
export function demoJob(image: string): JobSpec {
  return {
    queue: 'default',
    repository: { name: DEMO_REPO, commit: 'main' },
    steps: [
      {
        key: 'build',
        image,
        run: [
          'echo "building $(cat VERSION) at $(git rev-parse --short HEAD 2>/dev/null || echo HEAD)"',
          'sh greet.sh',
        ],
      },
      {
        key: 'test',
        image,
        run: ['sh test.sh', 'echo "publishing with token $DEMO_TOKEN (the log never shows it)"'],
      },
    ],
    secrets: { DEMO_TOKEN: 'demo-secret-4f7a1c2e9b' },
    timeout: '5m',
  };
}

/** Whether the Docker daemon has the image. */
async function hasImage(image: string): Promise<boolean> {
  try {
    await run('docker', ['image', 'inspect', image], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

async function isStatic(binary: string): Promise<boolean> {
  try {
    const { stdout, stderr } = await run('ldd', [binary]);
    return /not a dynamic executable/.test(stdout + stderr);
  } catch (e) {
    return /not a dynamic executable/.test(String((e as { stderr?: string }).stderr ?? ''));
  }
}

/**
 * Makes sure the Docker daemon has `busybox:latest` for the demo and the examples: present already;
 * else pulled; else imported from the host's static busybox (no registry needed). Returns the image
 * name and how it was had, or the reason when it cannot be had.
 */
export async function ensureDemoImage(): Promise<{ image?: string; how?: string; reason?: string }> {
  if (await hasImage(DEMO_IMAGE)) return { image: DEMO_IMAGE, how: 'present' };
  try {
    await run('docker', ['pull', '-q', DEMO_IMAGE], { timeout: 60_000 });
    return { image: DEMO_IMAGE, how: 'pulled' };
  } catch {
    // no registry reachable: make it from the host's busybox-static
  }
  for (const bin of ['/bin/busybox', '/usr/bin/busybox']) {
    if (!existsSync(bin) || !(await isStatic(bin))) continue;
    const root = mkdtempSync(join(tmpdir(), 'executor-demo-rootfs-'));
    try {
      mkdirSync(join(root, 'bin'));
      for (const d of ['tmp', 'data', 'etc']) mkdirSync(join(root, d));
      writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
      await run('cp', [bin, join(root, 'bin', 'busybox')]);
      const { stdout } = await run(join(root, 'bin', 'busybox'), ['--list']);
      for (const applet of stdout.split('\n').filter(Boolean)) {
        if (applet !== 'busybox') symlinkSync('busybox', join(root, 'bin', applet));
      }
      await run('sh', ['-c', `tar -C "${root}" -c . | docker import -c 'ENV PATH=/bin' - ${DEMO_IMAGE}`], {
        timeout: 120_000,
      });
      return { image: DEMO_IMAGE, how: `imported from ${bin}` };
    } catch {
      // try the next location
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
  return {
    reason:
      'busybox:latest could not be pulled and no static busybox was found to import (apt-get install busybox-static)',
  };
}
