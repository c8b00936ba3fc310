/**
 * The README's quickstart, run verbatim: every `npx executor ...` line of the Quickstart section's
 * shell blocks, in order, in a fresh directory where `npx executor` resolves to this package's built
 * CLI (as after `npm ci && npm run build`, which .ci/run runs verbatim before the tests). `executor
 * up` runs in the background; the `export` line it prints is applied to the later commands.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { isCI, waitFor } from './helpers/env.js';

const repo = fileURLToPath(new URL('..', import.meta.url));
const cli = join(repo, 'dist', 'cli', 'main.js');
const built = existsSync(cli);
if (!built) {
  if (isCI) throw new Error('dist/cli/main.js is missing under CI=true: .ci/run builds before testing');
  console.warn('skipping: the README quickstart test needs `npm run build` first');
}

/** The commands of the Quickstart section's sh blocks, one per line, comments and npm lines dropped. */
function quickstartCommands(readme: string): string[] {
  const section = readme.split(/^## /m).find((s) => s.startsWith('Quickstart'));
  if (!section) throw new Error('README has no Quickstart section');
  const cmds: string[] = [];
  for (const m of section.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const raw of m[1]!.split('\n')) {
      const line = raw.replace(/\s+#.*$/, '').trim();
      if (line && !line.startsWith('npm ')) cmds.push(line);
    }
  }
  return cmds;
}

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

describe.skipIf(!built)('README quickstart, verbatim', () => {
  const dir = mkdtempSync(join(tmpdir(), 'readme-'));
  const children: ChildProcess[] = [];
  const baseEnv: Record<string, string> = {
    ...(process.env as Record<string, string>),
    EXECUTOR_SERVER_LISTEN: '127.0.0.1:0',
    npm_config_yes: 'true',
    NO_COLOR: '1',
  };
  delete baseEnv.EXECUTOR_SERVER_URL;
  delete baseEnv.EXECUTOR_SERVER_API_TOKEN;

  afterAll(() => {
    // Each command runs in its own process group: end the shell and everything it started.
    for (const c of children) {
      try {
        if (c.pid) process.kill(-c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  const sh = (cmd: string, env: Record<string, string>, background = false) => {
    const child = spawn('sh', ['-c', cmd], {
      cwd: dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise<number>((r) => child.on('exit', (code) => r(code ?? -1)));
    return { child, output: () => plain(out), exited, background };
  };

  it('runs every quickstart command and each succeeds', { timeout: 420_000 }, async () => {
    // A project directory where `npx executor` is this package, with the examples beside it.
    mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
    symlinkSync(cli, join(dir, 'node_modules', '.bin', 'executor'));
    symlinkSync(join(repo, 'examples'), join(dir, 'examples'));

    const cmds = quickstartCommands(readFileSync(join(repo, 'README.md'), 'utf8'));
    expect(cmds[0]).toBe('npx executor up');
    expect(cmds.length).toBeGreaterThanOrEqual(4);
    let env = { ...baseEnv };
    for (const cmd of cmds) {
      if (cmd === 'npx executor up') {
        const up = sh(cmd, env, true);
        await waitFor(() => /Job 1 (completed|failed|canceled)/.test(up.output()), {
          timeoutMs: 180_000,
          what: `the demo job of "${cmd}"`,
        });
        expect(up.output()).toContain('Job 1 completed');
        // The two export lines it printed, each pasted as it is.
        const exports = ['EXECUTOR_SERVER_URL', 'EXECUTOR_SERVER_API_TOKEN'].map(
          (name) => new RegExp(`^\\s*export (${name}=\\S+)$`, 'm').exec(up.output())?.[1],
        );
        expect(exports.every(Boolean)).toBe(true);
        env = { ...env };
        for (const kv of exports as string[]) {
          const i = kv.indexOf('=');
          env[kv.slice(0, i)] = kv.slice(i + 1);
        }
        continue;
      }
      const r = sh(cmd, env);
      const code = await r.exited;
      expect(code, `${cmd}\n${r.output()}`).toBe(0);
    }
  });
});
