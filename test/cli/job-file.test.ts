import { readdirSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JobFileError, parseJobText, parseSecretFlag, readJobFile } from '../../src/cli/job-file.js';

const examplesDir = new URL('../../examples/', import.meta.url);

describe('job files', () => {
  const examples = readdirSync(examplesDir).filter((f) => /\.(ya?ml|json)$/.test(f));

  it('ships at least four examples', () => {
    expect(examples.length).toBeGreaterThanOrEqual(4);
  });

  it.each(examples)('example %s is a valid job', async (f) => {
    const spec = await readJobFile(new URL(f, examplesDir).pathname, { env: { UPLOAD_TOKEN: 't0ken' } });
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
    expect(paths).toEqual(
      expect.arrayContaining(['steps[0].image', 'steps[0].run', 'steps[0].imag', 'timeout']),
    );
    expect(err!.message).toContain('job.yaml is not a valid job');
  });

  it('reports YAML syntax errors with a line number', () => {
    expect(() => parseJobText('queue: [unclosed\n', 'bad.yaml')).toThrow(/line 1|line 2/);
  });

  it('refuses a document that is not a mapping', () => {
    expect(() => parseJobText('- a\n- b\n')).toThrow(JobFileError);
  });

  it('says "required" for a missing field and "did you mean" for a near miss', () => {
    let err: JobFileError | undefined;
    try {
      parseJobText('queue: q\nstep:\n  - image: x\n', 'job.yaml');
    } catch (e) {
      err = e as JobFileError;
    }
    expect(err!.problems).toEqual([
      { path: 'steps', message: 'required' },
      { path: 'step', message: 'unknown field; did you mean `steps`?' },
    ]);
    expect(() => parseJobText('queue: q\nsteps:\n  - image: x\n')).toThrow('steps[0].run: required');
    expect(() => parseJobText('queue: q\nsteps:\n  - image: x\n    run: 5\n')).toThrow(
      'steps[0].run: must be a shell command or a list of commands',
    );
    // Far from every known field: the known ones are listed instead.
    expect(() =>
      parseJobText('queue: q\nsteps: [{image: x, run: y}]\nrepository: {name: a, commit: b, zzzzzz: 1}\n'),
    ).toThrow(/repository\.zzzzzz: unknown field \(known: name, commit, directory/);
  });
});

describe('job file secrets', () => {
  const job = (secrets: string) => `queue: q\nsteps:\n  - image: x\n    run: env\nsecrets:\n${secrets}`;

  const write = async (name: string, text: string) => {
    const dir = await mkdtemp(join(tmpdir(), 'jobfile-secrets-'));
    const p = join(dir, name);
    await writeFile(p, text);
    return { dir, path: p };
  };

  it('resolves inline, fromEnv and fromFile (relative to the job file, one trailing newline dropped)', async () => {
    const { dir, path } = await write(
      'job.yaml',
      job('  A: inline-value\n  B: { fromEnv: B_SOURCE }\n  C: { fromFile: c.secret }\n'),
    );
    await writeFile(join(dir, 'c.secret'), 'file value\n');
    const spec = await readJobFile(path, { env: { B_SOURCE: 'env value' } });
    expect(spec.secrets).toEqual({ A: 'inline-value', B: 'env value', C: 'file value' });
  });

  it('--secret NAME, NAME=ENVVAR and NAME@FILE add to and override the file', async () => {
    const { dir, path } = await write('job.yaml', job('  A: from-file\n'));
    const secretFile = join(dir, 'd.txt');
    await writeFile(secretFile, 'd value\r\n');
    const spec = await readJobFile(path, {
      env: { A: 'a from env', OTHER: 'b from OTHER' },
      flags: ['A', 'B=OTHER', `D@${secretFile}`],
    });
    expect(spec.secrets).toEqual({ A: 'a from env', B: 'b from OTHER', D: 'd value' });
    expect(parseSecretFlag('X@rel/path').source).toEqual({ fromFile: join(process.cwd(), 'rel/path') });
    expect(() => parseSecretFlag('not-a-name')).toThrow(/must be NAME .* NAME=ENVVAR or NAME@FILE/);
    expect(() => parseSecretFlag('A=')).toThrow(JobFileError);
  });

  it('names each secret whose variable or file is missing, and returns nothing', async () => {
    const { path } = await write(
      'job.yaml',
      job('  A: { fromEnv: MISSING_VAR }\n  B: { fromFile: missing.txt }\n  C: { fromEnv: EMPTY_VAR }\n'),
    );
    let err: JobFileError | undefined;
    try {
      await readJobFile(path, { env: { EMPTY_VAR: '' } });
    } catch (e) {
      err = e as JobFileError;
    }
    expect(err).toBeInstanceOf(JobFileError);
    expect(err!.problems.map((p) => p.path)).toEqual(['secrets.A', 'secrets.B', 'secrets.C']);
    expect(err!.problems[0]!.message).toContain('environment variable MISSING_VAR is not set');
    expect(err!.problems[1]!.message).toMatch(/cannot read secret file .*missing\.txt: no such file/);
    expect(err!.problems[2]!.message).toContain('EMPTY_VAR is empty');
    // The error shows names and sources, never a value.
    const flagErr = await readJobFile(path, {
      env: {},
      flags: ['A=SET_VAR', 'C=SET_VAR', 'B=SET_VAR'],
    }).catch((e: unknown) => e as JobFileError);
    expect((flagErr as JobFileError).message).toContain('SET_VAR is not set');
  });

  it('refuses a source that is neither a value, fromEnv nor fromFile', () => {
    expect(() => parseJobText(job('  A: { fromEnv: "not a name" }\n'))).toThrow(
      'secrets.A.fromEnv: must be an environment variable name',
    );
    expect(() => parseJobText(job('  A: { fromEnvv: X }\n'))).toThrow(
      'secrets.A.fromEnvv: unknown field; did you mean `fromEnv`?',
    );
    expect(() => parseJobText(job('  A: 12\n'))).toThrow(
      'secrets.A: must be the value, { fromEnv: VAR } or { fromFile: PATH }',
    );
    expect(() => parseJobText(job('  A: { fromEnv: X }\n'))).toThrow(/names a source/);
  });
});
