import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureDemoRepo } from '../../src/cli/demo.js';
import { spawnCli } from '../helpers/spawn-cli.js';

const examplesDir = new URL('../../examples/', import.meta.url).pathname;
const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

/** Every example runs to completion against the demo repository (shell runtime: images ignored). */
describe('examples run', { timeout: 240_000 }, () => {
  const examples = readdirSync(examplesDir).filter((f) => f.endsWith('.yaml'));

  it.each(examples)('%s completes with executor exec', async (name) => {
    const repos = mkdtempSync(join(tmpdir(), 'examples-'));
    const repo = await ensureDemoRepo(repos);
    const p = spawnCli(['exec', join(examplesDir, name), '--repo', repo, '--runtime', 'shell'], {
      UPLOAD_TOKEN: 'upload-token-from-the-environment',
    });
    const code = await p.exited;
    const out = plain(p.output());
    expect(code, out).toBe(0);
    expect(out).toMatch(/Job \d+ completed/);
    if (name === 'batch-change.yaml') expect(out).toMatch(/^stdout: \+.*Hi from/m);
    if (name === 'indexer-with-secret.yaml') {
      expect(out).toContain('${{ secrets.UPLOAD_TOKEN }}');
      expect(out).not.toContain('upload-token-from-the-environment');
    }
  });
});
