/**
 * JobSpec: what a user submits (`POST /api/v1/jobs`, `executor submit`, `executor exec`). The server
 * turns it into a Sourcegraph Job at dequeue (steps -> dockerSteps, env as K=V, secrets as step env
 * and as redactedValues `value -> ${{ secrets.NAME }}`).
 */
import { z } from 'zod';
import { parseDurationMs } from '../lib/duration.js';

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
      .optional(),
    image: z.string().min(1, 'is required: the container image this step runs in').max(512),
    run: z.union([
      z.string().min(1, 'must not be empty'),
      z.array(z.string()).min(1, 'must list at least one command'),
    ]),
    dir: relativePath.optional(),
    env: z
      .record(z.string())
      .refine((e) => Object.keys(e).every((k) => ENV_NAME.test(k)), {
        message: 'keys must be environment variable names',
      })
      .optional(),
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
      }),
    commit: z.string().min(1, 'is required: a commit sha, branch or tag').max(256),
    directory: relativePath.optional(),
    fetchTags: z.boolean().optional(),
    shallow: z.boolean().optional(),
    sparse: z.array(z.string().min(1)).optional(),
  })
  .strict();

export const fileSpecSchema = z.union([
  z.string(),
  z
    .object({
      base64: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be standard base64'),
    })
    .strict(),
]);

export const jobSpecSchema = z
  .object({
    queue: z.string().regex(NAME, 'must be letters, digits, "_", "." or "-" (for example "default")'),
    repository: repositorySpecSchema.optional(),
    files: z
      .record(fileSpecSchema)
      .superRefine((files, ctx) => {
        for (const p of Object.keys(files)) {
          const r = relativePath.safeParse(p);
          if (!r.success) ctx.addIssue({ code: 'custom', path: [p], message: r.error.issues[0]!.message });
        }
      })
      .optional(),
    steps: z.array(stepSpecSchema).min(1, 'must list at least one step').max(100),
    secrets: z
      .record(z.string().min(1, 'secret values must not be empty'))
      .superRefine((s, ctx) => {
        for (const k of Object.keys(s)) {
          if (!ENV_NAME.test(k))
            ctx.addIssue({ code: 'custom', path: [k], message: 'must be an environment variable name' });
        }
      })
      .optional(),
    timeout: duration.optional(),
    maxAttempts: z.number().int().min(1).max(100).optional(),
    priority: z.number().int().min(-1000).max(1000).optional(),
  })
  .strict()
  .superRefine((spec, ctx) => {
    const seen = new Set<string>();
    spec.steps.forEach((s, i) => {
      const key = s.key ?? String(i);
      if (seen.has(key))
        ctx.addIssue({ code: 'custom', path: ['steps', i, 'key'], message: `duplicate step key "${key}"` });
      seen.add(key);
    });
  });

export type JobSpec = z.output<typeof jobSpecSchema>;
export type StepSpec = z.output<typeof stepSpecSchema>;

export interface SpecProblem {
  path: string;
  message: string;
}

/** `steps[0].image`, `files["a b"]`: a path as a user would write it in YAML or JSON. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(p)) out += out ? `.${p}` : p;
    else out += `[${JSON.stringify(p)}]`;
  }
  return out || '(root)';
}

/** Validates a JobSpec, returning every problem with its field path. */
export function validateJobSpec(
  input: unknown,
): { ok: true; spec: JobSpec } | { ok: false; problems: SpecProblem[] } {
  const r = jobSpecSchema.safeParse(input);
  if (r.success) return { ok: true, spec: r.data };
  return {
    ok: false,
    problems: r.error.issues.map((i) => ({
      path: formatPath(i.path),
      message: i.code === 'unrecognized_keys' ? `unknown field(s): ${i.keys.join(', ')}` : i.message,
    })),
  };
}

/** The redaction replacement for a secret value: `${{ secrets.NAME }}`, as Sourcegraph writes it. */
export function secretPlaceholder(name: string): string {
  return `\${{ secrets.${name} }}`;
}
