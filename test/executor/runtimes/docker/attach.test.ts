/**
 * Attaching to a container's output, against the real Docker daemon (its local socket), and the
 * dockerode path for other hosts with a fake daemon client (no tcp daemon runs here).
 */
import { PassThrough } from 'node:stream';
import Dockerode from 'dockerode';
import { afterEach, describe, expect, it } from 'vitest';
import { attachOutput } from '../../../../src/executor/runtimes/docker/attach.js';
import { createDemuxer } from '../../../../src/executor/runtimes/docker/demux.js';
import { dockerAvailable, dockerImagePresent, requireOrSkip } from '../../../helpers/env.js';

const IMAGE = 'executor-test/busybox:latest';

const haveImage =
  requireOrSkip('Docker', dockerAvailable()) && requireOrSkip(`image ${IMAGE}`, dockerImagePresent(IMAGE));

describe.skipIf(!haveImage)('docker attach over the daemon socket (real daemon)', () => {
  const docker = new Dockerode();
  const created: string[] = [];
  afterEach(async () => {
    for (const id of created.splice(0))
      await docker
        .getContainer(id)
        .remove({ force: true })
        .catch(() => {});
  });

  async function run(script: string) {
    const c = await docker.createContainer({
      Image: IMAGE,
      Cmd: ['sh', '-c', script],
      HostConfig: { LogConfig: { Type: 'none', Config: {} }, NetworkMode: 'none' },
    });
    created.push(c.id);
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    const buffers = new Set<ArrayBufferLike>();
    const demux = createDemuxer((name, bytes) => out[name].push(Buffer.from(bytes)));
    const { ended } = await attachOutput(docker, c.id, (chunk) => {
      buffers.add(chunk.buffer);
      demux(chunk);
    });
    await c.start();
    await c.wait();
    await ended;
    return { stdout: Buffer.concat(out.stdout), stderr: Buffer.concat(out.stderr), buffers };
  }

  it('passes on all output of both streams, from before the start to the exit', async () => {
    // 1 MiB on stdout, more than one read; the first line is written as the container starts.
    const got = await run(
      'echo first; echo oops >&2; head -c 1048576 /dev/zero | tr "\\0" x; echo; echo last >&2',
    );
    expect(got.stdout.length).toBe('first\n'.length + 1048576 + 1);
    expect(got.stdout.subarray(0, 6).toString()).toBe('first\n');
    expect(got.stderr.toString()).toBe('oops\nlast\n');
  });

  it('reads into one buffer, reused for every read', async () => {
    const got = await run('head -c 4194304 /dev/zero');
    expect(got.stdout.length).toBe(4194304);
    expect(got.buffers.size).toBe(1);
  });

  it("rejects with the daemon's message when it cannot attach", async () => {
    await expect(attachOutput(docker, 'no-such-container-for-attach-test', () => {})).rejects.toThrow(
      /docker attach: HTTP 404: No such container/,
    );
  });
});

describe('docker attach through dockerode (a host without a local socket)', () => {
  it('passes the stream on and settles when it ends (fake daemon client)', async () => {
    const stream = new PassThrough();
    const fakeDocker = {
      modem: { host: '10.0.0.1', port: 2375 },
      getContainer: (id: string) => ({
        attach: async (opts: unknown) => {
          expect(id).toBe('c1');
          expect(opts).toEqual({ stream: true, stdout: true, stderr: true });
          return stream;
        },
      }),
    } as unknown as Dockerode;
    const chunks: string[] = [];
    const { ended } = await attachOutput(fakeDocker, 'c1', (c) => chunks.push(c.toString()));
    stream.write('abc');
    stream.end('def');
    await ended;
    expect(chunks.join('')).toBe('abcdef');
  });
});
