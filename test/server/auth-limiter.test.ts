import { describe, expect, it } from 'vitest';
import { createFakeClock } from '../../src/lib/clock.js';
import { createAuthLimiter, createAuthRefusalMetrics, peerOf } from '../../src/server/auth-limiter.js';

const peer = (p: string) => ({ peer: p });

describe('auth failure limiter', () => {
  it('refuses a peer after `limit` failures, until the window from the first failure passes', () => {
    const clock = createFakeClock();
    const l = createAuthLimiter({ limit: 3, windowMs: 60_000, clock });
    for (let i = 0; i < 3; i++) {
      expect(l.blocked(peer('10.0.0.1'))).toBeNull();
      l.failed(peer('10.0.0.1'));
      clock.advance(1000);
    }
    // First failure at t0, now t0+3s: 57 s left.
    expect(l.blocked(peer('10.0.0.1'))).toBe(57);
    expect(l.blocked(peer('10.0.0.2'))).toBeNull();
    clock.advance(56_500);
    expect(l.blocked(peer('10.0.0.1'))).toBe(1);
    clock.advance(500);
    expect(l.blocked(peer('10.0.0.1'))).toBeNull();
    // A new window starts with the next failure.
    l.failed(peer('10.0.0.1'));
    expect(l.blocked(peer('10.0.0.1'))).toBeNull();
  });

  it('failures spread wider than the window never block', () => {
    const clock = createFakeClock();
    const l = createAuthLimiter({ limit: 2, windowMs: 10_000, clock });
    for (let i = 0; i < 10; i++) {
      l.failed(peer('a'));
      expect(l.blocked(peer('a'))).toBeNull();
      clock.advance(10_000);
    }
  });

  it('successes are not counted: only failed() moves a key', () => {
    const clock = createFakeClock();
    const l = createAuthLimiter({ limit: 2, windowMs: 60_000, clock });
    l.failed(peer('a'));
    // Asking (what every successful request does) many times changes nothing.
    for (let i = 0; i < 100; i++) expect(l.blocked(peer('a'))).toBeNull();
    l.failed(peer('a'));
    expect(l.blocked(peer('a'))).not.toBeNull();
  });

  it('a token name is limited across peers, and blocks every peer presenting it', () => {
    const clock = createFakeClock();
    const l = createAuthLimiter({ limit: 2, windowMs: 60_000, clock });
    l.failed({ peer: 'p1', tokenName: 'ci' });
    l.failed({ peer: 'p2', tokenName: 'ci' });
    expect(l.blocked({ peer: 'p3', tokenName: 'ci' })).toBe(60);
    expect(l.blocked({ peer: 'p3', tokenName: 'other' })).toBeNull();
    expect(l.blocked(peer('p1'))).toBeNull();
    // A name that looks like an address does not share the address's window.
    expect(l.blocked(peer('ci'))).toBeNull();
  });

  it('holds at most maxEntries keys, evicting the oldest window first', () => {
    const clock = createFakeClock();
    const l = createAuthLimiter({ limit: 1, windowMs: 60_000, maxEntries: 100, clock });
    for (let i = 0; i < 250; i++) {
      l.failed(peer(`10.0.${i >> 8}.${i & 255}`));
      clock.advance(1);
    }
    expect(l.size()).toBe(100);
    // The first 150 were evicted (forgotten, so let in); the newest 100 are still blocked.
    expect(l.blocked(peer('10.0.0.0'))).toBeNull();
    expect(l.blocked(peer('10.0.0.149'))).toBeNull();
    expect(l.blocked(peer('10.0.0.150'))).not.toBeNull();
    expect(l.blocked(peer('10.0.0.249'))).not.toBeNull();
  });

  it('forgets expired windows as new failures come in', () => {
    const clock = createFakeClock();
    const l = createAuthLimiter({ limit: 5, windowMs: 1000, clock });
    for (let i = 0; i < 50; i++) l.failed(peer(`old-${i}`));
    expect(l.size()).toBe(50);
    clock.advance(1000);
    l.failed(peer('new'));
    expect(l.size()).toBe(1);
  });
});

describe('peerOf', () => {
  const of = (remoteAddress: string) => peerOf({ socket: { remoteAddress } } as never);
  it('uses the socket address: IPv4 as is, mapped IPv4 unwrapped, IPv6 by its /64', () => {
    expect(of('192.0.2.7')).toBe('192.0.2.7');
    expect(of('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(of('2001:db8:0:5:1:2:3:4')).toBe('2001:db8:0:5::/64');
    expect(of('2001:db8:0:5::9')).toBe(of('2001:0db8:0000:0005:ffff::1'));
    expect(of('2001:db8:0:6::9')).not.toBe(of('2001:db8:0:5::9'));
  });
  it('never reads forwarding headers', () => {
    const req = {
      socket: { remoteAddress: '192.0.2.7' },
      headers: { 'x-forwarded-for': '198.51.100.1', forwarded: 'for=198.51.100.1' },
    };
    expect(peerOf(req as never)).toBe('192.0.2.7');
  });
});

describe('refusal counter', () => {
  it('exposes every api and reason from zero, then counts', () => {
    const m = createAuthRefusalMetrics();
    expect(m.render()).toContain(
      'src_executor_server_auth_refusals_total{api="user",reason="rate_limited"} 0',
    );
    m.count('user', 'rate_limited');
    m.count('user', 'rate_limited');
    m.count('executor', 'unauthenticated');
    const text = m.render();
    expect(text).toContain('src_executor_server_auth_refusals_total{api="user",reason="rate_limited"} 2');
    expect(text).toContain(
      'src_executor_server_auth_refusals_total{api="executor",reason="unauthenticated"} 1',
    );
    expect(text).toContain('# TYPE src_executor_server_auth_refusals_total counter');
  });
});
