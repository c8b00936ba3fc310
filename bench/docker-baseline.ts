/**
 * The raw Docker baseline: create, start, wait for and remove a container through the Engine API
 * alone. The container is the executor's own: the create options the docker runtime sent are
 * recorded (a wrapper on Dockerode's createContainer, in this process only) and replayed with the
 * workspace bind pointed at an empty directory and the command replaced as asked.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
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
 * Like runRaw, but the output is read: attached and drained (demultiplexed into a counter), which
 * is the least any consumer of the output pays. Resolves with the time and the bytes read.
 */
export async function runRawAttached(
  docker: Dockerode,
  opts: ContainerCreateOptions,
): Promise<{ ms: number; bytes: number }> {
  const t0 = performance.now();
  const c = await docker.createContainer(opts);
  const stream = (await c.attach({ stream: true, stdout: true, stderr: true })) as NodeJS.ReadableStream;
  const ended = new Promise<void>((r) => {
    stream.once('end', r);
    stream.once('close', r);
  });
  let bytes = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      cb();
    },
  });
  docker.modem.demuxStream(stream, sink, sink);
  await c.start();
  await c.wait();
  await ended;
  await c.remove({ force: true, v: true });
  return { ms: performance.now() - t0, bytes };
}
