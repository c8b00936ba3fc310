/**
 * A job's secrets never reach the stored log, whatever form a step prints them in: whole, split
 * across separate writes (also across log syncs), base64 (alone and inside a larger encoded
 * string), URL-encoded, JSON-escaped, and a multi-line secret whole and line by line. Checked
 * through the user API and in the database rows themselves. Steps run in real containers.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { createLogger } from '../../src/lib/logger.js';
import { apiEntries, entry, haveDockerAndImage, IMAGE, storedLogText, waitForEnd } from './docker-e2e.js';

const ok = haveDockerAndImage();

/** Characters that JSON, URL and base64 encodings all change: `"`, `\`, `/`, `+`, `=`, `&`, `%`. */
const S = 'Xk9"p\\q/Lm+T=z&w!7-secret%val';
const M = '-----BEGIN TEST KEY-----\nMIIEowIBAAKCAQEAq7bLine2\n-----END TEST KEY-----';
const PS = '${{ secrets.S }}';
const PM = '${{ secrets.M }}';

/** The base64 characters of `value` at byte offset 0..2 inside a larger string that depend only on it. */
function base64Fragment(value: string, offset: number): string {
  const bytes = Buffer.from(value, 'utf8');
  const b64 = Buffer.concat([Buffer.alloc(offset, 0x78), bytes, Buffer.from('yz')]).toString('base64');
  return b64.slice(Math.ceil((8 * offset) / 6), Math.floor((8 * (offset + bytes.length)) / 6));
}

/** Every form of both secrets that must never be stored. */
function forbiddenForms(): string[] {
  const forms = new Set<string>();
  for (const v of [S, M]) {
    forms.add(v);
    forms.add(Buffer.from(v).toString('base64'));
    for (let off = 0; off < 3; off++) forms.add(base64Fragment(v, off));
    forms.add(encodeURIComponent(v));
    forms.add(JSON.stringify(v).slice(1, -1));
  }
  for (const line of M.split('\n')) forms.add(line);
  return [...forms];
}

/** encodeURIComponent in busybox awk (ASCII): keeps A-Z a-z 0-9 - _ . ! ~ * ' ( ). */
const URLENC_AWK = `BEGIN {
  for (i = 1; i < 128; i++) ord[sprintf("%c", i)] = i
  s = ENVIRON["S"]; o = ""
  for (i = 1; i <= length(s); i++) {
    c = substr(s, i, 1)
    if (c ~ /[A-Za-z0-9_.!~*'()-]/) o = o c; else o = o sprintf("%%%02X", ord[c])
  }
  print o
}
`;

describe.skipIf(!ok)('secrets never reach stored logs (docker runtime, end to end)', () => {
  let cluster: LocalCluster;

  beforeAll(async () => {
    const data = mkdtempSync(join(tmpdir(), 'e2e-secrets-'));
    cluster = await startLocalCluster({
      dataDir: data,
      runtime: 'docker',
      logger: createLogger({ level: 'error' }),
      executorEnv: { EXECUTOR_JOB_NETWORK: 'none' },
    });
  });

  afterAll(async () => {
    await cluster?.stop({ force: true });
  });

  it('redacts whole, split, base64, URL-encoded, JSON-escaped and multi-line forms', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      files: { 'urlenc.awk': URLENC_AWK },
      steps: [
        {
          key: 'whole',
          image: IMAGE,
          run: ['printf "whole: %s\\n" "$S"', 'printf "stderr: %s\\n" "$S" >&2'],
        },
        {
          key: 'split',
          image: IMAGE,
          // Every split offset, each half a separate write a moment apart...
          run: [
            'n=${#S}; i=1',
            'while [ $i -lt $n ]; do printf "split %d: %s" $i "${S:0:$i}"; sleep 0.02; printf "%s\\n" "${S:$i}"; i=$((i+1)); done',
            // ...and a few with a pause longer than the log sync interval, so the halves travel in
            // separate log writes to the server.
            'for i in 1 14 $((n-1)); do printf "slow %d: %s" $i "${S:0:$i}"; sleep 1.3; printf "%s\\n" "${S:$i}"; done',
          ],
        },
        {
          key: 'encoded',
          image: IMAGE,
          run: [
            'printf "b64: "; printf %s "$S" | base64',
            // Inside a larger encoded string, at byte offsets 1 and 2.
            'printf "b64in1: "; printf "x%syz" "$S" | base64',
            'printf "b64in2: "; printf "xx%syz" "$S" | base64',
            'printf "url: "; awk -f urlenc.awk',
            `printf "json: "; printf %s "$S" | sed 's/\\\\/\\\\\\\\/g; s/"/\\\\"/g'; echo`,
          ],
        },
        {
          key: 'multiline',
          image: IMAGE,
          run: [
            'printf "%s\\n" "$M"',
            // Re-indented, one line at a time, as tools print keys: still one block (the line
            // breaks and the indentation are one whitespace run each).
            'printf "%s\\n" "$M" | while read -r line; do echo "    $line"; done',
            // With CRLF line endings.
            'printf "%s\\n" "$M" | sed "s/$/\\r/"',
            // A prefix on each line: no longer the block, so each line on its own.
            'printf "%s\\n" "$M" | while read -r line; do echo "key: $line"; done',
            'printf "mb64: "; printf %s "$M" | base64 | tr -d "\\n"; echo',
          ],
        },
      ],
      secrets: { S, M },
    });
    const final = await waitForEnd(cluster, job.id, 120_000);
    expect(final.state).toBe('completed');

    const stored = await storedLogText(cluster, job.id);
    const entries = await apiEntries(cluster, job.id);
    const viaApi = entries.map((e) => [e.key, ...(e.command ?? []), e.out ?? ''].join('\n')).join('\n');
    for (const form of forbiddenForms()) {
      expect(stored, `database rows contain ${JSON.stringify(form)}`).not.toContain(form);
      expect(viaApi, `user API contains ${JSON.stringify(form)}`).not.toContain(form);
    }

    // The executor replaced each form with the placeholder (the server's mask would be `*`s), so
    // every line the steps printed is there, redacted.
    const out = (key: string) => entry(entries, key).out ?? '';
    expect(out('step.docker.whole')).toContain(`stdout: whole: ${PS}\n`);
    expect(out('step.docker.whole')).toContain(`stderr: stderr: ${PS}\n`);
    for (let i = 1; i < S.length; i++) {
      expect(out('step.docker.split')).toContain(`split ${i}: ${PS}\n`);
    }
    for (const i of [1, 14, S.length - 1]) expect(out('step.docker.split')).toContain(`slow ${i}: ${PS}\n`);
    const encoded = out('step.docker.encoded');
    expect(encoded).toContain(`b64: ${PS}`);
    expect(encoded).toContain(`url: ${PS}\n`);
    expect(encoded).toContain(`json: ${PS}\n`);
    expect(encoded).toMatch(/b64in1: \S*\$\{\{ secrets\.S \}\}/);
    expect(encoded).toMatch(/b64in2: \S*\$\{\{ secrets\.S \}\}/);
    const multi = out('step.docker.multiline');
    expect(multi).toContain(`mb64: ${PM}`);
    expect(multi.split(`stdout: ${PM}\n`).length - 1).toBe(2);
    expect(multi.split(`stdout:     ${PM}\n`).length - 1).toBe(1);
    expect(multi.split(`stdout: key: ${PM}\n`).length - 1).toBe(3);
    expect(stored).not.toMatch(/\*{8,}/);
  });
});
