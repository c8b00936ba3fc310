/**
 * Engine API calls of the docker runtime besides a step's own container: image presence and pull,
 * and the forced removal every cleanup path uses.
 */
import type Dockerode from 'dockerode';
import { errorMessage } from '../../../lib/errors.js';
import type { DockerAuthConfig } from '../../../protocol/job.js';
import { pullAuthFor } from './convert.js';

/** HTTP status of a dockerode error, if it has one. */
export function statusOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

/** Force-removes a container; a container that is gone (404) or already being removed (409) is fine. */
export async function forceRemove(docker: Dockerode, id: string): Promise<void> {
  try {
    await docker.getContainer(id).remove({ force: true, v: true });
  } catch (err) {
    const s = statusOf(err);
    if (s === 404 || s === 409) return;
    throw err;
  }
}

/** `busybox` -> `busybox:latest`; a reference with a tag or digest is kept as is. */
export function withDefaultTag(image: string): string {
  if (image.includes('@')) return image;
  const lastSlash = image.lastIndexOf('/');
  return image.slice(lastSlash + 1).includes(':') ? image : `${image}:latest`;
}

export async function imageExists(docker: Dockerode, image: string): Promise<boolean> {
  try {
    await docker.getImage(image).inspect();
    return true;
  } catch (err) {
    if (statusOf(err) === 404) return false;
    throw err;
  }
}

/** Pulls an image (tag `latest` when none is given); rejects with the abort reason on abort. */
export async function pullImage(
  docker: Dockerode,
  image: string,
  auth: DockerAuthConfig | undefined,
  signal: AbortSignal,
): Promise<void> {
  const ref = withDefaultTag(image);
  try {
    const stream = (await docker.pull(ref, {
      authconfig: pullAuthFor(ref, auth),
      abortSignal: signal,
    })) as NodeJS.ReadableStream;
    await new Promise<void>((resolve, reject) => {
      let progressError: string | undefined;
      docker.modem.followProgress(
        stream,
        (err) => (err ? reject(err) : progressError ? reject(new Error(progressError)) : resolve()),
        (ev: { error?: string; errorDetail?: { message?: string } }) => {
          if (ev.error) progressError = ev.errorDetail?.message ?? ev.error;
        },
      );
    });
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    throw new Error(`cannot pull image "${image}": ${errorMessage(err)}`, { cause: err });
  }
  if (!(await imageExists(docker, ref)))
    throw new Error(`cannot pull image "${image}": not present after pull`);
}
