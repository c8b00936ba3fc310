import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startLocalCluster } from '../../src/cli/local-cluster.js';
import { runValidation, sourcegraphRange } from '../../src/cli/validate.js';
import { AUTHORIZATION_FAILED } from '../../src/executor/client/auth-client.js';
import { createLogger } from '../../src/lib/logger.js';
import { packageVersion } from '../../src/lib/version.js';
import { calculateCompatibility, compareSemver, parseSemver } from '../../src/protocol/version.js';
import { type FakeFrontend, startFakeSourcegraphFrontend } from './fake-sourcegraph-frontend.js';

let fe: FakeFrontend;
beforeAll(async () => {
  fe = await startFakeSourcegraphFrontend();
});
afterAll(() => fe.close());
beforeEach(() => {
  fe.requests.length = 0;
  fe.script.length = 0;
});

const env = () => ({
  EXECUTOR_FRONTEND_URL: fe.url,
  EXECUTOR_FRONTEND_PASSWORD: 'hunter2hunter2',
  EXECUTOR_QUEUE_NAME: 'batches',
  EXECUTOR_RUNTIME: 'shell',
  SRC_HTTP_CLI_INTERNAL_RETRY_MAX_ATTEMPTS: '1',
});

async function validate(
  e: Record<string, string>,
  deps: Parameters<typeof runValidation>[2] = {},
  opts: Parameters<typeof runValidation>[3] = {},
) {
  const lines: string[] = [];
  const ok = await runValidation(e, (l) => lines.push(l), deps, opts);
  return { ok, lines };
}

