/**
 * `executor validate`: checks what `executor run` needs, one line per check (`✓ name: detail` or
 * `✗ name: detail`), then a summary; exits non-zero when any check fails. Checks: configuration,
 * git >= 2.26, the runtime's own checks (Docker answers, runsc registered, /dev/kvm, ...), the job
 * network and the job disk quota, the shared secret against `/.executors/test/auth`, version
 * compatibility when the server reports a version of this project, and how a Sourcegraph instance
 * judges the reported version (`--sourcegraph-version`; otherwise the range it accepts is printed).
 */
import type { Command } from 'commander';
import { type ExecutorConfig, loadExecutorConfig } from '../config/executor.js';
import { AuthorizationFailedError, createAuthClient } from '../executor/client/auth-client.js';
import { createFilesClient } from '../executor/client/files-client.js';
import { checkRegistryMirrors } from '../executor/install/daemon-config.js';
import type { CheckResult } from '../executor/runtimes/types.js';
import { gitVersion } from '../executor/telemetry.js';
import { errorMessage } from '../lib/errors.js';
import { createLogger } from '../lib/logger.js';
import {
  calculateCompatibility,
  compareSemver,
  isDevVersion,
  ourVersionOf,
  parseSemver,
} from '../protocol/version.js';

export const MIN_GIT_VERSION = '2.26.0';

export interface ValidateDeps {
  fetch?: typeof fetch;
  gitVersion?: () => Promise<string>;
  /** Replaces the runtime's checks (tests). */
  runtimeChecks?: () => Promise<CheckResult[]>;
  /** Replaces the job network check (tests). */
  networkCheck?: (config: ExecutorConfig) => Promise<CheckResult>;
  /** Replaces the job disk check (tests). */
  diskCheck?: (config: ExecutorConfig) => Promise<CheckResult>;
  /** The Docker daemon's registry mirrors (`docker info` RegistryConfig.Mirrors); default via DOCKER_HOST. */
  dockerMirrors?: () => Promise<string[]>;
}

// dockerode and the runtimes are imported when a check runs: this module is loaded with every CLI
// command's definition, and they are the heaviest modules of the executor.
async function daemonMirrors(): Promise<string[]> {
  const { default: Dockerode } = await import('dockerode');
  const info = (await new Dockerode().info()) as { RegistryConfig?: { Mirrors?: string[] | null } };
  return info.RegistryConfig?.Mirrors ?? [];
}

/** What a refused shared secret means, naming the variables to compare. */
export function secretRefused(frontendUrl: string, e: AuthorizationFailedError): string {
  if (e.serverVersion !== undefined) {
    return `${frontendUrl} (an executor server) refused the shared secret: EXECUTOR_FRONTEND_PASSWORD must equal the server's EXECUTORS_ACCESS_TOKEN (\`executor up\` prints it on its "Add executors elsewhere" line)`;
  }
  return `${frontendUrl} refused the shared secret: EXECUTOR_FRONTEND_PASSWORD must equal executors.accessToken in the Sourcegraph site configuration (or, for an executor server, its EXECUTORS_ACCESS_TOKEN)`;
}

/**
 * The Sourcegraph versions that list `reported` as UP_TO_DATE (Sourcegraph's rule: one minor version
 * of skew either way), as text: `Sourcegraph 5.5.0 to 5.7.0 lists it as UP_TO_DATE`.
 */
export function sourcegraphRange(reported: string): string {
  const s = parseSemver(reported);
  if (!s || isDevVersion(reported)) return `Sourcegraph shows no compatibility for ${reported}`;
  // VERSION_AHEAD once the executor is beyond the server's next minor: a patch release needs the
  // server at its own minor.
  const low = `${s.major}.${s.patch > 0 ? s.minor : Math.max(0, s.minor - 1)}.0`;
  const high = `${s.major}.${s.minor + 1}.0`;
  return `Sourcegraph ${low} to ${high} lists ${reported} as UP_TO_DATE, older releases as VERSION_AHEAD, newer ones as OUTDATED`;
}

export interface ValidateOptions {
  /** Judge this executor as a Sourcegraph instance of this version would (`--sourcegraph-version`). */
  sourcegraphVersion?: string;
}

