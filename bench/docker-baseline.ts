/**
 * The raw Docker baseline: create, start, wait for and remove a container through the Engine API
 * alone. The container is the executor's own: the create options the docker runtime sent are
 * recorded (a wrapper on Dockerode's createContainer, in this process only) and replayed with the
 * workspace bind pointed at an empty directory and the command replaced as asked.
 */
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import Dockerode, { type ContainerCreateOptions } from 'dockerode';

export const recordedCreates: ContainerCreateOptions[] = [];
let installed = false;

/** Records every createContainer call made through Dockerode in this process. */
export function recordContainerCreates(): void {
  if (installed) return;
  installed = true;
  const original = Dockerode.prototype.createContainer;
  Dockerode.prototype.createContainer = function (
    this: Dockerode,
    opts: ContainerCreateOptions,
    ...rest: unknown[]
  ) {
    recordedCreates.push(structuredClone(opts));
    return (original as (...a: unknown[]) => unknown).call(this, opts, ...rest);
  } as typeof original;
}

/** The recorded options with `cmd` as the command and the workspace in `dir`. */
export function replayOptions(
  template: ContainerCreateOptions,
  cmd: string,
  dir: string,
): ContainerCreateOptions {
  const o = structuredClone(template);
  delete o.name;
  const binds = o.HostConfig?.Binds ?? [];
  const wsTarget = o.WorkingDir ?? '/data';
  mkdirSync(path.join(dir, path.relative('/', wsTarget)), { recursive: true });
  if (o.HostConfig) o.HostConfig.Binds = binds.map((b) => `${dir}:${b.split(':').slice(1).join(':')}`);
  o.Entrypoint = ['/bin/sh', '-c'];
  o.Cmd = [cmd];
  o.Labels = { 'bench.baseline': '1' };
  return o;
}

/** Milliseconds for create + start + wait + remove. Output is never attached (discarded). */
export async function runRaw(docker: Dockerode, opts: ContainerCreateOptions): Promise<number> {
  const t0 = performance.now();
  const c = await docker.createContainer(opts);
  await c.start();
  const r = (await c.wait()) as { StatusCode?: number };
  await c.remove({ force: true, v: true });
  const t1 = performance.now();
  if (r.StatusCode !== 0) throw new Error(`baseline container exited ${r.StatusCode}`);
  return t1 - t0;
}

/**
 * Like runRaw, but the output is read: create, attach, start, wait, end of the stream, remove. The
 * least any consumer of the output pays, the floor of `logs.wall.vs_attach`: the attach request
 * goes over a connection of its own to the daemon's socket, read into one reused 64 KiB buffer
 * (net's `onread`, no allocation per read), and the multiplexed frames are only walked to count
 * their payload bytes; nothing is copied or kept. Resolves with the time and the payload bytes.
 */
export async function runRawAttached(
  docker: Dockerode,
  opts: ContainerCreateOptions,
): Promise<{ ms: number; bytes: number }> {
  const socketPath = await daemonSocketPath(docker);
  const t0 = performance.now();
  const c = await docker.createContainer(opts);
  const drained = await attachAndDrain(socketPath, c.id);
  await c.start();
  const r = (await c.wait()) as { StatusCode?: number };
  const bytes = await drained.ended;
  await c.remove({ force: true, v: true });
  const ms = performance.now() - t0;
  if (r.StatusCode !== 0) throw new Error(`baseline container exited ${r.StatusCode}`);
  return { ms, bytes };
}

async function daemonSocketPath(docker: Dockerode): Promise<string> {
  const modem = docker.modem as unknown as { socketPath?: unknown; getSocketPath?: () => Promise<string> };
  const p = modem.socketPath && modem.getSocketPath ? await modem.getSocketPath() : undefined;
  if (!p) throw new Error('the attach baseline needs the Docker daemon on a local socket');
  return p;
}

/**
 * POST /containers/{id}/attach (upgraded), resolved once the daemon has answered; `ended` settles
 * with the payload bytes of the frames when the daemon closes the stream.
 */
function attachAndDrain(socketPath: string, id: string): Promise<{ ended: Promise<number> }> {
  return new Promise((resolve, reject) => {
    let head = '';
    let attached = false;
    let payload = 0;
    let headerLeft = 8; // bytes of the current frame header still to come
    let header = 0; // the length field as it arrives, big-endian
    let frameLeft = 0;
    const count = (buf: Buffer, from: number, to: number) => {
      let pos = from;
      while (pos < to) {
        if (frameLeft > 0) {
          const n = Math.min(frameLeft, to - pos);
          payload += n;
          frameLeft -= n;
          pos += n;
          continue;
        }
        if (headerLeft <= 4) header = header * 256 + buf[pos]!; // bytes 4..7: the length
        pos++;
        if (--headerLeft === 0) {
          frameLeft = header;
          header = 0;
          headerLeft = 8;
        }
      }
    };
    let settle!: (bytes: number) => void;
    const ended = new Promise<number>((r) => (settle = r));
    const socket = net.connect({
      path: socketPath,
      onread: {
        buffer: Buffer.allocUnsafe(64 * 1024),
        callback: (nread: number, buf: Uint8Array) => {
          const bytes = buf as Buffer;
          if (attached) {
            count(bytes, 0, nread);
            return true;
          }
          const before = head.length;
          head += bytes.toString('latin1', 0, nread);
          const end = head.indexOf('\r\n\r\n');
          if (end === -1) return true;
          const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
          if (status !== 101 && status !== 200) {
            socket.destroy();
            reject(new Error(`docker attach: HTTP ${status}`));
            return false;
          }
          attached = true;
          resolve({ ended });
          count(bytes, end + 4 - before, nread);
          return true;
        },
      },
    } as net.NetConnectOpts);
    socket.on('error', reject);
    socket.once('close', () => settle(payload));
    socket.on('connect', () =>
      socket.write(
        `POST /containers/${encodeURIComponent(id)}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`,
      ),
    );
  });
}
