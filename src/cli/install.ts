/**
 * `executor install`: writes the systemd unit, environment file, workspace directory and Docker
 * daemon settings of an executor host (see executor/install/install.ts), then checks Docker;
 * `--userns-remap` restarts dockerd (see executor/install/userns-remap.ts); `--vm` builds the VM
 * runtime's guest assets and checks QEMU and KVM (see executor/install/vm-install.ts).
 * Exits 0 when every check passed, 1 when one failed, 2 on bad flags.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Command } from 'commander';
import type Dockerode from 'dockerode';
import { checkRegistryMirrorUrl } from '../config/executor.js';
import {
  DEFAULT_BIN_PATH,
  type DockerFacts,
  ENV_PATH,
  formatInstallResult,
  runInstall,
} from '../executor/install/install.js';
import { daemonRemaps } from '../executor/runtimes/docker/userns.js';
import { errorMessage } from '../lib/errors.js';

interface InstallFlags {
  root: string;
  dryRun?: boolean;
  withGvisor?: boolean;
  registryMirror?: string;
  bin: string;
  runscPath?: string;
  usernsRemap?: boolean;
  vm?: boolean;
}

/**
 * `docker info` through the Engine API (DOCKER_HOST honoured). dockerode is imported on first use:
 * this module is loaded with every CLI command's definition.
 */
export async function dockerFactsFromDaemon(docker?: Dockerode): Promise<DockerFacts> {
  docker ??= new (await import('dockerode')).default();
  const info = (await docker.info()) as {
    ServerVersion?: string;
    RegistryConfig?: { Mirrors?: string[] | null };
    Runtimes?: Record<string, unknown>;
    SecurityOptions?: string[] | null;
    DockerRootDir?: string;
  };
  return {
    version: info.ServerVersion ?? 'unknown',
    mirrors: info.RegistryConfig?.Mirrors ?? [],
    runtimes: Object.keys(info.Runtimes ?? {}),
    usernsRemapped: daemonRemaps(info),
    rootDir: info.DockerRootDir,
  };
}

/** systemd: `systemctl reload docker`; otherwise SIGHUP to the pid in /var/run/docker.pid. */
async function reloadDockerd(): Promise<void> {
  if (existsSync('/run/systemd/system')) {
    await promisify(execFile)('systemctl', ['reload', 'docker']);
    return;
  }
  const pid = Number(readFileSync('/var/run/docker.pid', 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error('no dockerd pid in /var/run/docker.pid');
  process.kill(pid, 'SIGHUP');
}

/**
 * userns-remap takes effect only when dockerd starts. With systemd: `systemctl restart docker`.
 * Without it there is no reliable way to restart a daemon whose command line we do not know, so
 * install says what to do and fails its check (exit 1) until the daemon remaps.
 */
async function restartDockerd(): Promise<void> {
  if (!existsSync('/run/systemd/system')) {
    throw new Error(
      'this host has no systemd; restart dockerd yourself (for example `service docker restart`), then run `executor install --userns-remap` again to check',
    );
  }
  await promisify(execFile)('systemctl', ['restart', 'docker']);
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

export function registerInstallCommand(program: Command): void {
  program
    .command('install')
    .description(
      'Prepare this host for the executor service: systemd unit, environment file, workspace directory, Docker daemon settings, the isolated job network and its firewall rules, with --vm the VM runtime; idempotent',
    )
    .option('--root <dir>', 'Directory standing for / (images, tests)', '/')
    .option('--dry-run', 'Print what would be written and checked; write nothing')
    .option(
      '--with-gvisor',
      "Register gVisor ('runsc') with the Docker daemon and set EXECUTOR_RUNTIME=gvisor",
    )
    .option(
      '--registry-mirror <urls>',
      'Comma-separated registry mirrors for the Docker daemon (and EXECUTOR_DOCKER_REGISTRY_MIRROR_URL)',
    )
    .option('--bin <path>', 'The executor binary the unit starts', DEFAULT_BIN_PATH)
    .option('--runsc-path <path>', 'The runsc binary (default: found on PATH, else /usr/bin/runsc)')
    .option(
      '--userns-remap',
      'Set "userns-remap": "default" in daemon.json and RESTART dockerd (stops running containers; ' +
        'the remapped daemon has its own image store, so images must be pulled or loaded again): ' +
        'root in steps becomes an unprivileged uid on the host. Not with --with-gvisor',
    )
    .option(
      '--vm',
      'Set EXECUTOR_RUNTIME=vm, build the guest kernel and initramfs into EXECUTOR_VM_ASSETS_DIR ' +
        '(as npm run vm-assets does) and check QEMU and /dev/kvm. Not with --with-gvisor',
    )
    .action(async (flags: InstallFlags) => {
      const mirrors: string[] = [];
      for (const part of (flags.registryMirror ?? '').split(',')) {
        if (part.trim() === '') continue;
        const r = checkRegistryMirrorUrl(part);
        if (!r.ok) {
          process.stderr.write(`--registry-mirror: ${r.problem}\n`);
          process.exitCode = 2;
          return;
        }
        if (!mirrors.includes(r.url)) mirrors.push(r.url);
      }
      if (flags.usernsRemap && flags.withGvisor) {
        process.stderr.write(
          '--userns-remap: runsc does not start sandboxes on a daemon that remaps user namespaces; choose one\n',
        );
        process.exitCode = 2;
        return;
      }
      if (flags.vm && flags.withGvisor) {
        process.stderr.write('--vm: the runtime is either vm or gvisor; choose one\n');
        process.exitCode = 2;
        return;
      }
      if (!path.isAbsolute(flags.bin)) {
        process.stderr.write('--bin: must be an absolute path\n');
        process.exitCode = 2;
        return;
      }
      try {
        const result = await runInstall({
          root: path.resolve(flags.root),
          dryRun: flags.dryRun === true,
          withGvisor: flags.withGvisor === true,
          registryMirrors: mirrors,
          binPath: flags.bin,
          runscPath: flags.runscPath ?? findOnPath('runsc') ?? '/usr/bin/runsc',
          env: process.env,
          dockerFacts: () => dockerFactsFromDaemon(),
          reloadDocker: reloadDockerd,
          usernsRemap: flags.usernsRemap === true,
          restartDocker: restartDockerd,
          vm: flags.vm === true,
        });
        for (const line of formatInstallResult(result, flags.dryRun === true)) {
          process.stdout.write(`${line}\n`);
        }
        if (!result.ok) process.exitCode = 1;
        // The firewall is the real host's: never touched for an image directory (--root).
        if (path.resolve(flags.root) === '/') {
          const { installJobNetwork } = await import('../executor/install/job-network-install.js');
          const net = await installJobNetwork(ENV_PATH, process.env, flags.dryRun === true);
          for (const line of net.lines) process.stdout.write(`${line}\n`);
          if (!net.ok) process.exitCode = 1;
        }
        if (flags.vm) {
          const { installVm } = await import('../executor/install/vm-install.js');
          const root = path.resolve(flags.root);
          const vm = await installVm({
            root,
            envPath: path.join(root, ENV_PATH),
            env: process.env,
            dryRun: flags.dryRun === true,
          });
          for (const line of vm.lines) process.stdout.write(`${line}\n`);
          if (!vm.ok) process.exitCode = 1;
        }
      } catch (e) {
        process.stderr.write(`install failed: ${errorMessage(e)}\n`);
        process.exitCode = 1;
      }
    });
}
