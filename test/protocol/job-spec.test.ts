import { describe, expect, it } from 'vitest';
import { formatPath, secretPlaceholder, validateJobSpec } from '../../src/protocol/job-spec.js';

const valid = {
  queue: 'default',
  repository: { name: 'org/repo', commit: 'main' },
  files: { 'a/b.txt': 'hi', 'bin.dat': { base64: 'AAE=' } },
  steps: [
    { key: 'build', image: 'alpine', run: 'make', env: { A: '1' } },
    { image: 'alpine', run: ['a', 'b'] },
  ],
  secrets: { TOKEN: 'x' },
  timeout: '10m',
  maxAttempts: 2,
  priority: 5,
};

describe('JobSpec validation', () => {
  it('accepts a full spec', () => {
    const r = validateJobSpec(valid);
    expect(r.ok).toBe(true);
  });

  it('reports every problem with its field path', () => {
    const r = validateJobSpec({
      queue: 'bad queue',
      repository: { name: '../x' },
      files: { '../escape': 'x', '/abs': 'y' },
      steps: [{ run: 'x' }, { image: 'a', run: [] }],
      secrets: { 'not-env': 'v' },
      timeout: 'soon',
      extra: 1,
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const paths = r.problems.map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'queue',
        'repository.name',
        'repository.commit',
        'files["../escape"]',
        'files["/abs"]',
        'steps[0].image',
        'steps[1].run',
        'secrets["not-env"]',
        'timeout',
        'extra',
      ]),
    );
    expect(r.problems.find((p) => p.path === 'extra')!.message).toContain('unknown field');
  });

  it('refuses duplicate step keys, including implicit index keys', () => {
    const r = validateJobSpec({
      queue: 'q',
      steps: [
        { key: '1', image: 'a', run: 'x' },
        { image: 'a', run: 'y' },
      ],
    });
    expect(r.ok).toBe(false);
  });

  it('requires at least one step', () => {
    const r = validateJobSpec({ queue: 'q', steps: [] });
    expect(r.ok ? [] : r.problems.map((p) => p.path)).toEqual(['steps']);
  });

  it('formats paths and placeholders', () => {
    expect(formatPath(['steps', 0, 'env', 'A B'])).toBe('steps[0].env["A B"]');
    expect(secretPlaceholder('TOKEN')).toBe('${{ secrets.TOKEN }}');
  });
});
