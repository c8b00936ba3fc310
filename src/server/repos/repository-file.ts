/**
 * The repositories file (`--repositories FILE`): a YAML list of repositories to register and keep
 * mirrored, for operators who keep configuration in git.
 *
 *     - name: org/app
 *       url: https://git.example.com/org/app.git
 *       credential: { usernameEnv: GIT_USER, passwordEnv: GIT_TOKEN }
 *
 * Read at start (every problem reported together, the server does not start with a bad file) and
 * again by each sync pass, so edits apply without a restart. Entries of the file replace any
 * registration of the same name; a repository the file registered and no longer lists is removed.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { ErrorDetail } from '../../lib/errors.js';
import type { NewRepository } from '../../store/types.js';
import { checkCredential } from './credentials.js';
import { checkRepositoryName } from './names.js';
import { checkRepositoryUrl } from './url-policy.js';

export class RepositoryFileError extends Error {
  constructor(
    readonly file: string,
    readonly problems: ErrorDetail[],
  ) {
    super(
      `invalid repositories file ${file}:\n${problems.map((p) => `  - ${p.path}: ${p.message}`).join('\n')}`,
    );
    this.name = 'RepositoryFileError';
  }
}

/** Parses and checks the file's text; throws RepositoryFileError listing every problem. */
export function parseRepositoryFile(text: string, file: string, allowLocal: boolean): NewRepository[] {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new RepositoryFileError(file, [
      { path: '(file)', message: `not valid YAML: ${(e as Error).message}` },
    ]);
  }
  if (doc === null || doc === undefined) return [];
  if (!Array.isArray(doc))
    throw new RepositoryFileError(file, [{ path: '(file)', message: 'must be a list' }]);
  const problems: ErrorDetail[] = [];
  const out: NewRepository[] = [];
  const seen = new Set<string>();
  doc.forEach((item: unknown, i) => {
    const at = `[${i}]`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      problems.push({ path: at, message: 'must be a mapping with name and url' });
      return;
    }
    const o = item as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (!['name', 'url', 'credential'].includes(k))
        problems.push({ path: `${at}.${k}`, message: 'unknown field; use name, url, credential' });
    const nameProblem = checkRepositoryName(o.name);
    if (nameProblem) problems.push({ path: `${at}.name`, message: nameProblem });
    else if (seen.has(o.name as string)) problems.push({ path: `${at}.name`, message: 'listed twice' });
    else seen.add(o.name as string);
    const url = typeof o.url === 'string' ? o.url : undefined;
    const urlCheck = url === undefined ? undefined : checkRepositoryUrl(url, allowLocal);
    if (url === undefined) problems.push({ path: `${at}.url`, message: 'must be a string' });
    else if (urlCheck && !urlCheck.ok) problems.push({ path: `${at}.url`, message: urlCheck.message });
    const cred = checkCredential(o.credential, { allowFiles: true, path: `${at}.credential` });
    if (!cred.ok) problems.push(...cred.problems);
    if (!nameProblem && url !== undefined && urlCheck?.ok && cred.ok) {
      out.push({ name: o.name as string, url, credential: cred.credential, source: 'file' });
    }
  });
  if (problems.length > 0) throw new RepositoryFileError(file, problems);
  return out;
}

export function readRepositoryFile(file: string, allowLocal: boolean): NewRepository[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new RepositoryFileError(file, [
      {
        path: '(file)',
        message: `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      },
    ]);
  }
  return parseRepositoryFile(text, file, allowLocal);
}
