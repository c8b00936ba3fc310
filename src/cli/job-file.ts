/**
 * Reads a job file (YAML or JSON, from a path or `-` for stdin) and validates it as a JobSpec.
 * Problems are reported together, each with its field path and what is expected.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { type JobSpec, type SpecProblem, validateJobSpec } from '../protocol/job-spec.js';

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

/** Parses YAML (a superset of JSON) and validates. Throws JobFileError listing every problem. */
export function parseJobText(text: string, file = '<input>'): JobSpec {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new JobFileError(
      file,
      doc.errors.map((e) => ({
        path: e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '(syntax)',
        message: e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''),
      })),
    );
  }
  const value = doc.toJS();
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new JobFileError(file, [{ path: '(root)', message: 'must be a mapping with queue and steps' }]);
  }
  const r = validateJobSpec(value);
  if (!r.ok) throw new JobFileError(file, r.problems);
  return r.spec;
}

export async function readJobFile(file: string): Promise<JobSpec> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message;
    throw new JobFileError(file, [{ path: '(file)', message: `cannot read it: ${why}` }]);
  }
  return parseJobText(text, file === '-' ? '<stdin>' : file);
}
