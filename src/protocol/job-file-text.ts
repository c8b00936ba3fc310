/**
 * A job file's text -> a validated job file, and a job file whose secrets are values -> the JobSpec
 * the server validates. This is the one code path of `executor submit` (cli/job-file.ts, which adds
 * reading files and resolving `fromEnv`/`fromFile`) and of the dashboard's "Submit job" form, so
 * both report the same problems in the same words. Pure: no I/O, so it runs in a browser too.
 */
import { parseDocument } from 'yaml';
import { type JobFile, type JobSpec, jobFileSchema, validateJobSpec } from './job-spec.js';
import { type SpecProblem, specProblems } from './spec-problems.js';

export type Checked<T> = { ok: true; value: T } | { ok: false; problems: SpecProblem[] };

/**
 * Parses YAML (a superset of JSON) and validates it as a job file; secrets may still name their
 * source. Every problem is reported: YAML syntax by line and column, fields by their path.
 */
export function checkJobFileText(text: string): Checked<JobFile> {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({
        path: e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '(syntax)',
        // The first line only: the rest quotes the file, which may hold a secret.
        message: e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''),
      })),
    };
  }
  const value = doc.toJS();
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, problems: [{ path: '(root)', message: 'must be a mapping with queue and steps' }] };
  }
  const r = jobFileSchema.safeParse(value);
  if (!r.success) return { ok: false, problems: specProblems(jobFileSchema, r.error) };
  return { ok: true, value: r.data };
}

/**
 * The JobSpec of a job file whose secrets are all values, validated as the server will. A secret
 * that still names a source (`fromEnv`, `fromFile`) is a problem worded by `unresolved`: the CLI
 * and the dashboard resolve sources differently and say so differently.
 */
export function jobSpecOfFile(job: JobFile, unresolved: string): Checked<JobSpec> {
  const { secrets, ...rest } = job;
  const inline: Record<string, string> = {};
  const named: string[] = [];
  for (const [name, source] of Object.entries(secrets ?? {})) {
    if (typeof source === 'string') inline[name] = source;
    else named.push(name);
  }
  if (named.length > 0) {
    return { ok: false, problems: named.map((n) => ({ path: `secrets.${n}`, message: unresolved })) };
  }
  const r = validateJobSpec(secrets ? { ...rest, secrets: inline } : rest);
  return r.ok ? { ok: true, value: r.spec } : { ok: false, problems: r.problems };
}
