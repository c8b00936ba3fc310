/**
 * Pure conversion of one docker step into the QEMU command line of its microVM, the description the
 * guest init reads (guest/init.sh), and the parsing of what the guest answers. No I/O here: the
 * caller passes paths, the KVM verdict and the host's TSC frequency, so every rule has a unit test.
 *
 * The monitor is a detail of this file: the guest needs a kernel and initramfs, two disks (the
 * image's root read-only, the workspace read-write) and three virtio consoles named `out`, `err` and
 * `ctl`. Another monitor with the same devices (Firecracker: virtio-mmio block devices and a vsock
 * in place of the consoles) would need only another `qemuArgv`.
 */
import { parseSizeBytes } from '../../../lib/duration.js';
import type { RunSpec } from '../types.js';
import type { ImageUser } from './image-user.js';

/** Where the workspace disk is mounted in the guest: the same path as in docker steps. */
export const GUEST_WORKSPACE = '/data';

/** Memory of a VM when EXECUTOR_JOB_MEMORY is 0 (no limit): a VM needs a size. */
export const DEFAULT_VM_MEMORY_MIB = 2048;
/** The least memory given to a VM: the guest kernel, its initramfs and the step's overlay need room. */
export const MIN_VM_MEMORY_MIB = 128;

/** Virtio console names, in the order of their devices. */
export const PORTS = ['out', 'err', 'ctl'] as const;
export type PortName = (typeof PORTS)[number];

export interface VmSettings {
  /** The QEMU binary (EXECUTOR_VM_QEMU). */
  qemu: string;
  /** Directory of `vmlinuz` and `initramfs.img` (EXECUTOR_VM_ASSETS_DIR). */
  assetsDir: string;
  /** Use KVM (`/dev/kvm` usable); otherwise TCG emulation. */
  kvm: boolean;
  /** vCPUs (EXECUTOR_JOB_NUM_CPUS, at least 1). */
  cpus: number;
  memoryMiB: number;
  /**
   * The host's TSC frequency in kHz, given to the guest under TCG: the emulated CPU reads the host's
   * TSC, and without a reference timer (microvm has no HPET and no PIT channel 2 gate) the guest
   * cannot calibrate it and hangs with its clock stopped at 0. Unused with KVM (kvmclock).
   */
  tscKhz?: number;
}

export interface VmInput {
  settings: VmSettings;
  /** The image's root file system (ext4, attached read-only). */
  rootDisk: string;
  /** The job's workspace disk (ext4). */
  workspaceDisk: string;
  /** Unix socket paths the host listens on, one per port; QEMU connects to them. */
  sockets: Record<PortName, string>;
  /** Kernel console output (for diagnosing a guest that does not answer). */
  consoleLog: string;
  /** Written by QEMU, read by the janitor. */
  pidFile: string;
  /** `-name` of the VM: the janitor finds VMs by it (vmName). */
  name: string;
  /**
   * A NIC on QEMU's user-mode network (network.ts: QEMU runs in the holder's namespace); without
   * it the VM has no network device.
   */
  network?: boolean;
}

/**
 * The guest's side of the user-mode network: slirp's fixed addresses (QEMU's defaults), configured
 * statically by the guest init. IPv4 only: the job networks have no IPv6.
 */
export const GUEST_NET = { address: '10.0.2.15/24', gateway: '10.0.2.2' } as const;

