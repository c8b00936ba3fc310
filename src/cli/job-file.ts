/**
 * Reads a job file (YAML or JSON, from a path or `-` for stdin) and validates it against the job
 * file schema (protocol/job-spec.ts). Problems are reported together, each with its field path and
 * what is expected. Secrets given as `{ fromEnv }` or `{ fromFile }` (or with `--secret`) are
 * resolved here, in memory: their values are never printed nor written anywhere by the CLI.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { checkJobFileText, jobSpecOfFile } from '../protocol/job-file-text.js';
import type { JobFile, JobSpec, SecretSource } from '../protocol/job-spec.js';
import type { SpecProblem } from '../protocol/spec-problems.js';

export class JobFileError extends Error {
  constructor(
    readonly file: string,
    readonly problems: SpecProblem[],
  ) {
    super(
      problems.length === 1
        ? `${file}: ${problems[0]!.path === '(file)' ? '' : `${problems[0]!.path}: `}${problems[0]!.message}`
        : `${file} is not a valid job:\n${problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`,
    );
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Parses YAML (a superset of JSON) and validates it as a job file; secrets may still name their
 * source. Throws JobFileError listing every problem. The checks are protocol/job-file-text.ts, which
 * the dashboard's "Submit job" form runs too.
 */
export function parseJobFileText(text: string, file = '<input>'): JobFile {
  const r = checkJobFileText(text);
  if (!r.ok) throw new JobFileError(file, r.problems);
  return r.value;
}

/** Parses and validates a job file whose secrets are all inline (no fromEnv, no fromFile). */
export function parseJobText(text: string, file = '<input>'): JobSpec {
  return toJobSpec(parseJobFileText(text, file), file);
}

/** Reads a secret file: its content with one trailing newline dropped (as `echo x > file` writes). */
async function readSecretFile(name: string, path: string, file: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).replace(/\r?\n$/, '');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code;
    throw new JobFileError(file, [
      { path: `secrets.${name}`, message: `cannot read secret file ${path}: ${why ?? (e as Error).message}` },
    ]);
  }
}

export interface SecretOptions {
  /** The environment `fromEnv` and `--secret NAME` read (default process.env). */
  env?: Record<string, string | undefined>;
  /** The directory `fromFile` paths in the job file are relative to (default: the job file's). */
  baseDir?: string;
  /** `--secret` flags, which add to and override the file's secrets. */
  flags?: readonly string[];
}

/** The `--secret` option of submit and exec, repeatable. */
export const SECRET_FLAG = '--secret <name[=envvar]|name@file>';
export const SECRET_FLAG_HELP =
  'Add a secret: NAME takes the value of the environment variable NAME, NAME=ENVVAR of ENVVAR, NAME@FILE the content of FILE (repeatable; overrides the job file)';

/** Commander's collector for a repeatable option. */
export const collect = (value: string, previous: string[]): string[] => [...previous, value];

/**
 * Parses one `--secret` flag: `NAME` (from the environment variable NAME), `NAME=ENVVAR` (from
 * ENVVAR) or `NAME@FILE` (from a file, relative to the working directory).
 */
export function parseSecretFlag(flag: string): { name: string; source: SecretSource } {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(=)([A-Za-z_][A-Za-z0-9_]*)|(@)(.+))?$/.exec(flag);
  if (!m) {
    throw new JobFileError('--secret', [
      {
        path: JSON.stringify(flag),
        message:
          'must be NAME (value from the environment variable NAME), NAME=ENVVAR or NAME@FILE, where NAME and ENVVAR are environment variable names',
      },
    ]);
  }
  const [, name, eq, envVar, at, path] = m;
  if (at) return { name: name!, source: { fromFile: resolve(path!) } };
  return { name: name!, source: { fromEnv: eq ? envVar! : name! } };
}

/**
 * Resolves every secret's source and validates the result as the server will. A missing variable or
 * file is an error naming the secret; nothing is returned, so nothing is submitted.
 */
async function resolveJobFile(job: JobFile, file: string, opts: SecretOptions): Promise<JobSpec> {
  const env = opts.env ?? process.env;
  const baseDir = opts.baseDir ?? process.cwd();
  const sources: Record<string, SecretSource> = { ...(job.secrets ?? {}) };
  for (const f of opts.flags ?? []) {
    const { name, source } = parseSecretFlag(f);
    sources[name] = source;
  }
  const values: Record<string, string> = {};
  const problems: SpecProblem[] = [];
  for (const [name, source] of Object.entries(sources)) {
    if (typeof source === 'string') values[name] = source;
    else if ('fromEnv' in source) {
      const v = env[source.fromEnv];
      if (v === undefined) {
        problems.push({
          path: `secrets.${name}`,
          message: `environment variable ${source.fromEnv} is not set (export it, or pass --secret ${name}@FILE)`,
        });
      } else if (v === '') {
        problems.push({
          path: `secrets.${name}`,
          message: `environment variable ${source.fromEnv} is empty`,
        });
      } else values[name] = v;
    } else {
      try {
        const v = await readSecretFile(name, resolve(baseDir, source.fromFile), file);
        if (v === '')
          problems.push({ path: `secrets.${name}`, message: `secret file ${source.fromFile} is empty` });
        else values[name] = v;
      } catch (e) {
        problems.push(...(e as JobFileError).problems);
      }
    }
  }
  if (problems.length > 0) throw new JobFileError(file, problems);
  return toJobSpec({ ...job, secrets: Object.keys(sources).length ? values : undefined }, file);
}

/** The JobSpec of a job file whose secrets are all values, validated as the server will. */
function toJobSpec(job: JobFile, file: string): JobSpec {
  const r = jobSpecOfFile(job, 'names a source (fromEnv or fromFile), which `executor submit` resolves');
  if (!r.ok) throw new JobFileError(file, r.problems);
  return r.value;
}

/**
 * Reads, validates and resolves a job file: the JobSpec to submit, with every secret's value.
 * `fromFile` paths are relative to the job file's directory (the working directory for stdin).
 */
export async function readJobFile(file: string, opts: SecretOptions = {}): Promise<JobSpec> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message;
    throw new JobFileError(file, [{ path: '(file)', message: `cannot read it: ${why}` }]);
  }
  const name = file === '-' ? '<stdin>' : file;
  const job = parseJobFileText(text, name);
  return resolveJobFile(job, name, {
    baseDir: file === '-' ? process.cwd() : dirname(resolve(file)),
    ...opts,
  });
}
