import { appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
/**
 * The chaos suite runs at two sizes: `ci` (the default, inside `npm test`) and `full`
 * (`npm run chaos`, CHAOS_SCALE=full). Scenarios read their counts through `scaled`.
 */
export type ChaosScale = 'ci' | 'full';

export const CHAOS_SCALE: ChaosScale = process.env.CHAOS_SCALE === 'full' ? 'full' : 'ci';

export function scaled<T>(ci: T, full: T): T {
  return CHAOS_SCALE === 'full' ? full : ci;
}

/** Seed of every random schedule; printed by each scenario so a failure can be replayed. */
export const CHAOS_SEED = Number(process.env.CHAOS_SEED ?? Date.now() % 1_000_000);

/** A small deterministic PRNG (mulberry32). */
export function createRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Publishes a scenario's figures: one `CHAOS-RESULT {...}` line on stdout and one JSON line in
 * CHAOS_RESULTS (default: executor-chaos-results.jsonl in the OS temp dir), the source of the
 * results table in docs/reliability.md.
 */
export function publish(scenario: string, figures: Record<string, unknown>): void {
  const line = JSON.stringify({
    scenario,
    scale: CHAOS_SCALE,
    seed: CHAOS_SEED,
    at: new Date().toISOString(),
    ...figures,
  });
  console.log(`CHAOS-RESULT ${line}`);
  appendFileSync(process.env.CHAOS_RESULTS ?? join(tmpdir(), 'executor-chaos-results.jsonl'), `${line}\n`);
}
