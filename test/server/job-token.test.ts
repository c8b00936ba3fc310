/**
 * Job tokens drawn from the pooled generator: the right shape, each one new across pool refills,
 * and hashed the way job-route authentication hashes a presented token.
 */
import { describe, expect, it } from 'vitest';
import { hashJobToken, newJobToken } from '../../src/server/executor-api/auth.js';

describe('newJobToken', () => {
  it('gives 20-byte hex tokens, never the same one twice across pool refills', () => {
    const seen = new Set<string>();
    // 256 tokens fit in the pool: 2,000 cross seven refills.
    for (let i = 0; i < 2000; i++) {
      const { token } = newJobToken();
      expect(token).toMatch(/^[0-9a-f]{40}$/);
      seen.add(token);
    }
    expect(seen.size).toBe(2000);
  });

  it('returns the hash that authentication computes from the token', () => {
    for (let i = 0; i < 300; i++) {
      const { token, hash } = newJobToken();
      expect(hash).toBe(hashJobToken(token));
    }
  });

  it('does not hand out a zeroed (already used) slice of the pool', () => {
    for (let i = 0; i < 600; i++) expect(newJobToken().token).not.toBe('0'.repeat(40));
  });
});
