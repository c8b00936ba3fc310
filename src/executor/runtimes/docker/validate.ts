import type Dockerode from 'dockerode';
import { errorMessage } from '../../../lib/errors.js';
import type { DiskQuota } from '../../workspace/disk-image.js';
import type { CheckResult } from '../types.js';
import { writableLayerCheck } from './storage.js';
import { validateUserns } from './userns.js';

/**
 * Checks for `executor validate` and startup: the daemon answers; whether it remaps user namespaces
 * (userns.ts); whether step containers' writable layers are limited (storage.ts); for gvisor, runsc
 * is registered.
 */
export async function validateDocker(
  docker: Dockerode,
  kind: 'docker' | 'gvisor',
  diskQuota?: DiskQuota,
): Promise<CheckResult[]> {
  const checks: CheckResult[] = [];
  try {
    await docker.ping();
    const v = await docker.version();
    checks.push({ name: 'docker daemon', ok: true, detail: `answers; version ${v.Version}` });
  } catch (err) {
    checks.push({
      name: 'docker daemon',
      ok: false,
      detail: `the Docker daemon does not answer (${errorMessage(err)}); start it or set DOCKER_HOST`,
    });
    return checks;
  }
  for (const c of await validateUserns(docker, kind)) checks.push(c);
  try {
    checks.push(writableLayerCheck(await docker.info(), diskQuota));
  } catch (err) {
    checks.push({
      name: 'container writable layer',
      ok: false,
      detail: `docker info failed: ${errorMessage(err)}`,
    });
  }
  if (kind === 'gvisor') {
    try {
      const info = (await docker.info()) as { Runtimes?: Record<string, unknown> };
      const ok = Object.hasOwn(info.Runtimes ?? {}, 'runsc');
      checks.push({
        name: 'gvisor runtime',
        ok,
        detail: ok
          ? "the Docker daemon has the 'runsc' runtime"
          : "the Docker daemon has no 'runsc' runtime; register it in /etc/docker/daemon.json " +
            '({"runtimes":{"runsc":{"path":"/usr/bin/runsc"}}}) and restart dockerd',
      });
    } catch (err) {
      checks.push({
        name: 'gvisor runtime',
        ok: false,
        detail: `docker info failed: ${errorMessage(err)}`,
      });
    }
  }
  return checks;
}