/** The VM's name: `executor-<executor>-<jobUid>-<step>` sanitised for QEMU's `-name`. */
export function vmName(executorName: string, jobUid: string, stepIndex: number): string {
  return `executor-${executorName}-${jobUid}-${stepIndex}`.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** EXECUTOR_JOB_MEMORY in MiB for a VM: rounded down, at least MIN_VM_MEMORY_MIB; `0` -> the default. */
export function memoryMiB(memory: string): number {
  const bytes = parseSizeBytes(memory.trim() || '0') ?? 0;
  if (bytes <= 0) return DEFAULT_VM_MEMORY_MIB;
  return Math.max(MIN_VM_MEMORY_MIB, Math.floor(bytes / (1024 * 1024)));
}

/** The guest kernel's command line. */
export function kernelCmdline(s: VmSettings): string {
  // reboot=t: a triple fault ends the VM at once (-no-reboot makes QEMU exit on it); panic=-1:
  // a panicking guest reboots, so it ends too. quiet: the console is a file read only on failure.
  const args = ['console=ttyS0', 'reboot=t', 'panic=-1', 'quiet'];
  if (!s.kvm && s.tscKhz) args.push(`tsc_early_khz=${s.tscKhz}`);
  return args.join(' ');
}

export function qemuArgv(input: VmInput): string[] {
  const { settings: s } = input;
  const argv = [
    s.qemu,
    '-name',
    input.name,
    '-M',
    // PIT and PIC for the guest's timer under TCG; ACPI (the default) describes the virtio-mmio devices.
    s.kvm ? 'microvm,rtc=on' : 'microvm,rtc=on,pit=on,pic=on',
    '-accel',
    s.kvm ? 'kvm' : 'tcg',
    '-cpu',
    s.kvm ? 'host' : 'max',
    '-smp',
    String(Math.max(1, s.cpus)),
    '-m',
    `${s.memoryMiB}M`,
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-no-reboot',
    '-pidfile',
    input.pidFile,
    '-kernel',
    `${s.assetsDir}/vmlinuz`,
    '-initrd',
    `${s.assetsDir}/initramfs.img`,
    '-append',
    kernelCmdline(s),
    '-serial',
    `file:${input.consoleLog}`,
    '-drive',
    `id=root,file=${input.rootDisk},format=raw,if=none,readonly=on`,
    '-device',
    'virtio-blk-device,drive=root',
    '-drive',
    `id=ws,file=${input.workspaceDisk},format=raw,if=none,cache=writeback`,
    '-device',
    'virtio-blk-device,drive=ws',
    '-device',
    'virtio-serial-device,max_ports=4',
  ];
  for (const p of PORTS) {
    argv.push('-chardev', `socket,id=${p},path=${input.sockets[p]}`);
    argv.push('-device', `virtserialport,chardev=${p},name=${p}`);
  }
  // Without it (-nodefaults) there is no network device: the guest has loopback only.
  if (input.network) {
    argv.push('-netdev', 'user,id=net0,ipv6=off', '-device', 'virtio-net-device,netdev=net0');
  }
  return argv;
}

/** Single-quotes `s` for a POSIX shell. */
export function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * The step's environment: the image's (PATH and the like, as Docker gives a container), then the
 * step's own, later names winning as with `docker run -e`. Entries without `=` are dropped (Docker
 * would take them from the executor's environment, which a VM must not see). HOME, when neither
 * sets it, is the home of the image's user (image-user.ts), as Docker sets it.
 */
export function stepEnv(
  imageEnv: readonly string[],
  stepEnvList: readonly string[],
  home = '/root',
): string[] {
  const byName = new Map<string, string>();
  for (const e of [...imageEnv, ...stepEnvList]) {
    const eq = e.indexOf('=');
    if (eq <= 0) continue;
    byName.set(e.slice(0, eq), e);
  }
  if (!byName.has('PATH'))
    byName.set('PATH', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  if (!byName.has('HOME')) byName.set('HOME', `HOME=${home}`);
  return [...byName.values()];
}

/**
 * What the host sends on `ctl`: the byte count, a newline, then shell assignments read by the
 * guest init (every value single-quoted). The step runs as `user` (uid and gid; root when absent).
 * `resolvers` non-empty: the VM has a NIC (VmInput.network), which the init configures, and these
 * resolvers in its /etc/resolv.conf.
 */
export function stepDescription(
  spec: RunSpec,
  env: readonly string[],
  mark: string,
  user: Pick<ImageUser, 'uid' | 'gid'> = { uid: 0, gid: 0 },
  resolvers: readonly string[] = [],
): Buffer {
  const dir = spec.dir ? `${GUEST_WORKSPACE}/${spec.dir.replace(/^\/+/, '')}` : GUEST_WORKSPACE;
  const body = [
    `STEP_DIR=${shQuote(dir)}`,
    `STEP_SCRIPT=${shQuote(`${GUEST_WORKSPACE}/${spec.scriptPath}`)}`,
    `STEP_MARK=${shQuote(mark)}`,
    `STEP_USER=${shQuote(`${user.uid}:${user.gid}`)}`,
    `STEP_DNS=${shQuote(resolvers.join(' '))}`,
    `set -- ${env.map(shQuote).join(' ')}`,
    '',
  ].join('\n');
  const bytes = Buffer.from(body, 'utf8');
  return Buffer.concat([Buffer.from(`${bytes.length}\n`), bytes]);
}

/** The workspace's file system after a step, as the guest saw it. */
export interface GuestDiskFree {
  freeBytes: number;
  freeInodes: number;
}

export type GuestAnswer = { exitCode: number; disk?: GuestDiskFree } | { error: string };

/** Parses the guest's line on `ctl`; undefined when it is neither form. */
export function parseGuestAnswer(line: string): GuestAnswer | undefined {
  const t = line.trim();
  if (t.startsWith('error ')) return { error: t.slice(6) };
  const m = /^exit (\d+)(?: (\d+) (\d+) (\d+))?$/.exec(t);
  if (!m) return undefined;
  const exitCode = Number(m[1]);
  if (m[2] === undefined) return { exitCode };
  return { exitCode, disk: { freeBytes: Number(m[2]) * Number(m[3]), freeInodes: Number(m[4]) } };
}

/**
 * The `docker run`-like line shown as the step's command in its log entry; `--user` when the image
 * names a user other than root.
 */
export function vmRunArgv(spec: RunSpec, s: VmSettings, user?: Pick<ImageUser, 'uid' | 'gid'>): string[] {
  const dir = spec.dir ? `${GUEST_WORKSPACE}/${spec.dir}` : GUEST_WORKSPACE;
  const asUser = user && (user.uid !== 0 || user.gid !== 0) ? ['--user', `${user.uid}:${user.gid}`] : [];
  return [
    'vm',
    'run',
    '--accel',
    s.kvm ? 'kvm' : 'tcg',
    '--cpus',
    String(Math.max(1, s.cpus)),
    '--memory',
    `${s.memoryMiB}M`,
    '-v',
    `workspace:${GUEST_WORKSPACE}`,
    '-w',
    dir,
    ...asUser,
    ...spec.env.flatMap((e) => ['-e', e]),
    spec.image,
    '/bin/sh',
    `${GUEST_WORKSPACE}/${spec.scriptPath}`,
  ];
}
