/**
 * The network of VM steps under EXECUTOR_JOB_NETWORK=isolated (or bridge): QEMU's user-mode
 * networking (slirp: the guest's TCP connections and UDP datagrams become sockets of the QEMU
 * process) with QEMU started inside the network namespace of a holder container on the job's
 * Docker network. The guest's traffic thus leaves through that network's bridge from the holder's
 * address, and meets exactly the firewall rules docker steps meet (egress-rules.ts): no rule of
 * its own, nothing to keep in step.
 *
 * One holder per job, created in the runner's setup and removed in its teardown; labelled like step
 * containers (docker/convert.ts LABELS), so the docker janitor's rules remove what a crashed
 * executor left. The holder runs the job's first image with `/bin/sh` stopping itself under
 * Docker's init: it needs nothing of the image but a shell (which the guest init requires anyway),
 * uses no CPU, and holds the namespace until it is removed.
 *
 * DNS: the guest's /etc/resolv.conf names the resolvers Docker's embedded DNS forwards to
 * (egress-inputs.ts dockerResolvers), which the isolated network's rules allow on port 53; the
 * guest asks them directly through slirp. With only loopback resolvers on the host Docker falls
 * back to public ones, and so does this.
 */
import type Dockerode from 'dockerode';
import type { ContainerCreateOptions } from 'dockerode';
import { errorMessage } from '../../../lib/errors.js';
import { dockerResolvers } from '../../network/egress-inputs.js';
import { LABELS } from '../docker/convert.js';
import { forceRemove } from '../docker/engine.js';

/** The `executor.step` label of holders (step containers carry the step's key there). */
export const HOLDER_STEP_LABEL = 'vm-network';

/** Docker's own fallback when the host has only loopback resolvers (libnetwork's defaults). */
export const FALLBACK_RESOLVERS = ['8.8.8.8', '8.8.4.4'];

export interface HolderInput {
  /** The Docker network: EXECUTOR_JOB_NETWORK_NAME for isolated, `bridge` for bridge. */
  network: string;
  image: string;
  executorName: string;
  hostname: string;
  pid: number;
  jobUid: string;
}

/** The container's name: `executor-vmnet-<executor>-<jobUid>`, with only characters Docker takes. */
export function holderName(executorName: string, jobUid: string): string {
  return `executor-vmnet-${executorName}-${jobUid}`.replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** The Engine API create body of a job's holder. */
export function holderCreateOptions(input: HolderInput): ContainerCreateOptions {
  return {
    name: holderName(input.executorName, input.jobUid),
    Image: input.image,
    // The shell stops itself (SIGSTOP); Docker's init (Init: true) is PID 1 and waits for it, as PID 1
    // itself could not be stopped. Root (0:0): the image's USER, resolved by Docker, could fail here
    // for reasons that are the step's to report.
    Entrypoint: ['/bin/sh', '-c', 'kill -STOP $$'],
    Cmd: [],
    User: '0:0',
    Labels: {
      [LABELS.name]: input.executorName,
      [LABELS.host]: input.hostname,
      [LABELS.pid]: String(input.pid),
      [LABELS.job]: input.jobUid,
      [LABELS.step]: HOLDER_STEP_LABEL,
    },
    HostConfig: {
      NetworkMode: input.network,
      Init: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
      PidsLimit: 4,
      Memory: 32 * 1024 * 1024,
      LogConfig: { Type: 'none', Config: {} },
    },
  };
}

/** A job's holder: the network namespace QEMU joins, the guest's resolvers, and its removal. */
export interface VmNetwork {
  /** Path of the holder's network namespace (`NetworkSettings.SandboxKey`), for `nsenter --net=`. */
  netns: string;
  /** Addresses for the guest's /etc/resolv.conf. */
  resolvers: string[];
  /** Removes the holder; idempotent. */
  remove(): Promise<void>;
}

/** The guest's resolvers: Docker's upstream ones, else Docker's public fallback. */
export async function guestResolvers(read?: (p: string) => Promise<string>): Promise<string[]> {
  const servers = (await dockerResolvers(read)).filter((a) => !a.includes(':'));
  return servers.length > 0 ? servers : FALLBACK_RESOLVERS;
}

/** Creates and starts the holder; on failure removes what it made and says what happened. */
export async function createVmNetwork(docker: Dockerode, input: HolderInput): Promise<VmNetwork> {
  const opts = holderCreateOptions(input);
  let id: string | undefined;
  const remove = async () => {
    if (id) await forceRemove(docker, id);
  };
  try {
    // A holder of the same job left by an earlier attempt that crashed: replace it.
    await forceRemove(docker, opts.name!);
    const container = await docker.createContainer(opts);
    id = container.id;
    await container.start();
    const info = await container.inspect();
    const netns = info.NetworkSettings?.SandboxKey;
    if (!info.State?.Running || !netns) {
      throw new Error(`it is not running (state ${info.State?.Status ?? 'unknown'})`);
    }
    return { netns, resolvers: await guestResolvers(), remove };
  } catch (err) {
    await remove().catch(() => {});
    throw new Error(
      `cannot start the holder container of the VMs' network on Docker network ${input.network} (image ${input.image}): ${errorMessage(err)}`,
    );
  }
}
