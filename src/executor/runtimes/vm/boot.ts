/**
 * Boots one step's microVM and talks to its init (guest/init.sh) until the step has ended: the host
 * listens on three Unix sockets, QEMU connects to them as the `out`, `err` and `ctl` consoles, the
 * host sends the step's description on `ctl`, streams `out` and `err` into the log entry, and reads
 * the exit line. The VM is killed (SIGKILL) as soon as the exit line and both end marks are in, on
 * abort at once, and in any case before bootStep() settles: no VM outlives the call.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { errorMessage } from '../../../lib/errors.js';
import {
  type GuestAnswer,
  type GuestDiskFree,
  PORTS,
  type PortName,
  parseGuestAnswer,
  qemuArgv,
  type VmSettings,
} from './convert.js';
import { MarkStream } from './mark-stream.js';

/** util-linux's nsenter, on PATH. */
export const NSENTER = 'nsenter';
/** Unix socket paths are limited to 107 bytes (sun_path). */
const MAX_SOCKET_PATH = 107;
/** Kept of QEMU's own stderr (qemu.log) for an error message. */
const MAX_QEMU_STDERR = 4096;
/** Kept of the guest console's tail for an error message. */
const CONSOLE_TAIL = 2000;

export interface BootInput {
  settings: VmSettings;
  /** Directory of this step's sockets, pid file and console log (created). */
  runDir: string;
  name: string;
  rootDisk: string;
  workspaceDisk: string;
  /**
   * The network namespace QEMU runs in (network.ts), with a NIC on user-mode networking; without
   * it the VM has no network device.
   */
  netns?: string;
  /** What init.sh reads: the spec and its environment (see stepDescription). */
  describe(mark: string): Buffer;
  /** Receives the step's output, stdout and stderr apart (to the redacting log entry). */
  write(stream: 'stdout' | 'stderr', chunk: Buffer): void;
  signal: AbortSignal;
}

export interface BootResult {
  exitCode: number;
  disk?: GuestDiskFree;
}

/** Boots the VM, runs the step, kills the VM. Rejects with the abort reason when aborted. */
export async function bootStep(input: BootInput): Promise<BootResult> {
  const { signal } = input;
  if (signal.aborted) throw signal.reason;
  await mkdir(input.runDir, { recursive: true, mode: 0o700 });
  const sockets = Object.fromEntries(PORTS.map((p) => [p, path.join(input.runDir, `${p}.sock`)])) as Record<
    PortName,
    string
  >;
  if (sockets.ctl.length > MAX_SOCKET_PATH) {
    throw new Error(
      `the VM's socket path ${sockets.ctl} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter EXECUTOR_WORKSPACE_ROOT`,
    );
  }
  const consoleLog = path.join(input.runDir, 'console.log');
  const pidFile = path.join(input.runDir, 'qemu.pid');
  const qemuLog = path.join(input.runDir, 'qemu.log');
  const mark = randomBytes(24).toString('hex');

  const servers: net.Server[] = [];
  const conns: net.Socket[] = [];
  try {
    const streams = {
      out: new MarkStream(mark, (b) => input.write('stdout', b)),
      err: new MarkStream(mark, (b) => input.write('stderr', b)),
    };
    let answer: GuestAnswer | undefined;
    let settle: () => void = () => {};
    const allIn = new Promise<void>((r) => (settle = r));
    const check = () => {
      if (answer && ('error' in answer || (streams.out.ended && streams.err.ended))) settle();
    };

    for (const p of PORTS) {
      const server = net.createServer((sock) => {
        conns.push(sock);
        sock.on('error', () => {});
        if (p === 'ctl') {
          sock.write(input.describe(mark));
          let text = '';
          sock.on('data', (b: Buffer) => {
            text += b.toString('utf8');
            const nl = text.indexOf('\n');
            if (nl >= 0 && !answer) {
              answer = parseGuestAnswer(text.slice(0, nl)) ?? {
                error: `unexpected answer: ${text.slice(0, nl)}`,
              };
              check();
            }
          });
        } else {
          const s = streams[p];
          sock.on('data', (b: Buffer) => {
            s.write(b);
            if (s.ended) check();
          });
        }
      });
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(sockets[p], () => resolve());
      });
    }

    const qemu = qemuArgv({
      settings: input.settings,
      rootDisk: input.rootDisk,
      workspaceDisk: input.workspaceDisk,
      sockets,
      consoleLog,
      pidFile,
      name: input.name,
      network: input.netns !== undefined,
    });
    // nsenter (util-linux) joins the namespace and execs QEMU without forking: the child is QEMU.
    const argv = input.netns ? [NSENTER, `--net=${input.netns}`, '--', ...qemu] : qemu;
    // QEMU's stderr goes to a file, not a pipe: a VM must not depend on this process to live (its
    // end is the janitor's business after a crash), nor die of SIGPIPE on a warning.
    const qemuLogFd = openSync(qemuLog, 'a', 0o600);
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', qemuLogFd] });
    } finally {
      closeSync(qemuLogFd);
    }
    const exited = new Promise<{ code: number | null; error?: Error }>((resolve) => {
      child.once('error', (error) => resolve({ code: null, error }));
      child.once('exit', (code) => resolve({ code }));
    });
    const kill = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const aborted = new Promise<'aborted'>((resolve) => {
      if (signal.aborted) resolve('aborted');
      signal.addEventListener('abort', () => resolve('aborted'), { once: true });
    });

    try {
      const first = await Promise.race([allIn.then(() => 'answered' as const), exited, aborted]);
      if (first === 'aborted') throw signal.reason;
      if (first !== 'answered') {
        // QEMU ended first: whatever reached the sockets is the output.
        streams.out.flush();
        streams.err.flush();
        if (first.error) throw new Error(`cannot start ${argv[0]}: ${first.error.message}`);
        // The guest waits to be killed after its answer, so an answer without both marks means
        // output was lost on the way: an error, never a silently shortened log.
        const why =
          answer && 'error' in answer
            ? `the guest init failed: ${answer.error}`
            : answer
              ? `the VM ended before all of the step's output arrived (exit code ${answer.exitCode})`
              : 'the VM ended before the step did';
        throw new Error(`${why}${await diagnostics(qemuLog, consoleLog)}`);
      }
      if (answer && 'error' in answer) throw new Error(`the guest init failed: ${answer.error}`);
      return answer as Exclude<GuestAnswer, { error: string }>;
    } finally {
      kill();
      await exited;
    }
  } finally {
    for (const c of conns) c.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

async function diagnostics(qemuLog: string, consoleLog: string): Promise<string> {
  const parts: string[] = [];
  const stderr = (await readFile(qemuLog, 'utf8').catch(() => '')).slice(0, MAX_QEMU_STDERR).trim();
  if (stderr) parts.push(`qemu: ${stderr}`);
  try {
    const tail = (await readFile(consoleLog, 'utf8')).slice(-CONSOLE_TAIL).trim();
    if (tail) parts.push(`guest console: ${tail}`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') parts.push(`guest console: ${errorMessage(err)}`);
  }
  return parts.length > 0 ? ` (${parts.join('; ')})` : '';
}
