/**
 * The image of the isolated network's holder containers (network-holders.ts): one static program,
 * `/pause`, that waits for a signal forever, as Kubernetes' pause container does. It is made here,
 * from bytes in this file, and imported into the daemon (`POST /images/create?fromSrc=-`) the first
 * time a holder is needed: no registry, no base image, and no code of any job's image ever runs in a
 * job's network namespace besides that job's own steps.
 *
 * The program is a minimal ELF executable with one loadable segment and a handful of
 * instructions: on x86-64 `pause()` in a loop, on arm64 (which has no pause syscall)
 * `ppoll(NULL, 0, NULL, NULL)` in a loop. It ignores SIGTERM (PID 1 of a namespace has no default
 * handlers); the holder is always removed with force, which sends SIGKILL.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import { imageExists } from './engine.js';

export const PAUSE_IMAGE_REPO = 'executor-network-holder';
/** The program's path inside the image. */
export const PAUSE_PATH = '/pause';

/** Machine code per Docker architecture name (`docker version`'s Arch, Go's GOARCH). */
const PROGRAMS: Record<string, { machine: number; code: number[] }> = {
  amd64: {
    machine: 0x3e,
    code: [
      [0xb8, 0x22, 0x00, 0x00, 0x00], // mov eax, 34 (pause)
      [0x0f, 0x05], // syscall
      [0xeb, 0xf7], // jmp back to the mov (-9)
    ].flat(),
  },
  arm64: {
    machine: 0xb7,
    code: [
      0xd2800000, // mov x0, #0 (fds)
      0xd2800001, // mov x1, #0 (nfds)
      0xd2800002, // mov x2, #0 (timeout: none)
      0xd2800003, // mov x3, #0 (sigmask)
      0xd2800004, // mov x4, #0
      0xd2800928, // mov x8, #73 (ppoll)
      0xd4000001, // svc #0
      0x17fffff9, // b back to the first mov (-7 instructions)
    ].flatMap((insn) => [insn & 0xff, (insn >>> 8) & 0xff, (insn >>> 16) & 0xff, (insn >>> 24) & 0xff]),
  },
};

const BASE = 0x400000;
const EHDR = 64;
const PHDR = 56;
const PT_LOAD = 1;
const PT_GNU_STACK = 0x6474e551;

/** The static executable for `arch`, or undefined for an architecture this file has no code for. */
export function pauseProgram(arch: string): Buffer | undefined {
  const p = PROGRAMS[arch];
  if (!p) return undefined;
  const codeAt = EHDR + 2 * PHDR;
  const size = codeAt + p.code.length;
  const b = Buffer.alloc(size);
  // ELF header: 64-bit, little endian, version 1, System V ABI.
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0);
  b.writeUInt16LE(2, 16); // ET_EXEC
  b.writeUInt16LE(p.machine, 18);
  b.writeUInt32LE(1, 20);
  b.writeBigUInt64LE(BigInt(BASE + codeAt), 24); // entry
  b.writeBigUInt64LE(BigInt(EHDR), 32); // program headers
  b.writeBigUInt64LE(0n, 40); // no section headers
  b.writeUInt32LE(0, 48);
  b.writeUInt16LE(EHDR, 52);
  b.writeUInt16LE(PHDR, 54);
  b.writeUInt16LE(2, 56);
  // One read+execute segment holding the whole file, 64 KiB aligned (arm64 pages may be that big).
  let ph = EHDR;
  b.writeUInt32LE(PT_LOAD, ph);
  b.writeUInt32LE(5, ph + 4); // PF_R | PF_X
  b.writeBigUInt64LE(0n, ph + 8);
  b.writeBigUInt64LE(BigInt(BASE), ph + 16);
  b.writeBigUInt64LE(BigInt(BASE), ph + 24);
  b.writeBigUInt64LE(BigInt(size), ph + 32);
  b.writeBigUInt64LE(BigInt(size), ph + 40);
  b.writeBigUInt64LE(0x10000n, ph + 48);
  // A stack that is not executable.
  ph += PHDR;
  b.writeUInt32LE(PT_GNU_STACK, ph);
  b.writeUInt32LE(6, ph + 4); // PF_R | PF_W
  b.set(p.code, codeAt);
  return b;
}

/** A tar archive (ustar) of one executable file owned by root. */
export function tarOfOneFile(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  const field = (text: string, at: number, len: number) =>
    header.write(text.padEnd(len, '\0'), at, len, 'latin1');
  const octal = (n: number, len: number) => `${n.toString(8).padStart(len - 1, '0')}\0`;
  field(name, 0, 100);
  field(octal(0o755, 8), 100, 8);
  field(octal(0, 8), 108, 8);
  field(octal(0, 8), 116, 8);
  field(octal(content.length, 12), 124, 12);
  field(octal(0, 12), 136, 12);
  field('        ', 148, 8); // the checksum counts itself as spaces
  field('0', 156, 1);
  field('ustar\0', 257, 6);
  field('00', 263, 2);
  let sum = 0;
  for (const byte of header) sum += byte;
  field(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  const padding = (512 - (content.length % 512)) % 512;
  return Buffer.concat([header, content, Buffer.alloc(padding), Buffer.alloc(1024)]);
}

/** `executor-network-holder:<hash of the program>`: a changed program is a new tag. */
export function pauseImageRef(program: Buffer): string {
  return `${PAUSE_IMAGE_REPO}:${createHash('sha256').update(program).digest('hex').slice(0, 12)}`;
}

/**
 * The holder image's reference, imported into the daemon when it is not there yet; undefined when
 * this file has no program for the daemon's architecture. Concurrent importers (several executors)
 * each import the same bytes under the same tag; the last one's image keeps it.
 */
export async function ensurePauseImage(docker: Dockerode): Promise<string | undefined> {
  const version = (await docker.version()) as { Arch?: string };
  const program = pauseProgram(version.Arch ?? '');
  if (!program) return undefined;
  const ref = pauseImageRef(program);
  if (await imageExists(docker, ref)) return ref;
  const [repo, tag] = ref.split(':') as [string, string];
  const tar = Readable.from([tarOfOneFile(PAUSE_PATH.slice(1), program)]);
  const stream = (await docker.importImage(tar, { repo, tag })) as NodeJS.ReadableStream;
  await new Promise<void>((resolve, reject) => {
    let failed: string | undefined;
    docker.modem.followProgress(
      stream,
      (err) => (err ? reject(err) : failed ? reject(new Error(failed)) : resolve()),
      (ev: { error?: string; errorDetail?: { message?: string } }) => {
        if (ev.error) failed = ev.errorDetail?.message ?? ev.error;
      },
    );
  });
  if (!(await imageExists(docker, ref))) {
    throw new Error(`importing the network holder image ${ref}: not present after import`);
  }
  return ref;
}
