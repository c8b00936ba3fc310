import { describe, expect, it } from 'vitest';
import type { RunSpec } from '../../../../src/executor/runtimes/types.js';
import {
  DEFAULT_VM_MEMORY_MIB,
  kernelCmdline,
  memoryMiB,
  parseGuestAnswer,
  qemuArgv,
  shQuote,
  stepDescription,
  stepEnv,
  type VmInput,
  type VmSettings,
  vmName,
  vmRunArgv,
} from '../../../../src/executor/runtimes/vm/convert.js';
import { parseCpuMHz } from '../../../../src/executor/runtimes/vm/host.js';
import { MarkStream } from '../../../../src/executor/runtimes/vm/mark-stream.js';
import { guestDiskIsFull } from '../../../../src/executor/runtimes/vm/workspace-disk.js';

const SETTINGS: VmSettings = {
  qemu: 'qemu-system-x86_64',
  assetsDir: '/assets',
  kvm: false,
  cpus: 2,
  memoryMiB: 512,
  tscKhz: 2096013,
};

const INPUT: VmInput = {
  settings: SETTINGS,
  rootDisk: '/cache/abc.ext4',
  workspaceDisk: '/ws/w.disk.img',
  sockets: { out: '/ws/.vm/s/out.sock', err: '/ws/.vm/s/err.sock', ctl: '/ws/.vm/s/ctl.sock' },
  consoleLog: '/ws/.vm/s/console.log',
  pidFile: '/ws/.vm/s/qemu.pid',
  name: 'executor-e-1-q-0',
};

const SPEC: RunSpec = {
  key: 'step.docker.build',
  stepIndex: 0,
  image: 'alpine:3',
  scriptPath: '.sourcegraph-executor/42.0_x.sh',
  dir: 'sub/dir',
  env: ['A=1', "Q=it's"],
};

/** The value after `flag` in argv (each occurrence). */
function valuesOf(argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => (a === flag ? [argv[i + 1]!] : []));
}

describe('qemuArgv', () => {
  it('emulated: TCG, PIT and PIC, the TSC frequency on the kernel line, no network device', () => {
    const argv = qemuArgv(INPUT);
    expect(argv[0]).toBe('qemu-system-x86_64');
    expect(valuesOf(argv, '-M')).toEqual(['microvm,rtc=on,pit=on,pic=on']);
    expect(valuesOf(argv, '-accel')).toEqual(['tcg']);
    expect(valuesOf(argv, '-cpu')).toEqual(['max']);
    expect(valuesOf(argv, '-smp')).toEqual(['2']);
    expect(valuesOf(argv, '-m')).toEqual(['512M']);
    expect(valuesOf(argv, '-append')[0]).toContain('tsc_early_khz=2096013');
    expect(argv).toContain('-no-reboot');
    expect(argv).toContain('-nodefaults');
    expect(argv.join(' ')).not.toMatch(/netdev|virtio-net|-nic/);
    expect(valuesOf(argv, '-name')).toEqual(['executor-e-1-q-0']);
    expect(valuesOf(argv, '-pidfile')).toEqual(['/ws/.vm/s/qemu.pid']);
  });

  it('KVM: the host CPU, no TSC hint, no PIT', () => {
    const argv = qemuArgv({ ...INPUT, settings: { ...SETTINGS, kvm: true } });
    expect(valuesOf(argv, '-accel')).toEqual(['kvm']);
    expect(valuesOf(argv, '-cpu')).toEqual(['host']);
    expect(valuesOf(argv, '-M')).toEqual(['microvm,rtc=on']);
    expect(valuesOf(argv, '-append')[0]).not.toContain('tsc_early_khz');
  });

  it('the root disk read-only first, the workspace second, three named consoles', () => {
    const argv = qemuArgv(INPUT);
    expect(valuesOf(argv, '-drive')).toEqual([
      'id=root,file=/cache/abc.ext4,format=raw,if=none,readonly=on',
      'id=ws,file=/ws/w.disk.img,format=raw,if=none,cache=writeback',
    ]);
    expect(valuesOf(argv, '-chardev')).toEqual([
      'socket,id=out,path=/ws/.vm/s/out.sock',
      'socket,id=err,path=/ws/.vm/s/err.sock',
      'socket,id=ctl,path=/ws/.vm/s/ctl.sock',
    ]);
    expect(valuesOf(argv, '-device').filter((d) => d.startsWith('virtserialport'))).toEqual([
      'virtserialport,chardev=out,name=out',
      'virtserialport,chardev=err,name=err',
      'virtserialport,chardev=ctl,name=ctl',
    ]);
  });

  it('with a network: one virtio NIC on IPv4 user-mode networking', () => {
    const argv = qemuArgv({ ...INPUT, network: true });
    expect(valuesOf(argv, '-netdev')).toEqual(['user,id=net0,ipv6=off']);
    expect(valuesOf(argv, '-device').filter((d) => d.includes('net'))).toEqual([
      'virtio-net-device,netdev=net0',
    ]);
  });

  it('at least one vCPU', () => {
    expect(valuesOf(qemuArgv({ ...INPUT, settings: { ...SETTINGS, cpus: 0 } }), '-smp')).toEqual(['1']);
  });
});

