/**
 * Kubernetes resource quantities (`apimachinery/pkg/api/resource`): the grammar the API server
 * parses `resources.limits`, `sizeLimit` and `storage` with, and an exact comparison.
 *
 *   <quantity> ::= <sign><number><suffix>
 *   <number>   ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
 *   <suffix>   ::= "" | Ki | Mi | Gi | Ti | Pi | Ei        (binary: powers of 1024)
 *                | n | u | m | k | M | G | T | P | E     (decimal: powers of 1000)
 *                | e<sign><digits> | E<sign><digits>     (decimal exponent)
 *
 * So `5G`, `5Gi`, `500m`, `1.5` and `1e3` are quantities; `5GB`, `5K` (the decimal kilo is `k`) and
 * `5 Gi` are not.
 */

const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;

const BINARY: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const DECIMAL: Record<string, number> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
/** Decimal exponents beyond this are refused: no real limit or size is 10^100 bytes or cores. */
const MAX_EXPONENT = 100;

/** Valid examples, for messages. */
export const QUANTITY_EXAMPLES = '"5Gi", "512Mi", "5G", "500m" or "2"';

/** An exact value: numerator / denominator, both non-negative except the numerator's sign. */
export interface Quantity {
  readonly num: bigint;
  readonly den: bigint;
}

/** The value of a Kubernetes quantity, or undefined when `text` is not one. */
export function parseQuantity(text: string): Quantity | undefined {
  const m = QUANTITY.exec(text);
  if (!m) return undefined;
  const [, sign, number, suffix = ''] = m as unknown as [string, string, string, string | undefined];
  const [whole = '', frac = ''] = number.split('.');
  let num = BigInt(`${whole || '0'}${frac}`) * (sign === '-' ? -1n : 1n);
  let den = 10n ** BigInt(frac.length);
  let exp = 0;
  if (suffix in BINARY) num *= 1024n ** BigInt(BINARY[suffix]!);
  else if (suffix in DECIMAL) exp = DECIMAL[suffix]!;
  else if (suffix) exp = Number(suffix.slice(1));
  if (Math.abs(exp) > MAX_EXPONENT) return undefined;
  if (exp > 0) num *= 10n ** BigInt(exp);
  if (exp < 0) den *= 10n ** BigInt(-exp);
  return { num, den };
}

/** -1, 0 or 1 as a is less than, equal to or greater than b. */
export function compareQuantities(a: Quantity, b: Quantity): number {
  const l = a.num * b.den;
  const r = b.num * a.den;
  return l < r ? -1 : l > r ? 1 : 0;
}

export const isPositive = (q: Quantity): boolean => q.num > 0n;
