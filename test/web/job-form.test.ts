import { describe, expect, it } from 'vitest';
import { JobFileError, parseJobText } from '../../src/cli/job-file.js';
import { checkJobFileText } from '../../src/protocol/job-file-text.js';
import type { QueueView } from '../../src/protocol/user-api.js';
import {
  EXAMPLE_JOB,
  jobSpecOfForm,
  maskValues,
  peekJobText,
  polledQueues,
  queueHint,
  withoutSecretValues,
} from '../../src/server/web/app/job-form.js';

const SECRET = 'hunter2-form-value';

function fileOf(text: string) {
  const r = checkJobFileText(text);
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.value;
}

function cliProblems(text: string) {
  try {
    parseJobText(text, 'job.yaml');
  } catch (e) {
    if (e instanceof JobFileError) return e.problems;
    throw e;
  }
  return [];
}

describe('the submit form helpers', () => {
  it('prefills a job that the CLI accepts as it is', () => {
    expect(parseJobText(EXAMPLE_JOB).queue).toBe('default');
  });

  it('checks a file with the same problems as `executor submit`', () => {
    const text = 'queue: default\nsteps:\n  - image: alpine\nstep: []\n';
    const r = checkJobFileText(text);
    expect(r.ok).toBe(false);
    const problems = r.ok ? [] : r.problems;
    expect(problems).toEqual(cliProblems(text));
    expect(problems).toEqual([
      { path: 'steps[0].run', message: 'required' },
      { path: 'step', message: 'unknown field; did you mean `steps`?' },
    ]);
  });

  it('names the queue and the secrets of a file that is not valid yet, never their values', () => {
    const peek = peekJobText(
      `queue: builds\nsecrets:\n  A: ${SECRET}\n  B: { fromEnv: B_VAR }\n  C: { fromFile: ./c.key }\n  D: 5\nstepz: 1\n`,
    );
    expect(peek).toEqual({
      queue: 'builds',
      secrets: [
        { name: 'A', kind: 'inline' },
        { name: 'B', kind: 'env', from: 'B_VAR' },
        { name: 'C', kind: 'file', from: './c.key' },
        { name: 'D', kind: 'other' },
      ],
    });
    expect(JSON.stringify(peek)).not.toContain(SECRET);
    expect(peekJobText('queue: [unclosed\n')).toEqual({ queue: undefined, secrets: [] });
    expect(peekJobText('- a\n')).toEqual({ queue: undefined, secrets: [] });
  });

  it('sends typed values, else inline ones, and asks for the value of a secret that names a source', () => {
    const job = fileOf(
      `queue: q\nsteps: [{image: i, run: "true"}]\nsecrets:\n  A: inline-a\n  B: { fromEnv: B }\n  C: { fromFile: c.key }\n`,
    );
    const missing = jobSpecOfForm(job, { A: '' });
    expect(missing.ok).toBe(false);
    expect(missing.ok ? [] : missing.problems.map((p) => p.path)).toEqual(['secrets.B', 'secrets.C']);
    expect(missing.ok ? '' : missing.problems[0]!.message).toMatch(
      /^a browser cannot read the environment variable B: enter the value in the field B under Secrets/,
    );
    expect(missing.ok ? '' : missing.problems[1]!.message).toContain('cannot read the file c.key');
    const r = jobSpecOfForm(job, { B: 'typed-b', C: 'typed-c' });
    expect(r.ok && r.value.secrets).toEqual({ A: 'inline-a', B: 'typed-b', C: 'typed-c' });
    const over = jobSpecOfForm(job, { A: 'typed-a', B: 'b', C: 'c' });
    expect(over.ok && over.value.secrets?.A).toBe('typed-a');
  });

  it('validates the resolved job as the server does', () => {
    const job = fileOf('queue: q\nsteps: [{image: i, run: "true"}]\n');
    const r = jobSpecOfForm(job, {});
    expect(r.ok && r.value).toEqual({ queue: 'q', steps: [{ image: 'i', run: 'true' }] });
  });

  it('takes inline values out of the text: plain, quoted, block and JSON, keeping the rest', () => {
    const plain = `queue: q # the queue\nsecrets:\n  A: ${SECRET} # inline\n  B: { fromEnv: B }\nsteps:\n  - image: i\n    run: echo ${SECRET}\n`;
    const out = withoutSecretValues(plain, { A: SECRET, B: 'typed-b-value' });
    expect(out).toBe(
      'queue: q # the queue\nsecrets:\n  A: { fromEnv: A } # inline\n  B: { fromEnv: B }\nsteps:\n  - image: i\n    run: echo ${{ secrets.A }}\n',
    );
    expect(checkJobFileText(out).ok).toBe(true);

    const quoted = `queue: q\nsteps: [{image: i, run: x}]\nsecrets:\n  A: "${SECRET} two"\n  'B': 'it''s'\n`;
    const q = withoutSecretValues(quoted, { A: `${SECRET} two`, B: "it's" });
    expect(q).toBe(
      "queue: q\nsteps: [{image: i, run: x}]\nsecrets:\n  A: { fromEnv: A }\n  'B': { fromEnv: B }\n",
    );

    const block = `secrets:\n  A: |\n    ${SECRET}\n    second line\nqueue: q\nsteps: [{image: i, run: x}]\n`;
    const b = withoutSecretValues(block, { A: `${SECRET}\nsecond line\n` });
    expect(b).toBe('secrets:\n  A: { fromEnv: A }\nqueue: q\nsteps: [{image: i, run: x}]\n');
    expect(checkJobFileText(b).ok).toBe(true);

    const json = JSON.stringify({ queue: 'q', steps: [{ image: 'i', run: 'x' }], secrets: { A: SECRET } });
    const j = withoutSecretValues(json, { A: SECRET });
    expect(j).not.toContain(SECRET);
    const parsed = checkJobFileText(j);
    expect(parsed.ok && parsed.value.secrets).toEqual({ A: { fromEnv: 'A' } });
  });

  it('masks sent values anywhere else, even in text that is not YAML; short values are left', () => {
    expect(withoutSecretValues(`queue: [${SECRET}`, { A: SECRET })).toBe('queue: [${{ secrets.A }}');
    expect(maskValues(`refused ${SECRET} and abc`, { A: SECRET, B: 'abc' })).toBe(
      'refused ${{ secrets.A }} and abc',
    );
  });

  it('says which queues active executors poll, and when a job would wait', () => {
    const q = (queue: string, pollers: number, depth = 0) => ({ queue, pollers, depth }) as QueueView;
    const polled = polledQueues([q('gpu', 2), q('default', 1, 3), q('unpolled', 0, 5), q('batch', 1)]);
    expect(polled).toEqual(['batch', 'default', 'gpu']);
    expect(queueHint('gpu', polled)).toBe(
      'Queue gpu is polled by an active executor. Queues active executors poll: batch, default, gpu.',
    );
    expect(queueHint('nobody', polled)).toMatch(/^No active executor polls queue nobody: the job waits/);
    expect(queueHint(undefined, [])).toMatch(/^No executor is active now/);
    expect(queueHint('gpu', undefined)).toBe('');
  });
});