describe('executor validate', () => {
  it('passes with real git, the shell runtime and an accepting frontend', async () => {
    const { ok, lines } = await validate(env());
    expect(lines.find((l) => l.startsWith('✓ git: git '))).toBeDefined();
    expect(lines).toContain(`✓ frontend auth: ${fe.url} accepted the executor secret`);
    expect(lines.at(-1)).toBe('All checks passed!');
    expect(ok).toBe(true);
    const auth = fe.requests.find((r) => r.path === '/.executors/test/auth')!;
    expect(auth.headers.authorization).toBe('token-executor hunter2hunter2');
  });

  it('401 from a Sourcegraph instance names EXECUTOR_FRONTEND_PASSWORD and the site configuration', async () => {
    fe.script.push({ status: 401 });
    const { ok, lines } = await validate(env());
    expect(ok).toBe(false);
    expect(lines).toContain(
      `✗ frontend auth: ${fe.url} refused the shared secret: EXECUTOR_FRONTEND_PASSWORD must equal executors.accessToken in the Sourcegraph site configuration (or, for an executor server, its EXECUTORS_ACCESS_TOKEN)`,
    );
    expect(lines.join('\n')).not.toContain(AUTHORIZATION_FAILED);
    expect(lines.at(-1)).toMatch(/^1 of \d+ checks failed$/);
  });

  it('401 from our server names EXECUTORS_ACCESS_TOKEN; the right secret passes with our version check', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'validate-ours-'));
    const cluster = await startLocalCluster({
      dataDir: join(dir, 'data'),
      runtime: 'shell',
      logger: createLogger({ level: 'error' }),
    });
    try {
      const ours = { ...env(), EXECUTOR_FRONTEND_URL: cluster.url };
      const wrong = await validate(ours);
      expect(wrong.ok).toBe(false);
      expect(wrong.lines).toContain(
        `✗ frontend auth: ${cluster.url} (an executor server) refused the shared secret: EXECUTOR_FRONTEND_PASSWORD must equal the server's EXECUTORS_ACCESS_TOKEN (\`executor up\` prints it on its "Add executors elsewhere" line)`,
      );
      const right = await validate({ ...ours, EXECUTOR_FRONTEND_PASSWORD: cluster.executorsAccessToken });
      expect(right.ok, right.lines.join('\n')).toBe(true);
      expect(right.lines).toContain(
        `✓ version: executor ${packageVersion()} vs server ${packageVersion()}: UP_TO_DATE (one minor version of divergence is supported)`,
      );
    } finally {
      await cluster.stop({ force: true });
    }
  });

  it('says how a Sourcegraph instance would list this executor: the range, or the given version', async () => {
    const v = `5.6.0+executor.${packageVersion()}`;
    const plain = await validate(env());
    expect(plain.lines).toContain(
      `- sourcegraph version: Sourcegraph 5.5.0 to 5.7.0 lists ${v} as UP_TO_DATE, older releases as VERSION_AHEAD, newer ones as OUTDATED (check one: --sourcegraph-version X.Y.Z)`,
    );
    const same = await validate(env(), {}, { sourcegraphVersion: '5.5.3' });
    expect(same.ok).toBe(true);
    expect(same.lines).toContain(
      `✓ sourcegraph version: a Sourcegraph 5.5.3 instance would list this executor (${v}) as UP_TO_DATE`,
    );
    const newer = await validate(env(), {}, { sourcegraphVersion: '5.8.0' });
    expect(newer.ok).toBe(false);
    expect(newer.lines.find((l) => l.startsWith('✗ sourcegraph version:'))).toContain(
      'as OUTDATED; Sourcegraph 5.5.0 to 5.7.0',
    );
    const reported = await validate(
      { ...env(), EXECUTOR_REPORTED_VERSION: '5.8.1' },
      {},
      { sourcegraphVersion: '5.8.0' },
    );
    expect(reported.lines).toContain(
      `✓ sourcegraph version: a Sourcegraph 5.8.0 instance would list this executor (5.8.1+executor.${packageVersion()}) as UP_TO_DATE`,
    );
  });

  it("the printed range agrees with Sourcegraph's rule for every version around it", () => {
    for (const reported of ['5.6.0', '5.6.3', '6.0.0', '5.10.2', '4.5.0-rc.1']) {
      const m = /Sourcegraph (\S+) to (\S+) lists/.exec(sourcegraphRange(reported))!;
      const low = parseSemver(m[1]!)!;
      const high = parseSemver(m[2]!)!;
      for (let major = 3; major <= 7; major++) {
        for (let minor = 0; minor <= 12; minor++) {
          for (const patch of [0, 1, 7]) {
            const sg = `${major}.${minor}.${patch}`;
            const s = parseSemver(sg)!;
            const inside = compareSemver(s, low) >= 0 && compareSemver(s, high) <= 0;
            const c = calculateCompatibility(reported, sg, true);
            expect(c === 'UP_TO_DATE', `${reported} vs ${sg}: ${c}`).toBe(inside);
          }
        }
      }
    }
  });

  it('500 fails with "failed to validate authorization token: unexpected status code 500"', async () => {
    fe.script.push({ status: 500 });
    const { lines } = await validate(env());
    expect(lines).toContain(
      '✗ frontend auth: failed to validate authorization token: unexpected status code 500',
    );
  });

  it('an old git, a failing runtime check and bad config are each reported', async () => {
    const { ok, lines } = await validate(env(), {
      gitVersion: async () => '2.25.1',
      runtimeChecks: async () => [{ name: 'docker', ok: false, detail: 'the Docker daemon does not answer' }],
    });
    expect(ok).toBe(false);
    expect(lines).toContain('✗ git: git version is too old (2.25.1), install at least git 2.26');
    expect(lines).toContain('✗ docker: the Docker daemon does not answer');
    const bad = await validate({ EXECUTOR_QUEUE_NAME: 'batches' });
    expect(bad.ok).toBe(false);
    expect(bad.lines[0]).toMatch(/^✗ config: EXECUTOR_FRONTEND_URL: is required/);
  });

  it('the firecracker runtime is refused by the configuration, saying what to use instead', async () => {
    const { ok, lines } = await validate({ ...env(), EXECUTOR_RUNTIME: 'firecracker' });
    expect(ok).toBe(false);
    expect(lines).toContain(
      '✗ config: EXECUTOR_RUNTIME: the firecracker runtime is not available in this build; use the vm runtime (a QEMU microVM per step, with KVM) or the gvisor runtime for strong isolation without KVM',
    );
  });

  it('shows Kubernetes quantities that are not quantities and a request above its limit', async () => {
    const { ok, lines } = await validate({
      ...env(),
      KUBERNETES_JOB_VOLUME_SIZE: '5GB',
      EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY: '4Gi',
      EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY: '8Gi',
    });
    expect(ok).toBe(false);
    const config = lines.find((l) => l.startsWith('✗ config: '))!;
    expect(config).toContain(
      'KUBERNETES_JOB_VOLUME_SIZE: must be a positive Kubernetes quantity such as "5Gi", "512Mi", "5G", "500m" or "2"',
    );
    expect(config).toContain('got "5GB"');
    expect(config).toContain(
      'EXECUTOR_KUBERNETES_RESOURCE_REQUEST_MEMORY: the memory request 8Gi exceeds the memory limit EXECUTOR_KUBERNETES_RESOURCE_LIMIT_MEMORY=4Gi;',
    );
  });
});
