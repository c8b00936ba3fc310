/**
 * V8 settings of the server's heap, set at start, before the heap grows.
 *
 * `setHeapGrowingPercent`: the old generation's growth step (`--heap-growing-percent`): after a
 * full collection V8 lets the old generation grow by this much before the next, instead of a
 * factor of its own choosing (up to several times the live heap). V8 reads it at every full
 * collection. 0 leaves it to V8.
 *
 * `stopPretenuring`: V8's allocation-site pretenuring off (`--no-allocation-site-pretenuring`). When
 * most objects made at one place in the code survive a young collection, V8 makes that place's
 * objects in the old generation from then on. At 10,000 idle executors with the heartbeat lane it
 * did so for places that make a heartbeat's objects, which live for well under a millisecond
 * (`--trace-pretenuring-statistics`): each heartbeat's objects, and the young ones they point to
 * (its head's strings, its body), were then promoted as they were made and died in the old
 * generation, which grew between full collections: 30 to 85 MiB of resident memory and 3 to 4
 * points of a core (docs/benchmarks.md, "Pretenuring off"). Left as it is when `node` was
 * started with a say on it.
 */
import { setFlagsFromString } from 'node:v8';

export function setHeapGrowingPercent(percent: number): void {
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${Math.floor(percent)}`);
}

const PRETENURING_FLAG = /--(no-)?allocation[-_]site[-_]pretenuring\b/;

/** True when it turned pretenuring off; false when node was started with a flag naming it. */
export function stopPretenuring(execArgv: readonly string[] = process.execArgv): boolean {
  if (execArgv.some((a) => PRETENURING_FLAG.test(a))) return false;
  setFlagsFromString('--no-allocation-site-pretenuring');
  return true;
}
