/**
 * JobSpec: what a user submits (`POST /api/v1/jobs`, `executor submit`, `executor exec`). The server
 * turns it into a Sourcegraph Job at dequeue (steps -> dockerSteps, env as K=V, secrets as step env
 * and as redactedValues `value -> ${{ secrets.NAME }}`).
 */
import { z } from 'zod';
import { parseDurationMs } from '../lib/duration.js';
import { type SpecProblem, specProblems } from './spec-problems.js';

export { formatPath, type SpecProblem } from './spec-problems.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const relativePath = z
  .string()
  .min(1)
  .max(4096)
  .refine((p) => !p.startsWith('/') && !p.split(/[\\/]/).includes('..') && !p.includes('\0'), {
    message: 'must be a relative path inside the workspace (no leading "/", no "..")',
  });

const duration = z.string().refine((s) => (parseDurationMs(s) ?? 0) > 0, {
  message: 'must be a duration such as "90s", "30m" or "2h"',
});

export const stepSpecSchema = z
  .object({
    key: z
      .string()
      .regex(NAME, 'must be letters, digits, "_", "." or "-", starting with a letter or digit')
      .optional()
      .describe('Names the step in logs (step.docker.KEY); unique within the job. Default: its index.'),
    image: z
      .string()
      .min(1, 'is required: the container image this step runs in')
      .max(512)
      .describe('The container image this step runs in, such as "alpine:3.20".'),
    run: z
      .union(
        [
          z.string().min(1, 'must not be empty'),
          z.array(z.string()).min(1, 'must list at least one command'),
        ],
        { errorMap: () => ({ message: 'must be a shell command or a list of commands' }) },
      )
      .describe('The shell script this step runs (sh -c), or a list of commands run one after another.'),
    dir: relativePath
      .optional()
      .describe('Working directory of the step, relative to the workspace (default: the workspace).'),
    env: z
      .record(z.string())
      .refine((e) => Object.keys(e).every((k) => ENV_NAME.test(k)), {
        message: 'keys must be environment variable names',
      })
      .optional()
      .describe('Environment variables of this step (NAME: value); values are not redacted.'),
  })
  .strict();

export const repositorySpecSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .max(512)
      .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, 'must be a repository name like "org/repo"')
      .refine((n) => !n.split('/').some((p) => p === '.' || p === '..'), {
        message: 'must not contain . or ..',
      })
      .describe('The repository on the server, such as "org/repo".'),
    commit: z
      .string()
      .min(1, 'is required: a commit sha, branch or tag')
      .max(256)
      .describe('A commit sha, branch or tag; resolved to a sha when the job is submitted.'),
    directory: relativePath
      .optional()
      .describe('Where to check it out, relative to the workspace (default: the workspace itself).'),
    fetchTags: z.boolean().optional().describe('Fetch the tags too (default false).'),
    shallow: z.boolean().optional().describe('Fetch only the commit, without history (default false).'),
    sparse: z
      .array(z.string().min(1))
      .optional()
      .describe('Check out only these paths (sparse checkout; default: everything).'),
  })
  .strict();

export const fileSpecSchema = z.union([
  z.string(),
  z
    .object({
      base64: z
        .string()
        .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be standard base64')
        .describe('The content as standard base64, for binary files.'),
    })
    .strict(),
]);

const secretNames = (s: Record<string, unknown>, ctx: z.RefinementCtx): void => {
  for (const k of Object.keys(s)) {
    if (!ENV_NAME.test(k))
      ctx.addIssue({ code: 'custom', path: [k], message: 'must be an environment variable name' });
  }
};

const checkStepKeys = (spec: { steps: { key?: string }[] }, ctx: z.RefinementCtx): void => {
  const seen = new Set<string>();
  spec.steps.forEach((s, i) => {
    const key = s.key ?? String(i);
    if (seen.has(key))
      ctx.addIssue({ code: 'custom', path: ['steps', i, 'key'], message: `duplicate step key "${key}"` });
    seen.add(key);
  });
};

