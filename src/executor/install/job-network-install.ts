/**
 * `executor install`'s part of EXECUTOR_JOB_NETWORK=isolated: with the configuration the service
 * will run with (the environment file over the installer's environment), create the job network
 * and install its firewall rules, so an executor that runs without root or CAP_NET_ADMIN finds them
 * in place. Rules that name the queue server need EXECUTOR_FRONTEND_URL: with an incomplete
 * configuration the step is skipped, saying so. Idempotent like the executor's own install.
 */
import { readFile } from 'node:fs/promises';
import { loadExecutorConfig } from '../../config/executor.js';
import { formatCidr } from '../../lib/cidr.js';
import { installIsolation } from '../network/job-isolation.js';
import { isolationOptions, USES_JOB_NETWORK } from '../network/job-network-guards.js';
import { parseEnvFile } from './env-file.js';

/** One line per outcome (`✓`, `✗` or `-`), and whether nothing failed. */
export async function installJobNetwork(
  envPath: string,
  env: Record<string, string | undefined>,
  dryRun: boolean,
): Promise<{ ok: boolean; lines: string[] }> {
  const fileText = await readFile(envPath, 'utf8').catch(() => '');
  const merged = { ...env, ...Object.fromEntries(parseEnvFile(fileText)) };
  const loaded = loadExecutorConfig(merged);
  if (!loaded.ok) {
    return {
      ok: true,
      lines: [
        `- job network: skipped (the configuration is incomplete: ${loaded.problems.join('; ')}); complete ${envPath} and run \`executor install\` again`,
      ],
    };
  }
  const c = loaded.config;
  if (!USES_JOB_NETWORK.has(c.runtime) || c.jobNetwork !== 'isolated') {
    return {
      ok: true,
      lines: [`- job network: skipped (runtime ${c.runtime}, EXECUTOR_JOB_NETWORK=${c.jobNetwork})`],
    };
  }
  const what = `Docker network ${c.jobNetworkName} (${formatCidr(c.jobNetworkSubnet)}) and its firewall rules`;
  if (dryRun) return { ok: true, lines: [`- job network: would create ${what}`] };
  const r = await installIsolation(isolationOptions(c));
  return {
    ok: r.ok,
    lines: [
      ...r.warnings.map((w) => `- job network: ${w}`),
      r.ok ? `✓ job network: ${what} in place` : `✗ job network: ${r.problems.join('; ')}. Fix: ${r.fix}`,
    ],
  };
}