describe('kernelCmdline', () => {
  it('ends the VM on reboot and panic, quietly', () => {
    expect(kernelCmdline({ ...SETTINGS, kvm: true })).toBe('console=ttyS0 reboot=t panic=-1 quiet');
  });
  it('emulated without a known TSC frequency: no hint', () => {
    expect(kernelCmdline({ ...SETTINGS, tscKhz: undefined })).not.toContain('tsc_early_khz');
  });
});

describe('memoryMiB', () => {
  it.each([
    ['12G', 12 * 1024],
    ['512m', 512],
    ['256M', 256],
    ['1M', 128],
    ['0', DEFAULT_VM_MEMORY_MIB],
    ['', DEFAULT_VM_MEMORY_MIB],
  ])('%s -> %d MiB', (text, mib) => {
    expect(memoryMiB(text)).toBe(mib);
  });
});

describe('vmName', () => {
  it('names executor, job and step, with only characters QEMU takes', () => {
    expect(vmName('host-1', '42-batches', 3)).toBe('executor-host-1-42-batches-3');
    expect(vmName('a b,c', '1-q', 0)).toBe('executor-a_b_c-1-q-0');
  });
});

describe('stepEnv', () => {
  it("the image's environment, then the step's winning by name; entries without a value dropped", () => {
    expect(stepEnv(['PATH=/bin', 'LANG=C'], ['LANG=en', 'FROM_HOST', 'X=a=b'])).toEqual([
      'PATH=/bin',
      'LANG=en',
      'X=a=b',
      'HOME=/root',
    ]);
  });
  it('a PATH when the image has none', () => {
    expect(stepEnv([], [])[0]).toMatch(/^PATH=.*\/bin/);
  });
  it("HOME is the user's home unless the image or the step sets it", () => {
    expect(stepEnv([], [], '/home/app')).toContain('HOME=/home/app');
    expect(stepEnv(['HOME=/srv'], [], '/home/app')).toContain('HOME=/srv');
    expect(stepEnv([], ['HOME=/tmp'], '/home/app')).toContain('HOME=/tmp');
  });
});

describe('stepDescription', () => {
  it('is a byte count and shell assignments the guest can source, every value quoted', () => {
    const d = stepDescription(SPEC, ['A=1', "Q=it's", 'M=two\nlines'], 'MARK');
    const text = d.toString('utf8');
    const nl = text.indexOf('\n');
    const body = text.slice(nl + 1);
    expect(Number(text.slice(0, nl))).toBe(Buffer.byteLength(body));
    expect(body).toBe(
      [
        "STEP_DIR='/data/sub/dir'",
        "STEP_SCRIPT='/data/.sourcegraph-executor/42.0_x.sh'",
        "STEP_MARK='MARK'",
        "STEP_USER='0:0'",
        "STEP_DNS=''",
        "set -- 'A=1' 'Q=it'\\''s' 'M=two\nlines'",
        '',
      ].join('\n'),
    );
  });
  it('the workspace root when the step has no dir; counts bytes, not characters', () => {
    const d = stepDescription({ ...SPEC, dir: '' }, ['U=é'], 'M').toString('utf8');
    expect(d).toContain("STEP_DIR='/data'\n");
    const nl = d.indexOf('\n');
    expect(Number(d.slice(0, nl))).toBe(Buffer.byteLength(d.slice(nl + 1)));
  });
  it("names the image user's uid and gid, and the resolvers of a networked VM", () => {
    const d = stepDescription(SPEC, [], 'M', { uid: 1000, gid: 50 }, ['192.0.2.53', '192.0.2.54']);
    expect(d.toString('utf8')).toContain("\nSTEP_USER='1000:50'\nSTEP_DNS='192.0.2.53 192.0.2.54'\n");
  });
});

describe('shQuote', () => {
  it('quotes single quotes', () => {
    expect(shQuote("a'b")).toBe("'a'\\''b'");
    expect(shQuote('')).toBe("''");
  });
});

