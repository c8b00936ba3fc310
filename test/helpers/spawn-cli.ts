/**
 * Runs the real `executor` command (from source, through tsx) as a child process, for tests that
 * need separate processes: kill -9, SIGSTOP, several server replicas or executors.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI_ENTRY = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface CliProcess {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or the signal name) when the process ends. */
  exited: Promise<number | string>;
}

export function spawnCli(args: string[], env: Record<string, string | undefined> = {}): CliProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI_ENTRY, ...args], {
    env: { ...process.env, EXECUTOR_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1));
  });
  return { child, output: () => out, exited };
}

/**
 * `executor server` on a free loopback port with its data in `dataDir`, once it listens: the
 * process, its URL and its start log line (`queue server listening url=... maxFds=...`).
 */
export async function spawnServer(
  dataDir: string,
  env: Record<string, string | undefined>,
): Promise<{ cli: CliProcess; url: string; line: string }> {
  const cli = spawnCli(['server', '--listen', '127.0.0.1:0', '--data', dataDir], env);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const line = /queue server listening .*/.exec(cli.output())?.[0];
    if (line) return { cli, url: /url=(\S+)/.exec(line)![1]!, line };
    if (cli.child.exitCode !== null) throw new Error(`the server exited: ${cli.output().slice(-800)}`);
    if (Date.now() > deadline) throw new Error('timed out waiting for the server to listen');
    await new Promise((r) => setTimeout(r, 25));
  }
}
