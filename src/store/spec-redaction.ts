/**
 * What users may see of a stored JobSpec: secret values never leave the server. Each secret's value
 * becomes its placeholder `${{ secrets.NAME }}`, and so does every occurrence of a secret value
 * anywhere else in the spec (a value pasted into a step's env, command or file), longest value
 * first so that a secret containing another is replaced whole.
 */
import { type JobSpec, secretPlaceholder } from '../protocol/job-spec.js';

export function redactSpec(spec: JobSpec): JobSpec {
  const secrets = Object.entries(spec.secrets ?? {}).filter(([, v]) => v.length > 0);
  if (secrets.length === 0) return structuredClone(spec);
  secrets.sort((a, b) => b[1].length - a[1].length);
  const scrub = (s: string): string => {
    let out = s;
    for (const [name, value] of secrets) out = out.split(value).join(secretPlaceholder(name));
    return out;
  };
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return scrub(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [scrub(k), walk(x)]));
    }
    return v;
  };
  const redacted = walk({ ...spec, secrets: undefined }) as JobSpec;
  redacted.secrets = Object.fromEntries(secrets.map(([name]) => [name, secretPlaceholder(name)]));
  return redacted;
}
