import fc from 'fast-check';
import { Pod } from 'kubernetes-models/v1/Pod';
import { describe, expect, it } from 'vitest';
import { compareQuantities, isPositive, parseQuantity } from '../../src/lib/quantity.js';

/** Whether the upstream OpenAPI schema (format "quantity") accepts `q` as a memory limit. */
function schemaAccepts(q: string): boolean {
  try {
    new Pod({
      metadata: { name: 'p' },
      spec: { containers: [{ name: 'c', image: 'i', resources: { limits: { memory: q } } }] },
    }).validate();
    return true;
  } catch {
    return false;
  }
}

const cmp = (a: string, b: string) => compareQuantities(parseQuantity(a)!, parseQuantity(b)!);

describe('Kubernetes quantities', () => {
  it('accepts what the upstream schema accepts, and nothing it refuses', () => {
    const chars = ['0', '1', '5', '.', '+', '-', 'e', 'E', 'k', 'K', 'm', 'M', 'G', 'i', 'B', ' ', 'n', 'u'];
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...chars), maxLength: 6 }), (s) => {
        const ours = parseQuantity(s) !== undefined;
        if (ours) expect(schemaAccepts(s), s).toBe(true);
        // Refusals of ours the schema lacks: exponents beyond 10^100, and exponents with a decimal
        // point, which the schema's pattern allows but the API server's parser refuses.
        else if (schemaAccepts(s)) expect(s).toMatch(/[eE][+-]?(\d{3,}|\d*\.\d*)$/);
      }),
      { numRuns: 2000 },
    );
    for (const s of ['5G', '5Gi', '500m', '.5', '5.', '+1', '1e3', '1E-2', '3Ei']) {
      expect(parseQuantity(s), s).toBeDefined();
    }
    for (const s of ['5GB', '5K', '5 Gi', 'Gi', '', '1.2.3', 'e3', '5gi', '1e1000']) {
      expect(parseQuantity(s), s).toBeUndefined();
    }
  });

  it('compares exactly across units', () => {
    expect(cmp('1Gi', '1024Mi')).toBe(0);
    expect(cmp('1025Mi', '1Gi')).toBe(1);
    expect(cmp('1G', '1Gi')).toBe(-1);
    expect(cmp('500m', '0.5')).toBe(0);
    expect(cmp('1e3', '1k')).toBe(0);
    expect(cmp('1n', '1u')).toBe(-1);
    expect(cmp('1.5', '1500m')).toBe(0);
    expect(cmp('-1', '0')).toBe(-1);
    expect(isPositive(parseQuantity('0.000')!)).toBe(false);
    expect(isPositive(parseQuantity('1n')!)).toBe(true);
  });
});
