// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Sourcegraph's ${{ secrets.NAME }} placeholder is literal text here
import { describe, expect, it } from 'vitest';
import type { JobSpec } from '../../src/protocol/job-spec.js';
import { redactSpec } from '../../src/store/spec-redaction.js';

describe('redactSpec', () => {
  it('replaces secret values everywhere with their placeholders and leaves the input alone', () => {
    const spec: JobSpec = {
      queue: 'default',
      steps: [
        { image: 'busybox', run: ['echo s3cret-long', 'echo s3cret'], env: { PASTED: 'x=s3cret-long' } },
      ],
      files: { 'config.txt': 'token: s3cret\n' },
      secrets: { SHORT: 's3cret', LONG: 's3cret-long' },
    };
    const copy = structuredClone(spec);
    const r = redactSpec(spec);
    expect(r).toEqual({
      queue: 'default',
      steps: [
        {
          image: 'busybox',
          run: ['echo ${{ secrets.LONG }}', 'echo ${{ secrets.SHORT }}'],
          env: { PASTED: 'x=${{ secrets.LONG }}' },
        },
      ],
      files: { 'config.txt': 'token: ${{ secrets.SHORT }}\n' },
      secrets: { LONG: '${{ secrets.LONG }}', SHORT: '${{ secrets.SHORT }}' },
    });
    expect(JSON.stringify(r)).not.toContain('s3cret');
    expect(spec).toEqual(copy);
  });

  it('returns an equal copy when there are no secrets', () => {
    const spec: JobSpec = { queue: 'q', steps: [{ image: 'busybox', run: 'true' }] };
    const r = redactSpec(spec);
    expect(r).toEqual(spec);
    expect(r).not.toBe(spec);
  });
});
