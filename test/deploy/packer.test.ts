/**
 * deploy/packer/executor.pkr.hcl validated by Debian's packer (1.6: HCL2 without `required_plugins`,
 * which lives in plugins.pkr.hcl for newer Packer). Validation reads the template, its variables and
 * its provisioners' templates offline; building the machine image needs an AWS account, which CI has
 * not, so it is never built here.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { commandAvailable, requireOrSkip } from '../helpers/env.js';
import { repo } from './images.js';

const ok = requireOrSkip('packer', commandAvailable('packer'));
const template = path.join(repo, 'deploy/packer/executor.pkr.hcl');
const home = mkdtempSync(path.join(tmpdir(), 'packer-home-'));

function validate(file: string, args: string[] = []): { code: number; out: string } {
  try {
    const out = execFileSync('packer', ['validate', ...args, file], {
      cwd: repo,
      stdio: 'pipe',
      timeout: 60_000,
      // No call home, no plugin or config directory of the machine's user.
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, CHECKPOINT_DISABLE: '1' },
    }).toString();
    return { code: 0, out };
  } catch (e) {
    const err = e as { status?: number; stdout?: Buffer; stderr?: Buffer };
    return { code: err.status ?? -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

describe.skipIf(!ok)('deploy/packer (packer validate)', () => {
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  it('the template is valid, with its defaults and with variables set', () => {
    expect(validate(template)).toEqual({ code: 0, out: '' });
    const withVars = validate(template, [
      '-var',
      'region=eu-west-1',
      '-var',
      'registry_mirror=http://10.0.0.5:5000',
    ]);
    expect(withVars).toEqual({ code: 0, out: '' });
  });

  it('the same packer refuses a broken copy (the check can fail)', () => {
    const broken = path.join(home, 'broken.pkr.hcl');
    writeFileSync(broken, readFileSync(template, 'utf8').replace('ssh_username', 'ssh_usernme'));
    const r = validate(broken);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/ssh_usernme/);
    // An inline command with Go-template braces fails too: Packer expands them itself.
    writeFileSync(
      broken,
      readFileSync(template, 'utf8').replace(
        '"systemctl daemon-reload",',
        `"docker info --format '{{json .Runtimes}}'",`,
      ),
    );
    expect(validate(broken).out).toMatch(/function "json" not defined/);
  });
});
