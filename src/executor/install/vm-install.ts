/**
 * `executor install --vm`: what EXECUTOR_RUNTIME=vm needs of a host, with the settings the service
 * will run with (the environment file over the installer's environment, as job-network-install.ts):
 *   - the guest assets: scripts/vm-assets.sh, the script of `npm run vm-assets` (it does nothing
 *     when the assets of the current kernel package and init are there), builds them into
 *     EXECUTOR_VM_ASSETS_DIR, under `--root` when one is given;
 *   - QEMU: EXECUTOR_VM_QEMU runs;
 *   - KVM: /dev/kvm can be opened and QEMU boots the guest kernel with it. Without it the runtime refuses to start unless
 *     EXECUTOR_VM_ALLOW_EMULATION=true; install reports which, and never sets that variable.
 * One line per outcome: `✓` done or present, `✗` missing with what to do, `-` not done (dry run).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VM_ENV } from '../../config/executor/vm-config.js';
import { readBool } from '../../config/parsers.js';
import { errorMessage } from '../../lib/errors.js';
import { kvmWorks, qemuVersion } from '../runtimes/vm/host.js';
import { parseEnvFile } from './env-file.js';

/**
 * The asset script, where the package has it (`files` in package.json ships it with the guest
 * init): two levels above this module in both src/ and dist/. A single-file binary has none.
 */
export const VM_ASSETS_SCRIPT = fileURLToPath(new URL('../../../scripts/vm-assets.sh', import.meta.url));

/** Downloading the kernel package and packing the initramfs; minutes on a slow mirror. */
const BUILD_TIMEOUT_MS = 15 * 60_000;
/** Kept of the script's output for a failure's line. */
const MAX_OUTPUT = 4000;

export interface VmInstallDeps {
  /** Runs the asset script with EXECUTOR_VM_ASSETS_DIR=dir; resolves with its output lines. */
  buildAssets(dir: string): Promise<string[]>;
  qemuVersion(qemu: string): Promise<string>;
  /** Whether VMs can run with KVM: QEMU boots `kernel` with it (host.ts kvmWorks). */
  kvm(qemu: string, kernel: string): Promise<{ ok: boolean; why?: string }>;
}

export interface VmInstallOptions {
  /** Directory standing for `/` (`--root`). */
  root: string;
  /** The service's environment file (under root). */
  envPath: string;
  /** The installer's environment. */
  env: Record<string, string | undefined>;
  dryRun: boolean;
}

/** Runs scripts/vm-assets.sh; rejects with its output when it fails or is not there. */
export function runAssetScript(dir: string, script = VM_ASSETS_SCRIPT): Promise<string[]> {
  if (!existsSync(script)) {
    return Promise.reject(
      new Error(
        `the asset script is not installed with this executor (no ${script}; a single-file binary has none): run \`npm run vm-assets\` in a checkout of the same version with EXECUTOR_VM_ASSETS_DIR=${dir}`,
      ),
    );
  }
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [script],
      { env: { ...process.env, EXECUTOR_VM_ASSETS_DIR: dir }, timeout: BUILD_TIMEOUT_MS, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        const lines = `${stdout}${stderr}`.split('\n').filter((l) => l.trim() !== '');
        if (err) reject(new Error(lines.join('\n').slice(-MAX_OUTPUT) || errorMessage(err)));
        else resolve(lines);
      },
    );
  });
}

export const DEFAULT_VM_INSTALL_DEPS: VmInstallDeps = {
  buildAssets: (dir) => runAssetScript(dir),
  qemuVersion,
  kvm: (qemu, kernel) => kvmWorks(qemu, kernel),
};

/** A setting as the service will read it: the env file's, else the installer's, else the default. */
function setting(
  merged: Record<string, string | undefined>,
  name: 'EXECUTOR_VM_ASSETS_DIR' | 'EXECUTOR_VM_QEMU',
): { value: string; problem?: string } {
  const decl = VM_ENV[name];
  const text = merged[name] || decl.default;
  const parsed = decl.parse.safeParse(text);
  return parsed.success
    ? { value: text }
    : { value: text, problem: `${name}=${text}: ${parsed.error.issues[0]?.message ?? 'invalid'}` };
}

/** Builds the assets and checks QEMU and KVM; one line per outcome, and whether nothing failed. */
export async function installVm(
  opts: VmInstallOptions,
  deps: VmInstallDeps = DEFAULT_VM_INSTALL_DEPS,
): Promise<{ ok: boolean; lines: string[] }> {
  const fileText = await readFile(opts.envPath, 'utf8').catch(() => '');
  const merged = { ...opts.env, ...Object.fromEntries(parseEnvFile(fileText)) };
  const lines: string[] = [];
  let ok = true;
  const fail = (line: string) => {
    ok = false;
    lines.push(`✗ ${line}`);
  };

  const assets = setting(merged, 'EXECUTOR_VM_ASSETS_DIR');
  const dir = path.join(opts.root, assets.value);
  if (assets.problem) {
    fail(`vm assets: ${assets.problem}`);
  } else if (opts.dryRun) {
    lines.push(`- vm assets: would build the guest kernel and initramfs in ${dir} (scripts/vm-assets.sh)`);
  } else {
    try {
      const out = await deps.buildAssets(dir);
      for (const l of out) lines.push(`  ${l}`);
      lines.push(`✓ vm assets: the guest kernel and initramfs are in ${dir}`);
    } catch (e) {
      fail(
        `vm assets: building them in ${dir} failed: ${errorMessage(e)}. Fix: run as root on Debian 12 with busybox-static, cpio and access to the Debian archive (docs/operating.md, "The vm runtime")`,
      );
    }
  }

  const qemu = setting(merged, 'EXECUTOR_VM_QEMU');
  try {
    lines.push(`✓ qemu: ${qemu.value}: ${await deps.qemuVersion(qemu.value)}`);
  } catch (e) {
    fail(
      `qemu: ${qemu.value} does not run (${errorMessage(e).split('\n')[0]}). Fix: apt-get install qemu-system-x86, or set EXECUTOR_VM_QEMU`,
    );
  }

  const kvm = await deps.kvm(qemu.value, path.join(dir, 'vmlinuz'));
  if (kvm.ok) {
    lines.push(
      '✓ kvm: /dev/kvm is usable and a guest kernel boots with it: VMs run with hardware virtualisation',
    );
  } else if (readBool(merged.EXECUTOR_VM_ALLOW_EMULATION) === true) {
    lines.push(
      `✓ kvm: ${kvm.why}; EXECUTOR_VM_ALLOW_EMULATION=true: VMs are EMULATED, for tests and trials only`,
    );
  } else {
    fail(
      `kvm: ${kvm.why}; the executor will not start with EXECUTOR_RUNTIME=vm. Fix: enable KVM (docs/operating.md, "The vm runtime"), or set EXECUTOR_VM_ALLOW_EMULATION=true for tests and trials`,
    );
  }
  return { ok, lines };
}
