import { readdirSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JobFileError, parseJobText, readJobFile } from '../../src/cli/job-file.js';

const examplesDir = new URL('../../examples/', import.meta.url);

describe('job files', () => {
  const examples = readdirSync(examplesDir).filter((f) => /\.(ya?ml|json)$/.test(f));

  it('ships at least four examples', () => {
    expect(examples.length).toBeGreaterThanOrEqual(4);
  });

  it.each(examples)('example %s is a valid job', async (f) => {
    const spec = await readJobFile(new URL(f, examplesDir).pathname);
    expect(spec.steps.length).toBeGreaterThan(0);
  });

  it('reads JSON as well as YAML', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'jobfile-'));
    const p = join(dir, 'job.json');
    await writeFile(p, JSON.stringify({ queue: 'q', steps: [{ image: 'i', run: 'true' }] }));
    expect((await readJobFile(p)).queue).toBe('q');
  });

  it('names every bad field with its path', () => {
    let err: JobFileError | undefined;
    try {
      parseJobText('queue: q\nsteps:\n  - run: true\n    imag: x\ntimeout: later\n', 'job.yaml');
    } catch (e) {
      err = e as JobFileError;
    }
    expect(err).toBeInstanceOf(JobFileError);
    const paths = err!.problems.map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['steps[0].image', 'steps[0].run', 'steps[0]', 'timeout']));
    expect(err!.message).toContain('job.yaml is not a valid job');
  });

  it('reports YAML syntax errors with a line number', () => {
    expect(() => parseJobText('queue: [unclosed\n', 'bad.yaml')).toThrow(/line 1|line 2/);
  });

  it('refuses a document that is not a mapping', () => {
    expect(() => parseJobText('- a\n- b\n')).toThrow(JobFileError);
  });
});
