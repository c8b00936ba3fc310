/**
 * One step's microVM booted directly (boot.ts), with a reader slower than the guest's writer: the
 * host's sockets fill, QEMU throttles the ports and holds output back; all of it must still arrive.
 * The guest used to power off right after its exit line, and QEMU's end dropped what it held, which
 * the host took for a complete, shorter output.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunSpec } from '../../src/executor/runtimes/types.js';
import { bootStep } from '../../src/executor/runtimes/vm/boot.js';
import { stepDescription } from '../../src/executor/runtimes/vm/convert.js';
import { hostTscKhz, kvmWorks } from '../../src/executor/runtimes/vm/host.js';
import { createImageDisks } from '../../src/executor/runtimes/vm/image-disks.js';
import { IMAGE } from './docker-e2e.js';
import { haveVm, VM_ASSETS_DIR } from './vm-e2e.js';

const ok = haveVm();
const BIG_BYTES = 3 * 1024 * 1024;
/** How long the reader blocks its event loop per chunk: far slower than the guest writes. */
const READER_MS_PER_CHUNK = 40;

describe.skipIf(!ok)('vm boot with a slow reader', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vm-boot-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('delivers every byte of a 3 MiB output before the VM is ended', async () => {
    const disks = createImageDisks({
      docker: new Dockerode(),
      cacheDir: join(dir, 'images'),
      capBytes: 1 << 30,
    });
    const root = await disks.acquire(IMAGE);
    try {
      const content = join(dir, 'content');
      mkdirSync(content);
      writeFileSync(
        join(content, 'step.sh'),
        `head -c ${BIG_BYTES} /dev/zero | tr '\\0' x\necho\necho err-done >&2\necho big-done\n`,
      );
      const ws = join(dir, 'ws.img');
      execFileSync('truncate', ['-s', '64M', ws]);
      execFileSync('mkfs.ext4', ['-q', '-d', content, ws]);

      const received = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
      const result = await bootStep({
        settings: {
          qemu: 'qemu-system-x86_64',
          assetsDir: VM_ASSETS_DIR,
          kvm: (await kvmWorks('qemu-system-x86_64', join(VM_ASSETS_DIR, 'vmlinuz'))).ok,
          cpus: 1,
          memoryMiB: 256,
          tscKhz: await hostTscKhz(),
        },
        runDir: join(dir, 'run'),
        name: 'vm-boot-test',
        rootDisk: root.path,
        workspaceDisk: ws,
        describe: (mark) => stepDescription({ scriptPath: 'step.sh' } as RunSpec, ['PATH=/bin'], mark),
        write: (stream, chunk) => {
          received[stream].push(Buffer.from(chunk));
          // A busy reader: the event loop is blocked, the socket fills, QEMU throttles the port.
          const until = Date.now() + READER_MS_PER_CHUNK;
          while (Date.now() < until) {}
        },
        signal: new AbortController().signal,
      });
      expect(result.exitCode).toBe(0);
      const out = Buffer.concat(received.stdout).toString();
      expect(out.length).toBe(BIG_BYTES + '\nbig-done\n'.length);
      expect(out.endsWith(`${'x'.repeat(100)}\nbig-done\n`)).toBe(true);
      expect(Buffer.concat(received.stderr).toString()).toBe('err-done\n');
    } finally {
      root.release();
    }
  }, 180_000);
});
