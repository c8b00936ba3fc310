/**
 * The pure parts of the isolated network's holders: the pause program and its tar (checked by the
 * host's readelf and tar, not by our own reading of the bytes), the holder's create body, and a
 * step's create body when it joins a holder (Docker's rules for a `container:` network mode).
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type ContainerInput,
  type ContainerSettings,
  dockerRunArgv,
  HOLDER_ROLE,
  holderCreateOptions,
  LABELS,
  toContainerCreateOptions,
} from '../../../../src/executor/runtimes/docker/convert.js';
import {
  PAUSE_IMAGE_REPO,
  PAUSE_PATH,
  pauseImageRef,
  pauseProgram,
  tarOfOneFile,
} from '../../../../src/executor/runtimes/docker/pause-image.js';
import { commandAvailable, waitFor } from '../../../helpers/env.js';

const settings: ContainerSettings = {
  kind: 'docker',
  executorName: 'exec-1',
  hostname: 'host-a',
  pid: 4242,
  cpus: 2,
  memory: '1g',
  pidsLimit: 1024,
  network: 'executor-jobs',
  mounts: [{ Type: 'bind', Source: '/srv/cache', Target: '/cache', ReadOnly: true }],
  addHostGateway: true,
};

const dir = mkdtempSync(path.join(os.tmpdir(), 'holder-convert-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function written(name: string, bytes: Buffer): string {
  const file = path.join(dir, name);
  writeFileSync(file, bytes, { mode: 0o755 });
  return file;
}

describe.skipIf(!commandAvailable('readelf'))('the pause program', () => {
  for (const [arch, machine] of [
    ['amd64', 'Advanced Micro Devices X86-64'],
    ['arm64', 'AArch64'],
  ] as const) {
    it(`${arch}: a static executable with a non-executable stack, as readelf reads it`, () => {
      const file = written(`pause-${arch}`, pauseProgram(arch)!);
      const header = execFileSync('readelf', ['-h', file]).toString();
      expect(header).toMatch(/Class:\s+ELF64/);
      expect(header).toMatch(/Type:\s+EXEC/);
      expect(header).toContain(machine);
      expect(header).toMatch(/Entry point address:\s+0x4000b0/);
      const segments = execFileSync('readelf', ['-lW', file]).toString();
      expect(segments).toMatch(/LOAD\s+0x0+ 0x0+400000 0x0+400000 \S+ \S+ R E 0x10000/);
      expect(segments).toMatch(/GNU_STACK\s.*RW /);
      expect(segments).not.toContain('INTERP');
    });
  }

  it('has no program for an architecture it does not know', () => {
    expect(pauseProgram('s390x')).toBeUndefined();
  });

  it.skipIf(process.arch !== 'x64')('runs on this host and waits until it is killed', async () => {
    const child = spawn(written('pause-run', pauseProgram('amd64')!), [], { stdio: 'ignore' });
    try {
      // Asleep in the kernel (state S), not spinning and not gone.
      await waitFor(() => /^\d+ \([^)]*\) S /.test(readFileSync(`/proc/${child.pid}/stat`, 'utf8')), {
        what: 'the pause program to sleep',
      });
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill('SIGKILL');
    }
    const [code, signal] = await once(child, 'exit');
    expect([code, signal]).toEqual([null, 'SIGKILL']);
  });

  it('is packed as one root-owned executable that tar lists and extracts byte for byte', () => {
    const program = pauseProgram('amd64')!;
    const tar = written('pause.tar', tarOfOneFile(PAUSE_PATH.slice(1), program));
    expect(execFileSync('tar', ['-tvf', tar, '--numeric-owner']).toString()).toMatch(
      new RegExp(`^-rwxr-xr-x 0/0\\s+${program.length} .* pause\\n$`),
    );
    expect(execFileSync('tar', ['-xOf', tar, 'pause']).equals(program)).toBe(true);
  });

  it('names its image after the program', () => {
    const ref = pauseImageRef(pauseProgram('amd64')!);
    expect(ref).toMatch(new RegExp(`^${PAUSE_IMAGE_REPO}:[0-9a-f]{12}$`));
    expect(pauseImageRef(pauseProgram('arm64')!)).not.toBe(ref);
  });
});

describe('holderCreateOptions', () => {
  const o = holderCreateOptions({ ...settings, kind: 'gvisor' }, 'abcd-1', 'img:1', PAUSE_PATH);

  it('runs the pause program on the configured network, labelled for the janitor', () => {
    expect(o.Image).toBe('img:1');
    expect(o.Entrypoint).toEqual(['/pause']);
    expect(o.HostConfig?.NetworkMode).toBe('executor-jobs');
    expect(o.Labels).toEqual({
      [LABELS.name]: 'exec-1',
      [LABELS.host]: 'host-a',
      [LABELS.pid]: '4242',
      [LABELS.role]: HOLDER_ROLE,
      [LABELS.holder]: 'abcd-1',
    });
  });

  it('holds no mounts and no privilege, and keeps the extra hosts its steps cannot have', () => {
    const h = o.HostConfig!;
    expect(h).toMatchObject({
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ExtraHosts: ['host.docker.internal:host-gateway'],
      LogConfig: { Type: 'none', Config: {} },
    });
    expect(h.Binds).toBeUndefined();
    expect(h.Mounts).toBeUndefined();
    // The holder runs no job code: the daemon's default runtime, even for gVisor steps.
    expect(h.Runtime).toBeUndefined();
    expect(o.OpenStdin).toBe(false);
  });

  it('has no extra hosts without the host gateway', () => {
    const plain = holderCreateOptions({ ...settings, addHostGateway: false }, 't', 'i', PAUSE_PATH);
    expect(plain.HostConfig?.ExtraHosts).toBeUndefined();
  });
});

describe('a step that joins a holder', () => {
  const holder = 'f'.repeat(64);
  const input = (over: Partial<ContainerInput> = {}): ContainerInput => ({
    spec: {
      key: 'step.docker.0',
      stepIndex: 0,
      image: 'alpine:3',
      scriptPath: '.sourcegraph-executor/0.sh',
      dir: '',
      env: [],
    },
    job: { id: 42 },
    workspacePath: '/ws/job-42',
    settings,
    holder,
    ...over,
  });

  it("uses the holder's network namespace and nothing Docker refuses with it", () => {
    const o = toContainerCreateOptions(input());
    const h = o.HostConfig!;
    expect(h.NetworkMode).toBe(`container:${holder}`);
    // Docker refuses these with a container network mode (hostname, links, DNS, extra hosts,
    // MAC address, published or exposed ports).
    expect(o.Hostname).toBeUndefined();
    expect(o.MacAddress).toBeUndefined();
    expect(o.ExposedPorts).toBeUndefined();
    for (const k of ['Links', 'Dns', 'DnsSearch', 'DnsOptions', 'ExtraHosts', 'PortBindings'] as const) {
      expect(h[k], k).toBeUndefined();
    }
    expect(h.PublishAllPorts).toBeUndefined();
    // The rest of the step is as without a holder.
    const without = toContainerCreateOptions(input({ holder: undefined })).HostConfig!;
    expect({ ...h, NetworkMode: undefined }).toEqual({
      ...without,
      NetworkMode: undefined,
      ExtraHosts: undefined,
    });
  });

  it("shows the holder's network in the logged command", () => {
    const argv = dockerRunArgv(input());
    expect(argv).toContain(`container:${holder.slice(0, 12)}`);
    expect(argv[argv.indexOf('--network') + 1]).toBe(`container:${holder.slice(0, 12)}`);
    expect(argv.some((a) => a.startsWith('--add-host'))).toBe(false);
    expect(dockerRunArgv(input({ holder: undefined }))).toContain(
      '--add-host=host.docker.internal:host-gateway',
    );
  });
});
