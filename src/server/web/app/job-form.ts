/**
 * The "Submit job" form's pure parts (no DOM, unit-tested in Node): which secrets a job file names,
 * the values the form sends for them, the file's text with the inline values taken out, and the
 * hint about the job's queue. Validation itself is protocol/job-file-text.ts, the CLI's own code.
 */
import { isMap, isScalar, parseDocument } from 'yaml';
import { type Checked, jobSpecOfFile } from '../../../protocol/job-file-text.js';
import type { JobFile, JobSpec, SpecProblem } from '../../../protocol/job-spec.js';
import { secretPlaceholder } from '../../../protocol/job-spec.js';
import type { QueueView } from '../../../protocol/user-api.js';

/** What the form is prefilled with: a small job that runs on any runtime. */
export const EXAMPLE_JOB = `# A job file, as \`executor submit\` reads it (YAML or JSON).
queue: default
steps:
  - key: hello
    image: alpine:3.20
    run: echo "hello from $(hostname)"
# secrets:
#   API_TOKEN: { fromEnv: API_TOKEN }  # a field below asks for its value
`;

/** Where a secret's value comes from, as the job file says. */
export type SecretField =
  | { name: string; kind: 'inline' }
  | { name: string; kind: 'env'; from: string }
  | { name: string; kind: 'file'; from: string }
  | { name: string; kind: 'other' };

/**
 * The queue and the secrets the text names (secrets in file order), even when the rest of the file
 * is not valid yet: the form shows a value field per name and the queue's hint while the user
 * types. Secret values are never returned.
 */
export function peekJobText(text: string): { queue: string | undefined; secrets: SecretField[] } {
  let value: { queue?: unknown; secrets?: unknown } | null;
  try {
    value = parseDocument(text, { uniqueKeys: false }).toJS() as typeof value;
  } catch {
    return { queue: undefined, secrets: [] };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { queue: undefined, secrets: [] };
  }
  const queue = typeof value.queue === 'string' ? value.queue : undefined;
  const s = value.secrets;
  if (s === null || typeof s !== 'object' || Array.isArray(s)) return { queue, secrets: [] };
  const secrets = Object.entries(s as Record<string, unknown>).map(([name, source]): SecretField => {
    if (typeof source === 'string') return { name, kind: 'inline' };
    const o = (source ?? {}) as { fromEnv?: unknown; fromFile?: unknown };
    if (typeof o.fromEnv === 'string') return { name, kind: 'env', from: o.fromEnv };
    if (typeof o.fromFile === 'string') return { name, kind: 'file', from: o.fromFile };
    return { name, kind: 'other' };
  });
  return { queue, secrets };
}

/** Why a secret that names a source needs its value typed into the form. */
export function unresolvedMessage(field: SecretField): string {
  const what =
    field.kind === 'env'
      ? `the environment variable ${field.from}`
      : field.kind === 'file'
        ? `the file ${field.from}`
        : 'its source';
  return `a browser cannot read ${what}: enter the value in the field ${field.name} under Secrets (or use \`executor submit\`, which reads it)`;
}

/**
 * The JobSpec to send: each secret's value is what was typed into its field, else the file's inline
 * value; a secret naming a source with an empty field is a problem at `secrets.NAME`. Then the same
 * validation as `executor submit` (protocol/job-file-text.ts).
 */
export function jobSpecOfForm(job: JobFile, entered: Readonly<Record<string, string>>): Checked<JobSpec> {
  // Every secret is a value by then, so jobSpecOfFile's wording for a named source is never used.
  if (!job.secrets) return jobSpecOfFile(job, '');
  const values: Record<string, string> = {};
  const problems: SpecProblem[] = [];
  for (const [name, source] of Object.entries(job.secrets)) {
    const typed = entered[name];
    if (typed) values[name] = typed;
    else if (typeof source === 'string') values[name] = source;
    else {
      const field: SecretField =
        'fromEnv' in source
          ? { name, kind: 'env', from: source.fromEnv }
          : { name, kind: 'file', from: source.fromFile };
      problems.push({ path: `secrets.${name}`, message: unresolvedMessage(field) });
    }
  }
  if (problems.length > 0) return { ok: false, problems };
  return jobSpecOfFile({ ...job, secrets: values }, '');
}

/** Values shorter than this are not searched for elsewhere in the text (as the server's mask). */
export const MIN_MASKED_LENGTH = 4;

/**
 * The text without secret values, to keep in the form after a submit: each inline secret becomes
 * `NAME: { fromEnv: NAME }` (the file stays valid for `executor submit`, and the form asks for the
 * value again), and any other occurrence of a sent value of MIN_MASKED_LENGTH characters or more is
 * replaced by its `${{ secrets.NAME }}` placeholder.
 */
export function withoutSecretValues(text: string, sent: Readonly<Record<string, string>>): string {
  let out = text;
  try {
    const doc = parseDocument(text, { uniqueKeys: false });
    const map = doc.get('secrets', true);
    if (isMap(map)) {
      const cuts: Array<{ name: string; range: readonly [number, number, number] }> = [];
      for (const p of map.items) {
        if (isScalar(p.key) && isScalar(p.value) && typeof p.value.value === 'string' && p.value.range)
          cuts.push({ name: String(p.key.value), range: p.value.range });
      }
      // From the end, so earlier offsets stay valid.
      cuts.sort((a, b) => b.range[0] - a.range[0]);
      for (const c of cuts) {
        // A block scalar's range ends after its line break: keep the break.
        const tail = /\s*$/.exec(out.slice(c.range[0], c.range[1]))![0];
        out = `${out.slice(0, c.range[0])}{ fromEnv: ${c.name} }${tail}${out.slice(c.range[1])}`;
      }
    }
  } catch {
    // not YAML: only the textual mask below applies
  }
  return maskValues(out, sent);
}

/** Replaces every sent secret value in a message by its placeholder (for the server's messages). */
export function maskValues(message: string, sent: Readonly<Record<string, string>>): string {
  let out = message;
  for (const [name, value] of Object.entries(sent).sort((a, b) => b[1].length - a[1].length)) {
    if (value.length >= MIN_MASKED_LENGTH) out = out.split(value).join(secretPlaceholder(name));
  }
  return out;
}

/** The queues active executors poll, sorted. */
export function polledQueues(queues: readonly QueueView[]): string[] {
  return queues
    .filter((q) => q.pollers > 0)
    .map((q) => q.queue)
    .sort();
}

/**
 * One line about the job's queue: who polls it, or that the job would wait. Empty while the
 * executors are not known yet (`polled` undefined).
 */
export function queueHint(queue: string | undefined, polled: readonly string[] | undefined): string {
  if (!polled) return '';
  const known = polled.length ? `Queues active executors poll: ${polled.join(', ')}.` : '';
  if (!queue) return known || 'No executor is active now: a job waits in its queue until one polls it.';
  if (polled.includes(queue)) return `Queue ${queue} is polled by an active executor. ${known}`;
  return `No active executor polls queue ${queue}: the job waits until one does. ${known}`.trim();
}
