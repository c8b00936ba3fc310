/**
 * SQL fragments several operations of the PostgreSQL store use, and the time convention: every
 * time parameter is written `COALESCE($n::bigint, <database now>)` (see postgres-store.ts).
 */

export const MIGRATION_LOCK_KEY = 'executor_schema_migrations';
export const RANK_STEP = '(SELECT rank_step_ms FROM store_settings WHERE id = 1)';

/** The database's time in epoch milliseconds; `now()` is the statement's transaction start. */
export const DB_NOW_MS = 'floor(extract(epoch FROM now()) * 1000)::bigint';
/** Time parameter $n: the caller's `now`, or the database's when bound to NULL (database clock). */
const atTexts: string[] = [];
export const at = (n: number): string => (atTexts[n] ??= `COALESCE($${n}::bigint, ${DB_NOW_MS})`);

const sqlTexts = new WeakMap<TemplateStringsArray, { values: readonly unknown[]; text: string }>();

/**
 * Tag of a statement built from a template (`sql\`... ${at(2)} ...\``): the same call site with the
 * same values gives back the same string object, so the statement's text is not rebuilt on every
 * call, and looking it up by text (its prepared-statement name, see connection.ts; pg's check that a
 * name keeps its text) compares one object with itself instead of hashing and comparing kilobytes.
 * A fresh template string per call made those lookups about 6 us a statement, ~7 % of a queue cycle.
 */
export function sql(strings: TemplateStringsArray, ...values: (string | number)[]): string {
  const hit = sqlTexts.get(strings);
  if (hit && hit.values.length === values.length && hit.values.every((v, i) => v === values[i]))
    return hit.text;
  let text = strings[0]!;
  for (let i = 0; i < values.length; i++) text += String(values[i]) + strings[i + 1]!;
  sqlTexts.set(strings, { values, text });
  return text;
}

/**
 * SET clause shared by markErrored and expireDeadlines. $1 message, $2 now, $3 retry.maxMs,
 * $4 retry.baseMs. `1 << least(num_failures, 40)` is 2^(n-1) for the n = num_failures + 1 failure
 * being recorded (retryDelayMs in types.ts).
 */
export const ERRORED_SET = `
  state = CASE WHEN cancel THEN 'canceled' WHEN attempts < max_attempts THEN 'queued' ELSE 'failed' END,
  num_failures = num_failures + CASE WHEN cancel THEN 0 ELSE 1 END,
  failure_message = $1::text,
  finished_at = CASE WHEN NOT cancel AND attempts < max_attempts THEN NULL ELSE ${at(2)} END,
  process_after = CASE WHEN NOT cancel AND attempts < max_attempts
    THEN ${at(2)} + LEAST($3::bigint, $4::bigint * (1::bigint << LEAST(num_failures, 40))) ELSE process_after END,
  queued_at = CASE WHEN NOT cancel AND attempts < max_attempts THEN ${at(2)} ELSE queued_at END,
  rank_key = CASE WHEN NOT cancel AND attempts < max_attempts
    THEN ${at(2)} - priority * ${RANK_STEP} ELSE rank_key END,
  started_at = CASE WHEN NOT cancel AND attempts < max_attempts THEN NULL ELSE started_at END`;