const jobSpecObject = z
  .object({
    queue: z
      .string()
      .regex(NAME, 'must be letters, digits, "_", "." or "-" (for example "default")')
      .describe('The queue the job waits in; executors poll named queues.'),
    repository: repositorySpecSchema.optional().describe('A repository from the server to check out first.'),
    files: z
      .record(fileSpecSchema)
      .superRefine((files, ctx) => {
        for (const p of Object.keys(files)) {
          const r = relativePath.safeParse(p);
          if (!r.success) ctx.addIssue({ code: 'custom', path: [p], message: r.error.issues[0]!.message });
        }
      })
      .optional()
      .describe('Files written into the workspace before the steps: relative path -> text or { base64 }.'),
    steps: z
      .array(stepSpecSchema)
      .min(1, 'must list at least one step')
      .max(100)
      .describe('The steps, run in order in the same workspace; the job fails at the first failing step.'),
    secrets: z
      .record(
        z
          .string({ invalid_type_error: 'must be the value (fromEnv and fromFile are resolved by the CLI)' })
          .min(1, 'secret values must not be empty'),
      )
      .superRefine(secretNames)
      .optional()
      .describe('Environment variables for every step whose values are redacted from logs.'),
    timeout: duration
      .optional()
      .describe('How long the job may run, such as "90s", "30m" or "2h" (server default 30m).'),
    maxAttempts: z
      .number()
      .int()
      .min(1)
      .max(100)
      .optional()
      .describe(
        'Attempts in all: an attempt that errors is queued again while attempts are left (server default 1).',
      ),
    priority: z
      .number()
      .int()
      .min(-1000)
      .max(1000)
      .optional()
      .describe('Higher runs first within a queue (default 0).'),
  })
  .strict();

export const jobSpecSchema = jobSpecObject.superRefine(checkStepKeys);

/**
 * Where a job file's secret comes from: inline text, an environment variable (`fromEnv`) or a file
 * (`fromFile`, relative to the job file). The CLI resolves the last two at submit; the server only
 * ever sees values.
 */
export const secretSourceSchema = z.union(
  [
    z.string().min(1, 'secret values must not be empty'),
    z
      .object({
        fromEnv: z
          .string()
          .regex(ENV_NAME, 'must be an environment variable name')
          .describe('Read the value from this environment variable of the submitting shell.'),
      })
      .strict(),
    z
      .object({
        fromFile: z
          .string()
          .min(1, 'must be a file path')
          .describe(
            'Read the value from this file (relative to the job file; one trailing newline is dropped).',
          ),
      })
      .strict(),
  ],
  { errorMap: () => ({ message: 'must be the value, { fromEnv: VAR } or { fromFile: PATH }' }) },
);

export type SecretSource = z.output<typeof secretSourceSchema>;

/**
 * A job file: the server's JobSpec with secrets that may name their source. Derived from
 * jobSpecSchema, so every other field is the definition the server validates with.
 */
export const jobFileSchema = jobSpecObject
  .extend({
    secrets: z
      .record(secretSourceSchema)
      .superRefine(secretNames)
      .optional()
      .describe(
        'Environment variables for every step whose values are redacted from logs: inline, { fromEnv: VAR } or { fromFile: PATH }.',
      ),
  })
  .superRefine(checkStepKeys);

export type JobFile = z.output<typeof jobFileSchema>;

export type JobSpec = z.output<typeof jobSpecSchema>;
export type StepSpec = z.output<typeof stepSpecSchema>;

/** Validates a JobSpec, returning every problem with its field path. */
export function validateJobSpec(
  input: unknown,
): { ok: true; spec: JobSpec } | { ok: false; problems: SpecProblem[] } {
  const r = jobSpecSchema.safeParse(input);
  if (r.success) return { ok: true, spec: r.data };
  return {
    ok: false,
    problems: specProblems(jobSpecSchema, r.error),
  };
}

/** The redaction replacement for a secret value: `${{ secrets.NAME }}`, as Sourcegraph writes it. */
export function secretPlaceholder(name: string): string {
  return `\${{ secrets.${name} }}`;
}
