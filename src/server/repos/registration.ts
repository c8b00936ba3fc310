/** The body of `POST /api/v1/repositories`, checked: every problem reported together. */
import { AppError, type ErrorDetail } from '../../lib/errors.js';
import type { RepositoryCredential } from '../../store/types.js';
import { checkCredential } from './credentials.js';
import { checkRepositoryName } from './names.js';
import { checkRepositoryUrl } from './url-policy.js';

export function parseRegistration(
  input: unknown,
  allowLocal: boolean,
): { name: string; url: string; credential: RepositoryCredential | null } {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new AppError('VALIDATION', 'Send {"name", "url", "credential"?}.');
  }
  const o = input as Record<string, unknown>;
  const problems: ErrorDetail[] = [];
  for (const k of Object.keys(o))
    if (!['name', 'url', 'credential'].includes(k))
      problems.push({ path: k, message: 'unknown field; use name, url, credential' });
  const nameProblem = checkRepositoryName(o.name);
  if (nameProblem) problems.push({ path: 'name', message: nameProblem });
  if (typeof o.url !== 'string') problems.push({ path: 'url', message: 'must be a string' });
  else {
    const u = checkRepositoryUrl(o.url, allowLocal);
    if (!u.ok) problems.push({ path: 'url', message: u.message });
  }
  const cred = checkCredential(o.credential, { allowFiles: false, path: 'credential' });
  if (!cred.ok) problems.push(...cred.problems);
  if (problems.length > 0 || !cred.ok) {
    throw new AppError('VALIDATION', 'The repository has invalid fields.', { details: problems });
  }
  return { name: o.name as string, url: o.url as string, credential: cred.credential };
}
