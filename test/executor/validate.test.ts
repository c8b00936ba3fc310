import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runValidation } from '../../src/cli/validate.js';
import { AUTHORIZATION_FAILED } from '../../src/executor/client/auth-client.js';
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

async function validate(e: Record<string, string>, deps: Parameters<typeof runValidation>[2] = {}) {
  const lines: string[] = [];
  const ok = await runValidation(e, (l) => lines.push(l), deps);
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

  it('401 from /.executors/test/auth fails with the site-config message', async () => {
    fe.script.push({ status: 401 });
    const { ok, lines } = await validate(env());
    expect(ok).toBe(false);
    expect(lines).toContain(`✗ frontend auth: ${AUTHORIZATION_FAILED}`);
    expect(lines.at(-1)).toMatch(/^1 of \d+ checks failed$/);
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
