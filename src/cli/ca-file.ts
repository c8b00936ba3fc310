/**
 * `--ca-file FILE` / EXECUTOR_FRONTEND_CA_FILE: a CA (PEM) that executors and the CLI trust for the
 * queue server's certificate, besides the system's.
 *
 * Node 20 reads extra CAs only at start (NODE_EXTRA_CA_CERTS) and fetch takes no per-call CA, so
 * the command runs itself again, once, with NODE_EXTRA_CA_CERTS naming the file (or a bundle of it
 * and an extra CA file already configured). Signals are passed on to that process, exactly once
 * each (it runs in its own process group), and its exit code is this one's. Every connection of the process (queue client, files, git proxy, the CLI's
 * user-API calls) then trusts the CA.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const APPLIED = 'EXECUTOR_CA_FILE_APPLIED';

/** Removes `--ca-file X` / `--ca-file=X` from args (any position); returns X. */
export function takeCaFileFlag(args: string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') break;
    if (a === '--ca-file' && i + 1 < args.length) {
      value = args[i + 1];
      args.splice(i, 2);
      i--;
    } else if (a.startsWith('--ca-file=')) {
      value = a.slice('--ca-file='.length);
      args.splice(i, 1);
      i--;
    }
  }
  return value;
}

/**
 * Called by main before commander parses `args` (which it edits). Returns true when the command
 * runs in a child process with the CA applied: the caller then does nothing more.
 */
export function relaunchWithCaFile(args: string[]): boolean {
  const flag = takeCaFileFlag(args);
  const file = flag ?? process.env.EXECUTOR_FRONTEND_CA_FILE;
  if (!file) return false;
  const abs = path.resolve(file);
  if (process.env[APPLIED] === abs) return false;
  const source = flag !== undefined ? '--ca-file' : 'EXECUTOR_FRONTEND_CA_FILE';
  const pem = existsSync(abs) ? readFileSync(abs, 'utf8') : undefined;
  if (pem === undefined || !pem.includes('-----BEGIN CERTIFICATE-----')) {
    process.stderr.write(
      `error: ${source} ${abs}: ${pem === undefined ? 'no such file' : 'not a PEM certificate file (no BEGIN CERTIFICATE)'}\n`,
    );
    process.exitCode = 2;
    return true;
  }
  let bundle = abs;
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  if (extra && path.resolve(extra) !== abs && existsSync(extra)) {
    bundle = path.join(mkdtempSync(path.join(os.tmpdir(), 'executor-ca-')), 'bundle.pem');
    writeFileSync(bundle, `${readFileSync(extra, 'utf8').trim()}\n${pem.trim()}\n`);
  }
  // A single-file build runs as its own executable: there is no script argument to repeat.
  const script =
    process.argv[1] && path.resolve(process.argv[1]) !== process.execPath ? [process.argv[1]] : [];
  // Its own process group: a terminal's Ctrl-C (sent to the foreground group) reaches this process
  // only, which passes it on once; a second copy would turn an executor's drain into an abort.
  // (The systemd units use KillMode=mixed for the same reason.)
  const child = spawn(process.execPath, [...process.execArgv, ...script, ...args], {
    stdio: 'inherit',
    detached: true,
    env: { ...process.env, NODE_EXTRA_CA_CERTS: bundle, EXECUTOR_FRONTEND_CA_FILE: abs, [APPLIED]: abs },
  });
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT'] as const) {
    process.on(sig, () => child.kill(sig));
  }
  child.on('exit', (code, signal) => {
    process.exitCode = code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1);
  });
  return true;
}
