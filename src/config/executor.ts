/**
 * The executor's configuration, as the rest of the program imports it. Declarations live in
 * executor/*-env.ts and executor/*-config.ts (one catalogue of variables, each documented once);
 * the generic declaration type, parsers and loader are in declare.ts, parsers.ts and load.ts.
 */

import { EXECUTOR_ENV } from './executor/executor-env.js';
import { renderEnvHelp, renderEnvTable } from './render-docs.js';

export { checkRegistryMirrorUrl, type DockerAuthConfig } from './executor/docker-parsers.js';
export { EXECUTOR_ENV, type ExecutorEnvName } from './executor/executor-env.js';
export type { HttpRetryConfig } from './executor/http-retry-config.js';
export {
  DEFAULT_JOB_SUBNET,
  type EgressAllow,
  formatEgressAllow,
  type JobNetworkMode,
} from './executor/job-network-config.js';
export type { KubernetesConfig } from './executor/kubernetes-config.js';
export {
  defaultExecutorName,
  type ExecutorConfig,
  type LoadResult,
  loadExecutorConfig,
} from './executor/load-executor-config.js';
export { FIRECRACKER_REFUSED, RUNTIME_NAMES, type RuntimeName } from './executor/runtime.js';

/** The docs table of every executor variable (docs/configuration.md, "Executor"). */
export const renderExecutorEnvDocs = (): string => renderEnvTable(EXECUTOR_ENV);

/** One-line-per-variable summary for `executor run --help`. */
/** `executor run --help`'s list: general settings first, then Kubernetes, HTTP retries, legacy. */
export const renderExecutorEnvHelp = (): string =>
  renderEnvHelp(EXECUTOR_ENV, [
    { title: 'Kubernetes runtime (EXECUTOR_RUNTIME=kubernetes):', has: (n) => n.includes('KUBERNETES') },
    { title: 'HTTP retries to the server:', has: (n) => n.startsWith('SRC_HTTP_CLI_') },
    {
      title: "Accepted for compatibility with Sourcegraph's executor (Firecracker is not available here):",
      has: (n) => n.includes('FIRECRACKER'),
    },
  ]);
