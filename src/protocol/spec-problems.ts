/**
 * Turns zod issues into problems a user can act on, each with its field path: a missing field is
 * `required` (not zod's "Invalid input" for a union), an unknown field is named on its own with
 * "did you mean `steps`?" when a known field is close, and a union that matched in type reports the
 * matching branch's own problems.
 */
import { z } from 'zod';

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

/** The object schemas that may sit at `path` inside `schema` (unions give several). */
function objectsAt(schema: z.ZodTypeAny, path: readonly (string | number)[]): z.AnyZodObject[] {
  let s: z.ZodTypeAny = schema;
  for (;;) {
    if (s instanceof z.ZodEffects) s = s.innerType();
    else if (s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s.unwrap();
    else if (s instanceof z.ZodDefault) s = s.removeDefault();
    else break;
  }
  if (s instanceof z.ZodUnion) {
    return (s.options as z.ZodTypeAny[]).flatMap((o) => objectsAt(o, path));
  }
  if (path.length === 0) return s instanceof z.ZodObject ? [s] : [];
  const [head, ...rest] = path;
  if (s instanceof z.ZodObject && typeof head === 'string') {
    const child = (s.shape as Record<string, z.ZodTypeAny>)[head];
    return child ? objectsAt(child, rest) : [];
  }
  if (s instanceof z.ZodArray && typeof head === 'number') return objectsAt(s.element, rest);
  if (s instanceof z.ZodRecord) return objectsAt(s.valueSchema, rest);
  return [];
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The known field closest to `key`, when it is close enough to be a typo (or a case slip). */
export function closestField(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const k of known) {
    const d = k.toLowerCase() === key.toLowerCase() ? 0 : distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined;
}

function problemsOfIssue(schema: z.ZodTypeAny, issue: z.ZodIssue): SpecProblem[] {
  if (issue.code === 'unrecognized_keys') {
    const known = [...new Set(objectsAt(schema, issue.path).flatMap((o) => Object.keys(o.shape)))];
    return issue.keys.map((k) => {
      const near = closestField(k, known);
      return {
        path: formatPath([...issue.path, k]),
        message: `unknown field${near ? `; did you mean \`${near}\`?` : known.length ? ` (known: ${known.join(', ')})` : ''}`,
      };
    });
  }
  if (issue.code === 'invalid_type' && issue.received === 'undefined') {
    return [{ path: formatPath(issue.path), message: 'required' }];
  }
  if (issue.code === 'invalid_union') {
    const branches = issue.unionErrors.map((e) => e.issues);
    // Every branch missed on the value's type at the union itself: absent, or no branch's type.
    const typeMiss = (issues: z.ZodIssue[]) =>
      issues.length === 1 &&
      issues[0]!.code === 'invalid_type' &&
      issues[0]!.path.length === issue.path.length;
    if (branches.every(typeMiss)) {
      const received = (branches[0]![0] as z.ZodInvalidTypeIssue).received;
      if (received === 'undefined') return [{ path: formatPath(issue.path), message: 'required' }];
      const message = issue.message === 'Invalid input' ? `has the wrong type (${received})` : issue.message;
      return [{ path: formatPath(issue.path), message }];
    }
    const matched = branches.filter((b) => !typeMiss(b));
    // The branches whose type matched: report the one that got furthest (fewest problems).
    const best = matched.sort((a, b) => a.length - b.length)[0]!;
    return best.flatMap((i) => problemsOfIssue(schema, i));
  }
  return [{ path: formatPath(issue.path), message: issue.message }];
}

/** Every problem of a failed parse of `schema`, in the order zod found them, without repeats. */
export function specProblems(schema: z.ZodTypeAny, error: z.ZodError): SpecProblem[] {
  const seen = new Set<string>();
  const out: SpecProblem[] = [];
  for (const p of error.issues.flatMap((i) => problemsOfIssue(schema, i))) {
    const k = `${p.path}\0${p.message}`;
    if (!seen.has(k)) {
      seen.add(k);
      out.push(p);
    }
  }
  return out;
}
