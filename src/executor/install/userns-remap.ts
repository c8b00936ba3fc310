/**
 * `executor install --userns-remap`: after `"userns-remap": "default"` is in daemon.json, the running
 * daemon must be RESTARTED (dockerd does not apply userns-remap on a reload). With `default`, dockerd
 * itself creates the `dockremap` user and its /etc/subuid and /etc/subgid ranges on start (with
 * useradd and usermod), so install creates neither.
 *
 * A restart stops every running container (unless the daemon has live-restore), and the remapped
 * daemon keeps its images and containers in a separate data directory (`<data-root>/<uid>.<gid>`):
 * the images of the daemon before the change are not visible and must be pulled or loaded again.
 */
import { errorMessage } from '../../lib/errors.js';
import { rootFromDockerRootDir } from '../runtimes/docker/userns.js';

export const USERNS_REMAP_DEFAULT = 'default';

/** As much of `docker info` as this step reads. */
export interface UsernsFacts {
  usernsRemapped?: boolean;
  rootDir?: string;
}

export interface UsernsCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface EnsureRemappedDeps<F extends UsernsFacts> {
  /** Asks the daemon; rejects while it does not answer (during a restart). */
  dockerFacts: () => Promise<F>;
  /** Restarts dockerd; rejects with the reason (and what to do) when it cannot. */
  restartDocker: () => Promise<void>;
  /** How long a restarted daemon may take to answer remapped; default 60 s. */
  waitMs?: number;
  pollMs?: number;
}

/** The check line for a daemon that remaps (or does not, after install asked for it). */
export function remappedCheck(facts: UsernsFacts): UsernsCheck {
  if (!facts.usernsRemapped) {
    return {
      name: 'userns-remap',
      ok: false,
      detail:
        'daemon.json sets "userns-remap" but the running daemon does not remap; restart dockerd (a reload is not enough), then run this command again',
    };
  }
  const root = rootFromDockerRootDir(facts.rootDir);
  return {
    name: 'userns-remap',
    ok: true,
    detail:
      `the daemon remaps user namespaces: root in steps is ${root ? `uid ${root.uid}` : 'an unprivileged uid'} on the host. ` +
      `Its images and containers live in ${facts.rootDir ?? 'a separate data directory'}: images of the daemon before the change are not visible, pull or load them again`,
  };
}

/**
 * Restarts the daemon when it does not remap yet, then waits until it answers remapped. Returns the
 * check line and the facts of the daemon as it is afterwards: `before` when it could not be
 * restarted (it runs on unchanged), undefined when it did not answer after the restart.
 */
export async function ensureDaemonRemaps<F extends UsernsFacts>(
  before: F,
  deps: EnsureRemappedDeps<F>,
): Promise<{ check: UsernsCheck; facts?: F }> {
  if (before.usernsRemapped) return { check: remappedCheck(before), facts: before };
  try {
    await deps.restartDocker();
  } catch (err) {
    return {
      check: {
        name: 'userns-remap',
        ok: false,
        detail: `daemon.json sets "userns-remap", which needs a restart of dockerd: ${errorMessage(err)}`,
      },
      facts: before,
    };
  }
  const deadline = Date.now() + (deps.waitMs ?? 60_000);
  let last: F | undefined;
  let lastError: unknown;
  for (;;) {
    try {
      last = await deps.dockerFacts();
      if (last.usernsRemapped) break;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, deps.pollMs ?? 500));
  }
  if (!last) {
    return {
      check: {
        name: 'userns-remap',
        ok: false,
        detail: `dockerd did not answer after the restart (${errorMessage(lastError)}); see its log (journalctl -u docker)`,
      },
    };
  }
  return { check: remappedCheck(last), facts: last };
}
