/**
 * The api_tokens part of the Store contract (run by contract.ts against both twins): unique names,
 * replacement of revoked or expired tokens, revocation, lookup by hash and the rate-limited
 * last-used touch. Time is the contract suite's fake time.
 */
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { API_TOKEN_TOUCH_MS, type Store } from '../../src/store/types.js';

const T0 = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;
const hash = () => createHash('sha256').update(randomBytes(32)).digest('hex');

export function apiTokenContract(store: () => Store): void {
  describe('api tokens', () => {
    it('creates a token once per name and finds it by its hash', async () => {
      const h = hash();
      const t = await store().createApiToken(
        { name: 'ci', scope: 'submit', tokenHash: h, expiresAt: null },
        T0,
      );
      expect(t).toEqual({
        name: 'ci',
        scope: 'submit',
        createdAt: T0,
        lastUsedAt: null,
        expiresAt: null,
        revokedAt: null,
      });
      expect(
        await store().createApiToken(
          { name: 'ci', scope: 'admin', tokenHash: hash(), expiresAt: null },
          T0 + 1,
        ),
      ).toBeNull();
      expect((await store().findApiTokenByHash(h, T0 + 5))?.scope).toBe('submit');
      expect(await store().findApiTokenByHash(hash(), T0 + 5)).toBeNull();
    });

    it('touches lastUsedAt at most once per API_TOKEN_TOUCH_MS', async () => {
      const h = hash();
      await store().createApiToken({ name: 'reader', scope: 'read', tokenHash: h, expiresAt: null }, T0);
      expect((await store().findApiTokenByHash(h, T0 + 10))?.lastUsedAt).toBe(T0 + 10);
      expect((await store().findApiTokenByHash(h, T0 + 20))?.lastUsedAt).toBe(T0 + 10);
      const later = T0 + 10 + API_TOKEN_TOUCH_MS + 1;
      expect((await store().findApiTokenByHash(h, later))?.lastUsedAt).toBe(later);
      expect((await store().listApiTokens())[0]?.lastUsedAt).toBe(later);
    });

    it('revokes by name, keeps the first revocation time, and lists revoked tokens', async () => {
      const h = hash();
      await store().createApiToken({ name: 'b', scope: 'read', tokenHash: h, expiresAt: null }, T0);
      await store().createApiToken({ name: 'a', scope: 'admin', tokenHash: hash(), expiresAt: T0 + DAY }, T0);
      expect((await store().revokeApiToken('b', T0 + 1))?.revokedAt).toBe(T0 + 1);
      expect((await store().revokeApiToken('b', T0 + 2))?.revokedAt).toBe(T0 + 1);
      expect(await store().revokeApiToken('nope', T0 + 2)).toBeNull();
      const found = await store().findApiTokenByHash(h, T0 + 3);
      expect(found?.revokedAt).toBe(T0 + 1);
      // A revoked token is never touched.
      expect(found?.lastUsedAt).toBeNull();
      expect((await store().listApiTokens()).map((t) => [t.name, t.revokedAt, t.expiresAt])).toEqual([
        ['a', null, T0 + DAY],
        ['b', T0 + 1, null],
      ]);
    });

    it('a revoked or expired token gives its name to a new one', async () => {
      const old = hash();
      await store().createApiToken({ name: 'x', scope: 'read', tokenHash: old, expiresAt: null }, T0);
      await store().revokeApiToken('x', T0 + 1);
      const fresh = hash();
      const t = await store().createApiToken(
        { name: 'x', scope: 'admin', tokenHash: fresh, expiresAt: T0 + DAY },
        T0 + 2,
      );
      expect(t).toMatchObject({ name: 'x', scope: 'admin', revokedAt: null, createdAt: T0 + 2 });
      expect(await store().findApiTokenByHash(old, T0 + 3)).toBeNull();
      expect((await store().findApiTokenByHash(fresh, T0 + 3))?.scope).toBe('admin');
      // Still live one millisecond before it expires, replaceable from its expiry on.
      expect(
        await store().createApiToken(
          { name: 'x', scope: 'read', tokenHash: hash(), expiresAt: null },
          T0 + DAY - 1,
        ),
      ).toBeNull();
      const expired = await store().findApiTokenByHash(fresh, T0 + DAY);
      expect(expired?.expiresAt).toBe(T0 + DAY);
      expect(expired?.lastUsedAt).toBe(T0 + 3);
      expect(
        (
          await store().createApiToken(
            { name: 'x', scope: 'read', tokenHash: hash(), expiresAt: null },
            T0 + DAY,
          )
        )?.scope,
      ).toBe('read');
    });
  });
}
