/**
 * The raw Docker baseline: create, start, wait for and remove a container through the Engine API
 * alone. The container is the executor's own: the create options the docker runtime sent are
 * recorded (a wrapper on Dockerode's createContainer, in this process only) and replayed with the
 * workspace bind pointed at an empty directory and the command replaced as asked.
 */
import { mkdirSync } from 'node:fs';
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
