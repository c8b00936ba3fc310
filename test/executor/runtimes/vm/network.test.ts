/**
 * The holder container of a VM job's network, as the Engine API receives it, and the guest's
 * resolvers. The holder running on a real network is in test/e2e/vm-network.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  FALLBACK_RESOLVERS,
  guestResolvers,
  holderCreateOptions,
  holderName,
} from '../../../../src/executor/runtimes/vm/network.js';

const INPUT = {
  network: 'executor-jobs',
  image: 'alpine:3',
  executorName: 'host 1',
  hostname: 'h1',
  pid: 4242,
  jobUid: '42-batches',
};

describe('holderCreateOptions', () => {
  it("a stopped shell under Docker's init on the job network, labelled like step containers, with nothing else", () => {
    const o = holderCreateOptions(INPUT);
    expect(o.name).toBe('executor-vmnet-host_1-42-batches');
    expect(o.Image).toBe('alpine:3');
    expect(o.Entrypoint).toEqual(['/bin/sh', '-c', 'kill -STOP $$']);
    expect(o.User).toBe('0:0');
    expect(o.Labels).toEqual({
      'executor.name': 'host 1',
      'executor.host': 'h1',
      'executor.pid': '4242',
      'executor.job': '42-batches',
      'executor.step': 'vm-network',
    });
    expect(o.HostConfig).toMatchObject({
      NetworkMode: 'executor-jobs',
      Init: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
    });
    expect(o.HostConfig?.Binds).toBeUndefined();
    expect(o.HostConfig?.Privileged).toBeUndefined();
  });

  it('names are what Docker takes', () => {
    expect(holderName('a/b:c', '1-q')).toBe('executor-vmnet-a_b_c-1-q');
  });
});

describe('guestResolvers', () => {
  const files = (m: Record<string, string>) => async (p: string) => {
    if (p in m) return m[p]!;
    throw new Error('ENOENT');
  };

  it("the host's IPv4 resolvers, without loopback ones", async () => {
    expect(
      await guestResolvers(files({ '/etc/resolv.conf': 'nameserver 192.0.2.53\nnameserver 2001:db8::53\n' })),
    ).toEqual(['192.0.2.53']);
  });

  it("systemd-resolved's upstream behind its stub; Docker's public fallback when nothing is left", async () => {
    expect(
      await guestResolvers(
        files({
          '/etc/resolv.conf': 'nameserver 127.0.0.53\n',
          '/run/systemd/resolve/resolv.conf': 'nameserver 198.51.100.53\n',
        }),
      ),
    ).toEqual(['198.51.100.53']);
    expect(await guestResolvers(files({ '/etc/resolv.conf': 'nameserver 127.0.0.1\n' }))).toEqual(
      FALLBACK_RESOLVERS,
    );
  });
});
