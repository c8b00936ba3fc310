/**
 * `npm pack` makes an installable package: installed into a fresh project with an empty npm cache,
 * its dependencies resolved from a registry on loopback that serves the project's own installed
 * production dependencies (test/helpers/local-registry.ts; no network, nothing from the machine's
 * cache), its `executor` bin works: help, version, and a real job run by `executor up` with the
 * shell runtime.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isCI } from '../helpers/env.js';
import { startLocalRegistry } from '../helpers/local-registry.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const built = existsSync(join(repo, 'dist', 'cli', 'main.js'));
if (!built) {
  if (isCI) throw new Error('dist/ is missing under CI=true: .ci/run builds before testing');
  console.warn('skipping: the npm pack test needs `npm run build` first');
}

describe.skipIf(!built)('npm pack', () => {
  it('installs into a new project with an empty cache and its executor bin runs a job', {
    timeout: 600_000,
  }, async () => {
    const out = mkdtempSync(join(tmpdir(), 'pack-'));
    execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', out], {
      cwd: repo,
      stdio: 'pipe',
    });
    const tgz = readdirSync(out).find((f) => f.endsWith('.tgz'))!;
    expect(tgz).toMatch(/^executor-\d+\.\d+\.\d+\.tgz$/);
    const listing = execFileSync('tar', ['-tzf', join(out, tgz)]).toString();
    expect(listing).toContain('package/dist/cli/main.js');
    expect(listing).toContain('package/README.md');
    // `executor install --vm` runs the asset script, which packs the guest init.
    expect(listing).toContain('package/scripts/vm-assets.sh');
    expect(listing).toContain('package/dist/executor/runtimes/vm/guest/init.sh');
    expect(listing).not.toContain('package/src/');
    expect(listing).not.toContain('package/test/');

    const project = mkdtempSync(join(tmpdir(), 'pack-project-'));
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'uses-executor', private: true, allowScripts: { 'better-sqlite3': true } }),
    );
    const registry = await startLocalRegistry(repo);
    expect(registry.names).toContain('better-sqlite3');
    let install: ReturnType<typeof spawnSync>;
    try {
      // spawnSync would block the registry's event loop: run npm asynchronously.
      install = await spawnAsync(
        'npm',
        [
          'install',
          '--registry',
          registry.url,
          '--cache',
          mkdtempSync(join(tmpdir(), 'pack-cache-')),
          '--no-audit',
          '--no-fund',
          '--omit=dev',
          join(out, tgz),
        ],
        project,
        540_000,
      );
    } finally {
      await registry.close();
    }
    expect(install.status, String(install.stderr)).toBe(0);
    const bin = join(project, 'node_modules', '.bin', 'executor');
    expect(execFileSync(bin, ['--version']).toString().trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const help = execFileSync(bin, ['--help']).toString();
    for (const cmd of ['up', 'run', 'validate', 'server', 'submit', 'jobs', 'logs', 'exec'])
      expect(help).toContain(cmd);
    const up = spawnSync(
      bin,
      [
        'up',
        '--runtime',
        'shell',
        '--exit-after-demo',
        '--listen',
        '127.0.0.1:0',
        '--data',
        join(project, 'data'),
      ],
      {
        cwd: project,
        encoding: 'utf8',
        timeout: 180_000,
        env: { ...process.env, NO_COLOR: '1' },
      },
    );
    expect(up.status, up.stdout + up.stderr).toBe(0);
    expect(up.stdout).toMatch(/Job 1 completed/);
  });
});

/** spawnSync's result shape, without blocking the event loop. */
function spawnAsync(cmd: string, args: string[], cwd: string, timeoutMs: number) {
  return new Promise<ReturnType<typeof spawnSync>>((resolve) => {
    const child = spawn(cmd, args, { cwd, timeout: timeoutMs });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status, signal) =>
      resolve({ pid: child.pid ?? 0, status, signal, stdout, stderr, output: [null, stdout, stderr] }),
    );
  });
}