/** Runs every check, printing one line each; resolves true when all passed. */
export async function runValidation(
  env: Record<string, string | undefined>,
  print: (line: string) => void,
  deps: ValidateDeps = {},
  opts: ValidateOptions = {},
): Promise<boolean> {
  const results: CheckResult[] = [];
  const report = (r: CheckResult) => {
    results.push(r);
    print(`${r.ok ? '✓' : '✗'} ${r.name}: ${r.detail}`);
  };
  const loaded = loadExecutorConfig(env);
  if (!loaded.ok) {
    report({ name: 'config', ok: false, detail: loaded.problems.join('; ') });
  } else {
    report({
      name: 'config',
      ok: true,
      detail: `runtime ${loaded.config.runtime}, queue ${loaded.config.queueName ?? loaded.config.queueNames.join(',')}`,
    });
  }

  try {
    const v = await (deps.gitVersion ?? gitVersion)();
    const s = parseSemver(v.split(/\s/)[0]!.split('.').slice(0, 3).join('.'));
    const ok = !!s && compareSemver(s, parseSemver(MIN_GIT_VERSION)!) >= 0;
    report({
      name: 'git',
      ok,
      detail: ok ? `git ${v}` : `git version is too old (${v}), install at least git 2.26`,
    });
  } catch (e) {
    report({ name: 'git', ok: false, detail: `git does not run: ${errorMessage(e)}` });
  }

  if (loaded.ok) {
    const config = loaded.config;
    try {
      const checks =
        deps.runtimeChecks?.() ??
        (await import('../executor/runtimes/index.js'))
          .createRuntime(config, {
            logger: createLogger({ level: 'error' }),
            files: (job) =>
              createFilesClient({
                frontendUrl: config.frontendUrl,
                password: config.frontendPassword,
                executorName: config.executorName,
              }).forJob(job),
          })
          .validate();
      for (const c of await checks) report(c);
    } catch (e) {
      report({ name: `runtime ${config.runtime}`, ok: false, detail: errorMessage(e) });
    }

    try {
      const { networkConfinement } = await import('../executor/network/network-confinement.js');
      report(await (deps.networkCheck ?? networkConfinement)(config));
    } catch (e) {
      report({ name: 'job network', ok: false, detail: errorMessage(e) });
    }

    try {
      const { diskConfinement } = await import('../executor/workspace/disk-confinement.js');
      report(await (deps.diskCheck ?? diskConfinement)(config));
    } catch (e) {
      report({ name: 'job disk', ok: false, detail: errorMessage(e) });
    }

    // Whether the daemon pulls Docker Hub images through a mirror (and the configured ones).
    if (config.runtime === 'docker' || config.runtime === 'gvisor') {
      let mirrors: string[] | undefined;
      try {
        mirrors = await (deps.dockerMirrors ?? daemonMirrors)();
      } catch (e) {
        print(`- registry mirror: skipped (docker info failed: ${errorMessage(e)})`);
      }
      if (mirrors) {
        report({
          name: 'registry mirror',
          ...checkRegistryMirrors(config.dockerRegistryMirrorUrls, mirrors),
        });
      }
    }

    const auth = createAuthClient({
      frontendUrl: config.frontendUrl,
      password: config.frontendPassword,
      executorName: config.executorName,
      retry: { ...config.httpRetry, maxAttempts: Math.min(config.httpRetry.maxAttempts, 3) },
      fetch: deps.fetch,
    });
    let serverVersion: string | undefined;
    try {
      serverVersion = (await auth.testAuth()).serverVersion;
      report({
        name: 'frontend auth',
        ok: true,
        detail: `${config.frontendUrl} accepted the executor secret`,
      });
    } catch (e) {
      report({
        name: 'frontend auth',
        ok: false,
        detail:
          e instanceof AuthorizationFailedError ? secretRefused(config.frontendUrl, e) : errorMessage(e),
      });
    }

    const reported = config.reportedVersion;
    const ours = serverVersion ? ourVersionOf(serverVersion) : undefined;
    if (serverVersion && ours !== undefined) {
      const mine = ourVersionOf(reported) ?? reported;
      const c = calculateCompatibility(mine, ours, true);
      report({
        name: 'version',
        ok: c !== 'OUTDATED' && c !== 'VERSION_AHEAD',
        detail: c
          ? `executor ${mine} vs server ${ours}: ${c} (one minor version of divergence is supported)`
          : `executor ${mine} vs server ${ours}: not comparable (development build)`,
      });
    }
    if (opts.sourcegraphVersion !== undefined) {
      const c = calculateCompatibility(reported, opts.sourcegraphVersion, true);
      report({
        name: 'sourcegraph version',
        ok: c === 'UP_TO_DATE' || c === null,
        detail: `a Sourcegraph ${opts.sourcegraphVersion} instance would list this executor (${reported}) as ${c ?? 'not comparable (development or insiders build)'}${c === 'UP_TO_DATE' || c === null ? '' : `; ${sourcegraphRange(reported)}`}`,
      });
    } else if (ours === undefined) {
      print(`- sourcegraph version: ${sourcegraphRange(reported)} (check one: --sourcegraph-version X.Y.Z)`);
    }
  }

  const failed = results.filter((r) => !r.ok).length;
  print(failed === 0 ? 'All checks passed!' : `${failed} of ${results.length} checks failed`);
  return failed === 0;
}

export function registerValidateCommand(program: Command): void {
  program
    .command('validate')
    .description(
      'Check the executor configuration, tools, sandbox runtime and connection to the queue server',
    )
    .option(
      '--sourcegraph-version <version>',
      'Also check how a Sourcegraph instance of this version would list this executor (UP_TO_DATE, OUTDATED, VERSION_AHEAD)',
    )
    .action(async (o: { sourcegraphVersion?: string }) => {
      if (o.sourcegraphVersion !== undefined && !parseSemver(o.sourcegraphVersion)) {
        process.stderr.write(
          `error: --sourcegraph-version must be a version such as 5.6.0, not "${o.sourcegraphVersion}"\n`,
        );
        process.exitCode = 2;
        return;
      }
      const ok = await runValidation(
        process.env,
        (line) => process.stdout.write(`${line}\n`),
        {},
        { sourcegraphVersion: o.sourcegraphVersion },
      );
      if (!ok) process.exitCode = 1;
    });
}
