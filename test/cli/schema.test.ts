import { readdirSync, readFileSync } from 'node:fs';
import Ajv2019 from 'ajv/dist/2019.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { jobFileJsonSchema } from '../../src/cli/schema.js';
import { jobFileSchema } from '../../src/protocol/job-spec.js';
import { spawnCli } from '../helpers/spawn-cli.js';

const root = new URL('../../', import.meta.url);
const read = (p: string) => readFileSync(new URL(p, root), 'utf8');

/** Every field path of the job file definition: `queue`, `repository.name`, `steps[].run`, ... */
function fieldPaths(schema: z.ZodTypeAny, prefix = ''): string[] {
  let s = schema;
  while (s instanceof z.ZodEffects || s instanceof z.ZodOptional) {
    s = s instanceof z.ZodEffects ? s.innerType() : s.unwrap();
  }
  if (s instanceof z.ZodArray) return fieldPaths(s.element, `${prefix}[]`);
  if (!(s instanceof z.ZodObject)) return [];
  return Object.entries(s.shape as Record<string, z.ZodTypeAny>).flatMap(([k, v]) => {
    const p = prefix ? `${prefix}.${k}` : k;
    return [p, ...fieldPaths(v, p)];
  });
}

describe('the job file JSON Schema', () => {
  const schema = jobFileJsonSchema();
  const ajv = new Ajv2019.default({ strict: false, allErrors: true });
  const validate = ajv.compile(schema);

  it('is published as docs/job-file.schema.json exactly as `executor schema job` prints it', async () => {
    expect(JSON.parse(read('docs/job-file.schema.json'))).toEqual(schema);
    const p = spawnCli(['schema', 'job']);
    expect(await p.exited).toBe(0);
    expect(JSON.parse(p.output())).toEqual(schema);
    const bad = spawnCli(['schema', 'jobs']);
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toContain('executor schema job');
  });

  it('accepts every example and refuses what the definition refuses', () => {
    for (const f of readdirSync(new URL('examples/', root)).filter((n) => n.endsWith('.yaml'))) {
      const doc = parse(read(`examples/${f}`));
      expect(validate(doc), `${f}: ${JSON.stringify(validate.errors)}`).toBe(true);
      expect(jobFileSchema.safeParse(doc).success).toBe(true);
    }
    const base = { queue: 'q', steps: [{ image: 'i', run: 'x' }] };
    const cases: [string, unknown, boolean][] = [
      ['minimal', base, true],
      ['list run', { ...base, steps: [{ image: 'i', run: ['a', 'b'] }] }, true],
      ['secret sources', { ...base, secrets: { A: 'v', B: { fromEnv: 'X' }, C: { fromFile: 'f' } } }, true],
      ['unknown root field', { ...base, step: [] }, false],
      ['missing run', { queue: 'q', steps: [{ image: 'i' }] }, false],
      ['no steps', { queue: 'q', steps: [] }, false],
      ['bad queue', { ...base, queue: 'has space' }, false],
      ['run a number', { queue: 'q', steps: [{ image: 'i', run: 5 }] }, false],
      ['two sources', { ...base, secrets: { A: { fromEnv: 'X', fromFile: 'f' } } }, false],
      ['priority too high', { ...base, priority: 1001 }, false],
      ['maxAttempts not integer', { ...base, maxAttempts: 1.5 }, false],
      ['repository without commit', { ...base, repository: { name: 'a/b' } }, false],
      ['base64 file', { ...base, files: { 'a.bin': { base64: 'AAE=' } } }, true],
    ];
    for (const [name, doc, ok] of cases) {
      expect(validate(doc), `schema: ${name}`).toBe(ok);
      expect(jobFileSchema.safeParse(doc).success, `zod: ${name}`).toBe(ok);
    }
  });

  it('describes every field, and docs/job-file.md documents every field', () => {
    const doc = read('docs/job-file.md');
    const paths = fieldPaths(jobFileSchema);
    expect(paths).toEqual(expect.arrayContaining(['queue', 'steps[].run', 'repository.sparse', 'secrets']));
    for (const p of paths) expect(doc, p).toContain(`| \`${p}\` |`);
    const props = schema.properties as Record<string, { description?: string }>;
    for (const k of Object.keys(props)) expect(props[k]!.description, k).toBeTruthy();
  });
});
