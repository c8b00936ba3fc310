/**
 * setHeapGrowingPercent (the server's EXECUTOR_SERVER_HEAP_GROWING_PERCENT) changes how far V8 lets
 * the heap grow: two real Node processes replace long-lived objects in waves, as parked requests
 * do, one with V8's own growth and one with a step of 20 %, and report the largest heap they held.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const MODULE = fileURLToPath(new URL('../../src/lib/heap-growth.ts', import.meta.url));

/** The largest total heap (MiB) of a child that churns long-lived objects after setting `percent`. */
function churnHeapMiB(percent: number): number {
  const code = `
    import { getHeapStatistics } from 'node:v8';
    import { setHeapGrowingPercent } from ${JSON.stringify(MODULE)};
    setHeapGrowingPercent(${percent});
    const live = new Array(150000);
    let max = 0;
    for (let round = 0; round < 40; round++) {
      for (let i = 0; i < live.length; i++)
        if ((i + round) % 4 === 0) live[i] = { a: new Array(40).fill(round), s: 'x' + i + round };
      max = Math.max(max, getHeapStatistics().total_heap_size);
    }
    process.stdout.write(String(max / 2 ** 20));
  `;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    encoding: 'utf8',
  });
  return Number(out);
}

describe('setHeapGrowingPercent', () => {
  it('20 % keeps the heap well below what V8 lets it grow to; 0 leaves V8 its own', () => {
    const own = churnHeapMiB(0);
    const bounded = churnHeapMiB(20);
    expect(own).toBeGreaterThan(0);
    expect(bounded).toBeLessThan(own * 0.7);
  }, 60_000);
});
