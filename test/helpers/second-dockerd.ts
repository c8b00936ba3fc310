/**
 * A second Docker daemon for tests that need a daemon configured differently from the host's (which
 * is shared and never reconfigured): its own data root, exec root, pid file and Unix socket under a
 * temporary directory, its own bridge, no iptables rules, and every setting on its command line
 * (`--config-file` is a JSON file of its own, `{}` by default, so /etc/docker/daemon.json is not read).
 *
 * Not `--bridge=none`: a daemon started that way deletes the host's docker0, which breaks the host
 * daemon's bridge networking. Steps on this daemon should run with network `none`. Neither iptables
 * nor ip6tables rules are written (`--ip6tables` defaults to true from Docker 27 on).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitFor } from './env.js';

export interface SecondDockerd {
  /** `unix://<socket>`, for DOCKER_HOST or `docker -H`. */
  host: string;
  dir: string;
  /** `docker -H <host> <args...>`; returns stdout. */
  docker(args: string[], input?: Buffer): string;
  output(): string;
  /** Removes its containers, stops it, deletes its bridge and directory. Idempotent. */
  stop(): Promise<void>;
}

export interface SecondDockerdStorage {
  /**
   * The daemon's data root, default `<dir>/data`. One given here (a file system the test mounted)
   * is created if missing and left in place by stop(): its owner unmounts and removes it.
   */
  dataRoot?: string;
  /** Default `vfs`, which runs on any file system (also inside an overlay). */
  storageDriver?: string;
}

/**
 * `extraArgs` are added to dockerd's command line; `config` is its daemon.json (default `{}`), for
 * settings that have no flag (a runtime's arguments); `storage` places its images and containers.
 */
export async function startSecondDockerd(
  extraArgs: string[],
  name: string,
  config: Record<string, unknown> = {},
  storage: SecondDockerdStorage = {},
): Promise<SecondDockerd> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  // Under --userns-remap dockerd refuses a data root whose parents the remapped root cannot search.
  chmodSync(dir, 0o711);
  const bridge = `${name.slice(0, 6)}${process.pid % 100000}`;
  const socket = path.join(dir, 'docker.sock');
  const host = `unix://${socket}`;
  const configFile = path.join(dir, 'daemon.json');
  const dataRoot = storage.dataRoot ?? path.join(dir, 'data');
  writeFileSync(configFile, `${JSON.stringify(config)}\n`);
  let out = '';
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let bridgeMade = false;

  const docker = (args: string[], input?: Buffer): string =>
    execFileSync('docker', ['-H', host, ...args], { stdio: 'pipe', input, timeout: 120_000 }).toString();

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        try {
          const ids = docker(['ps', '-aq']).split('\n').filter(Boolean);
          if (ids.length > 0) docker(['rm', '-f', ...ids]);
        } catch {
          // the daemon is going away with its data root anyway
        }
        child.kill('SIGTERM');
        const timer = setTimeout(() => child?.kill('SIGKILL'), 30_000);
        await exited;
        clearTimeout(timer);
      }
      if (bridgeMade) {
        try {
          execFileSync('ip', ['link', 'delete', bridge], { stdio: 'pipe' });
        } catch {
          // already gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  try {
    execFileSync('ip', ['link', 'add', bridge, 'type', 'bridge'], { stdio: 'pipe' });
    bridgeMade = true;
    mkdirSync(dataRoot, { recursive: true });
    child = spawn(
      'dockerd',
      [
        '--config-file',
        configFile,
        '--data-root',
        dataRoot,
        '--exec-root',
        path.join(dir, 'exec'),
        '--pidfile',
        path.join(dir, 'docker.pid'),
        '-H',
        host,
        `--bridge=${bridge}`,
        '--iptables=false',
        '--ip6tables=false',
        '--ip-masq=false',
        `--storage-driver=${storage.storageDriver ?? 'vfs'}`,
        ...extraArgs,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (d: Buffer) => {
      out = (out + d.toString()).slice(-20_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const c = child;
    exited = new Promise<void>((resolve) => c.on('exit', () => resolve()));
    await waitFor(
      () => {
        if (c.exitCode !== null) return Promise.reject(new Error(`dockerd exited:\n${out}`));
        if (!existsSync(socket)) return false;
        try {
          docker(['version']);
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 90_000, intervalMs: 250, what: `the second dockerd (${name})` },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { host, dir, docker, output: () => out, stop };
}
