/**
 * V8's old-generation growth step for this process (`--heap-growing-percent`): after a full
 * collection V8 lets the old generation grow by this much before the next, instead of a factor of
 * its own choosing (up to several times the live heap). Set at start, before the heap grows; V8
 * reads it at every full collection. 0 leaves it to V8.
 */
import { setFlagsFromString } from 'node:v8';

export function setHeapGrowingPercent(percent: number): void {
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${Math.floor(percent)}`);
}
