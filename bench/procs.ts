/**
 * Child processes for the memory and CPU figures: the real CLI and a bare Node process. Memory is
 * measured on compiled JavaScript, as the package ships it (dist/), not under the tsx loader,
 * which alone adds about 30 MiB: src/ is transpiled once per run into bench/results/build/
 * (esbuild, the transpiler tsx itself uses; no bundling, one .js per .ts, like tsc's output).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BUILD = path.join(ROOT, 'bench', 'results', 'build');
let built = false;

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

/** Path of the compiled CLI entry (dist/cli/main.js of a fresh build). */
export function compiledCli(): string {
  if (!built) {
    rmSync(BUILD, { recursive: true, force: true });
    mkdirSync(BUILD, { recursive: true });
    cpSync(path.join(ROOT, 'src'), path.join(BUILD, 'dist'), { recursive: true });
    copyFileSync(path.join(ROOT, 'package.json'), path.join(BUILD, 'package.json'));
    execFileSync(
      path.join(ROOT, 'node_modules', '.bin', 'esbuild'),
      [
        ...tsFiles(path.join(ROOT, 'src')),
        `--outdir=${path.join(BUILD, 'dist')}`,
        `--outbase=${path.join(ROOT, 'src')}`,
        '--format=esm',
        '--platform=node',
        '--target=node20',
        '--log-level=warning',
      ],
      { stdio: 'inherit' },
    );
    built = true;
  }
  return path.join(BUILD, 'dist', 'cli', 'main.js');
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  output(): string;
  stop(): Promise<void>;
}

/**
 * `node [--import tsx] args`: TypeScript files need the loader, compiled ones do not. With `ipc`,
 * the child has Node's message channel to this process (`child.send`, `process.send`).
 */
export function spawnNode(
  args: string[],
  env: Record<string, string | undefined> = {},
  opts: { ipc?: boolean } = {},
): Proc {
  const loader = args[0]?.endsWith('.ts') ? ['--import', 'tsx'] : [];
  // BENCH_CHILD_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/some/dir") profiles the children.
  const extra = (process.env.BENCH_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...extra, ...loader, ...args], {
    env: { ...process.env, ...env },
    stdio: opts.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  return asProc(child);
}

/** The handle of a started child: its output so far, and a stop that waits for its exit. */
function asProc(child: ChildProcess): Proc {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  return {
    child,
    pid: child.pid!,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

/** Any program (a compiled measuring stick, say), with the same handle as spawnNode's. */
export function spawnProgram(file: string, args: string[] = []): Proc {
  return asProc(spawn(file, args, { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] }));
}

export const spawnCli = (args: string[], env: Record<string, string | undefined>) =>
  spawnNode([compiledCli(), ...args], env);

/** A Node process that does nothing: the runtime's own floor. */
export const spawnIdleNode = () => spawnNode(['-e', 'setInterval(() => {}, 1 << 30)']);