describe('parseGuestAnswer', () => {
  it('reads the exit code and the free space of the workspace', () => {
    expect(parseGuestAnswer('exit 3 100 4096 7\n')).toEqual({
      exitCode: 3,
      disk: { freeBytes: 409600, freeInodes: 7 },
    });
    expect(parseGuestAnswer('exit 0')).toEqual({ exitCode: 0 });
  });
  it('reads an init error', () => {
    expect(parseGuestAnswer('error the image has no /bin/sh')).toEqual({ error: 'the image has no /bin/sh' });
  });
  it('refuses anything else', () => {
    expect(parseGuestAnswer('exit')).toBeUndefined();
    expect(parseGuestAnswer('exit -1')).toBeUndefined();
    expect(parseGuestAnswer('hello')).toBeUndefined();
  });
});

describe('vmRunArgv', () => {
  it('shows image, workspace, dir, env and script as docker run would', () => {
    expect(vmRunArgv(SPEC, SETTINGS)).toEqual([
      'vm',
      'run',
      '--accel',
      'tcg',
      '--cpus',
      '2',
      '--memory',
      '512M',
      '-v',
      'workspace:/data',
      '-w',
      '/data/sub/dir',
      '-e',
      'A=1',
      '-e',
      "Q=it's",
      'alpine:3',
      '/bin/sh',
      '/data/.sourcegraph-executor/42.0_x.sh',
    ]);
  });
  it('shows --user for a user other than root, nothing for root', () => {
    const argv = vmRunArgv(SPEC, SETTINGS, { uid: 1000, gid: 50 });
    expect(argv.slice(argv.indexOf('-w'), argv.indexOf('-w') + 4)).toEqual([
      '-w',
      '/data/sub/dir',
      '--user',
      '1000:50',
    ]);
    expect(vmRunArgv(SPEC, SETTINGS, { uid: 0, gid: 0 })).not.toContain('--user');
  });
});

describe('MarkStream', () => {
  const MARK = 'e0f1a2b3c4';

  function feed(chunks: Buffer[]): { out: string; ended: boolean } {
    const got: Buffer[] = [];
    const s = new MarkStream(MARK, (b) => got.push(Buffer.from(b)));
    for (const c of chunks) s.write(c);
    return { out: Buffer.concat(got).toString('latin1'), ended: s.ended };
  }

  it('passes everything before the mark, at every split point, and nothing after it', () => {
    const data = Buffer.from(`hello e0f1 world e0f1a2b3c${MARK}after`, 'latin1');
    for (let i = 0; i <= data.length; i++) {
      for (const j of [i, Math.min(data.length, i + 1), Math.min(data.length, i + 7)]) {
        const r = feed([data.subarray(0, i), data.subarray(i, j), data.subarray(j)]);
        expect(r).toEqual({ out: 'hello e0f1 world e0f1a2b3c', ended: true });
      }
    }
  });

  it('byte by byte', () => {
    const data = Buffer.from(`ab${MARK}`);
    expect(feed([...data].map((b) => Buffer.from([b])))).toEqual({ out: 'ab', ended: true });
  });

  it('holds back a possible start of the mark until flush', () => {
    const got: Buffer[] = [];
    const s = new MarkStream(MARK, (b) => got.push(Buffer.from(b)));
    s.write(Buffer.from('data e0f1'));
    expect(Buffer.concat(got).toString()).toBe('data ');
    s.flush();
    expect(Buffer.concat(got).toString()).toBe('data e0f1');
    expect(s.ended).toBe(false);
  });
});

describe('guestDiskIsFull', () => {
  const quota = { text: '64M', bytes: 64 * 1024 * 1024 };
  it('full below 1 MiB free (1% of 64M is less) or with no free inode', () => {
    expect(guestDiskIsFull({ freeBytes: 512 * 1024, freeInodes: 100 }, quota)).toBe(true);
    expect(guestDiskIsFull({ freeBytes: 10 * 1024 * 1024, freeInodes: 0 }, quota)).toBe(true);
    expect(guestDiskIsFull({ freeBytes: 10 * 1024 * 1024, freeInodes: 100 }, quota)).toBe(false);
  });
});

describe('parseCpuMHz', () => {
  it('reads the first cpu MHz line as kHz', () => {
    expect(parseCpuMHz('model name\t: X\ncpu MHz\t\t: 2096.013\ncpu MHz\t\t: 1000\n')).toBe(2096013);
    expect(parseCpuMHz('nothing here')).toBeUndefined();
  });
});
