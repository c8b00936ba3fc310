/**
 * The isolated network's holders: the attach to it taken off the job's path. Docker's attach of a
 * container to a user-defined bridge network (a veth pair, the embedded DNS in the container's
 * namespace) cost about 400 ms per container (docs/benchmarks.md, step.isolated), paid by every
 * step. Here, as with Kubernetes' pause containers, a holder container (the pause program of
 * pause-image.ts) is started on the network ahead of time, and each step of a job joins the
 * holder's network namespace (`container:<id>`), which costs nothing: its addresses, routes, DNS
 * and firewall rules are exactly those of a container on the network.
 *
 * Contract:
 * - A holder serves one job: `take()` hands it out once, to one job, and `giveBack()` (the job
 *   ended, its steps removed) removes it in the background. Holders are never reused, so no job
 *   sees another's network state (sockets, the hosts file, conntrack entries of its address).
 * - Per job slot one holder is kept idle: each `giveBack()` starts a fresh one, in the
 *   background, for the next job. `take()` hands out a started one, else one still starting
 *   (which it waits for), else starts one on the job's path; the first job of each slot after
 *   start does that. A started holder that is no longer running is removed and skipped.
 * - Without a pause program for the daemon's architecture, or when a holder cannot be started,
 *   the lease is undefined and the job's steps attach to the network themselves (correct, slower).
 * - Every holder's token is known from before its create call until it has been removed; the
 *   janitor removes a holder of this pool whose token is unknown (`isOrphan`) and any holder whose
 *   executor process is gone (orphans.ts).
 */
import { randomBytes } from 'node:crypto';
import type Dockerode from 'dockerode';
import type { ContainerCreateOptions } from 'dockerode';
import type { Logger } from '../../../lib/logger.js';
import { forceRemove } from './engine.js';
import { ensurePauseImage, PAUSE_PATH } from './pause-image.js';

export interface Holder {
  id: string;
  token: string;
}

/** A job's claim on a holder; resolves undefined when steps must attach to the network themselves. */
export type HolderLease = Promise<Holder | undefined>;

export interface NetworkHolders {
  /** Takes a holder for one job. Never rejects. */
  take(): HolderLease;
  /** The job ended and its steps are gone: removes its holder and starts the next one. */
  giveBack(lease: HolderLease): void;
  /** Whether a holder container with this token belongs to this pool but is unknown to it. */
  isOrphan(token: string): boolean;
  /** Removes the idle holders and waits for every removal; starts no more. After the last job. */
  close(): Promise<void>;
}

export interface NetworkHoldersOptions {
  docker: Dockerode;
  /** EXECUTOR_MAXIMUM_NUM_JOBS: idle holders kept. */
  slots: number;
  /** convert.ts' holderCreateOptions with the runtime's settings. */
  createOptions(token: string, image: string, entrypoint: string): ContainerCreateOptions;
  log: Logger;
}

interface Entry {
  holder: Promise<Holder | undefined>;
  state: 'starting' | 'ready' | 'failed';
}

export function createNetworkHolders(opts: NetworkHoldersOptions): NetworkHolders {
  const { docker, log } = opts;
  const pool = randomBytes(4).toString('hex');
  let seq = 0;
  const known = new Set<string>();
  const idle: Entry[] = [];
  const background = new Set<Promise<unknown>>();
  let taken = 0;
  let closed = false;
  let image: Promise<string | undefined> | undefined;

  function pauseImage(): Promise<string | undefined> {
    image ??= ensurePauseImage(docker).then(
      (ref) => {
        if (!ref) {
          log.info(
            "no network holder program for the Docker host's architecture; steps attach to the isolated network themselves",
          );
        }
        return ref;
      },
      (err: unknown) => {
        image = undefined;
        throw err;
      },
    );
    return image;
  }

  function track(p: Promise<unknown>): void {
    background.add(p);
    void p.finally(() => background.delete(p));
  }

  async function remove(h: Holder): Promise<void> {
    try {
      await forceRemove(docker, h.id);
    } catch (err) {
      log.warn('cannot remove a network holder; the janitor will', { id: h.id.slice(0, 12), err });
    } finally {
      known.delete(h.token);
    }
  }

  /** Creates and starts one holder; on failure removes what it made and rejects. */
  async function start(): Promise<Holder | undefined> {
    const ref = await pauseImage();
    if (!ref) return undefined;
    const token = `${pool}-${++seq}`;
    known.add(token);
    let id: string | undefined;
    try {
      const c = await docker.createContainer(opts.createOptions(token, ref, PAUSE_PATH));
      id = c.id;
      await c.start();
      return { id, token };
    } catch (err) {
      if (id) await forceRemove(docker, id).catch(() => {});
      known.delete(token);
      throw err;
    }
  }

  function fill(): void {
    while (!closed && idle.length + taken < opts.slots) {
      const e: Entry = { holder: start(), state: 'starting' };
      void e.holder.then(
        (h) => {
          e.state = h ? 'ready' : 'failed';
        },
        (err: unknown) => {
          e.state = 'failed';
          const i = idle.indexOf(e);
          if (i >= 0) idle.splice(i, 1);
          log.warn('cannot start a network holder; the next job starts its own', { err });
        },
      );
      idle.push(e);
    }
  }

  /** Whether the holder still runs; one the daemon cannot tell about counts as stopped. */
  async function running(h: Holder): Promise<boolean> {
    try {
      const info = await docker.getContainer(h.id).inspect();
      return info.State?.Running === true;
    } catch {
      return false;
    }
  }

  async function takeOne(): Promise<Holder | undefined> {
    for (;;) {
      // Chosen synchronously, before any await: two jobs never get the same entry.
      const i = idle.findIndex((e) => e.state === 'ready');
      const e = i >= 0 ? idle.splice(i, 1)[0] : idle.shift();
      if (!e) break;
      const h = await e.holder.catch(() => undefined);
      if (!h) continue;
      if (await running(h)) return h;
      log.info('an idle network holder had stopped; removed it', { id: h.id.slice(0, 12) });
      track(remove(h));
    }
    // None started or starting: this job starts its own.
    return start();
  }

  return {
    take(): HolderLease {
      taken++;
      const lease = takeOne().catch((err: unknown) => {
        log.warn(
          "cannot start a network holder; this job's steps attach to the isolated network themselves",
          {
            err,
          },
        );
        return undefined;
      });
      // The other slots' holders, on the first take after start.
      fill();
      return lease;
    },

    giveBack(lease: HolderLease): void {
      taken--;
      track(lease.then((h) => (h ? remove(h) : undefined)));
      fill();
    },

    isOrphan(token: string): boolean {
      return token.startsWith(`${pool}-`) && !known.has(token);
    },

    async close(): Promise<void> {
      closed = true;
      for (const e of idle.splice(0))
        track(
          e.holder.then(
            (h) => (h ? remove(h) : undefined),
            () => {},
          ),
        );
      while (background.size > 0) await Promise.allSettled([...background]);
    },
  };
}
