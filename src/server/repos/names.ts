/** What may be registered as a mirrored repository's name. */
import { isValidRepoName } from '../executor-api/git.js';

/**
 * A JobSpec repository name (`org/app`), at most 200 characters, no segment starting with `.`
 * (`.executor-tmp` holds first fetches) and none ending in `.git` (the mirror is `<name>.git`).
 */
export function checkRepositoryName(name: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'must be a non-empty string';
  if (name.length > 200) return 'must be at most 200 characters';
  if (!isValidRepoName(name))
    return 'must be like "org/app": letters, digits, ".", "_" or "-", separated by "/"';
  if (name.split('/').some((s) => s.startsWith('.') || s.endsWith('.git')))
    return 'must have no part starting with "." or ending in ".git"';
  return undefined;
}
