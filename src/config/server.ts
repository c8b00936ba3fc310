/**
 * Queue server configuration: environment variables and command-line flags -> zod (every problem
 * reported together) -> a frozen ServerConfig with normalised units (milliseconds, bytes).
 *
 * Each setting is declared once in SETTINGS below (flag, variable, default, meaning); the table in
 * docs/configuration.md mirrors it. A flag wins over its environment variable.
 */
import path from 'node:path';
import { z } from 'zod';
import { parseDurationMs, parseSizeBytes } from '../lib/duration.js';

export interface ServerConfig {
  listenHost: string;
  listenPort: number;
  dataDir: string;
  reposDir: string;
  /** Store location: a PostgreSQL URL, or the SQLite file URL `sqlite:<dataDir>/executor.db`. */
  databaseUrl: string;
  /** Absolute path of the default SQLite database file. */
  sqlitePath: string;
  executorsAccessToken: string;
  apiToken: string;
  stalledAfterMs: number;
  maxResets: number;
  resetIntervalMs: number;
  deadlineIntervalMs: number;
  executorJanitorIntervalMs: number;
  executorMaxAgeMs: number;
  retryBackoffBaseMs: number;
  retryBackoffMaxMs: number;
  defaultJobTimeoutMs: number;
  defaultMaxAttempts: number;
  maxLogBytesPerJob: number;
  priorityStepMs: number;
  sourcegraphVersion: string;
  queueWeights: Readonly<Record<string, number>>;
  /** Files bigger than this are not inlined in the dequeued Job but served by /.executors/files. */
  fileInlineLimitBytes: number;
  executorBodyLimitBytes: number;
  apiBodyLimitBytes: number;
  /** Dashboard: loopback peers may use the user API without a token when listening on loopback. */
  dashboardLoopbackOpen: boolean;
}

export class ServerConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid server configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ServerConfigError';
  }
}

type Kind = 'string' | 'duration' | 'size' | 'int' | 'listen' | 'weights';

interface Setting {
  key: keyof ServerConfig | 'listen' | 'databaseUrlRaw';
  flag: string;
  env: string;
  kind: Kind;
  default?: string;
  required?: boolean;
  description: string;
}

/** Every server setting. Flags are `--<flag> VALUE`. */
export const SERVER_SETTINGS: readonly Setting[] = [
  {
    key: 'listen',
    flag: 'listen',
    env: 'EXECUTOR_SERVER_LISTEN',
    kind: 'listen',
    default: '127.0.0.1:3080',
    description: 'HOST:PORT to listen on',
  },
  {
    key: 'dataDir',
    flag: 'data',
    env: 'EXECUTOR_SERVER_DATA',
    kind: 'string',
    default: './.executor-data',
    description: 'data directory (holds executor.db)',
  },
  {
    key: 'reposDir',
    flag: 'repos',
    env: 'EXECUTOR_SERVER_REPOS',
    kind: 'string',
    description:
      'directory of git repositories served to executors (default: repos inside the data directory)',
  },
  {
    key: 'databaseUrlRaw',
    flag: 'database-url',
    env: 'DATABASE_URL',
    kind: 'string',
    description:
      'PostgreSQL URL (postgres://...); default: the SQLite file executor.db in the data directory',
  },
  {
    key: 'executorsAccessToken',
    flag: 'executors-access-token',
    env: 'EXECUTORS_ACCESS_TOKEN',
    kind: 'string',
    required: true,
    description: 'shared secret executors authenticate with (token-executor), at least 20 characters',
  },
  {
    key: 'apiToken',
    flag: 'api-token',
    env: 'EXECUTOR_SERVER_API_TOKEN',
    kind: 'string',
    required: true,
    description: 'bearer token of the user API (/api/v1), at least 20 characters',
  },
  {
    key: 'stalledAfterMs',
    flag: 'stalled-after',
    env: 'EXECUTOR_SERVER_STALLED_AFTER',
    kind: 'duration',
    default: '25s',
    description: 'a processing job unheard of for this long is requeued',
  },
  {
    key: 'maxResets',
    flag: 'max-resets',
    env: 'EXECUTOR_SERVER_MAX_RESETS',
    kind: 'int',
    default: '3',
    description: 'stalled resets before a job fails',
  },
  {
    key: 'resetIntervalMs',
    flag: 'reset-interval',
    env: 'EXECUTOR_SERVER_RESET_INTERVAL',
    kind: 'duration',
    default: '5s',
    description: 'how often the stalled-job resetter runs',
  },
  {
    key: 'deadlineIntervalMs',
    flag: 'deadline-interval',
    env: 'EXECUTOR_SERVER_DEADLINE_INTERVAL',
    kind: 'duration',
    default: '5s',
    description: 'how often job deadlines are enforced',
  },
  {
    key: 'executorJanitorIntervalMs',
    flag: 'executor-janitor-interval',
    env: 'EXECUTOR_SERVER_EXECUTOR_JANITOR_INTERVAL',
    kind: 'duration',
    default: '30m',
    description: 'how often records of gone executors are deleted',
  },
  {
    key: 'executorMaxAgeMs',
    flag: 'executor-max-age',
    env: 'EXECUTOR_SERVER_EXECUTOR_MAX_AGE',
    kind: 'duration',
    default: '168h',
    description: 'executors unseen for this long are forgotten',
  },
  {
    key: 'retryBackoffBaseMs',
    flag: 'retry-backoff-base',
    env: 'EXECUTOR_SERVER_RETRY_BACKOFF_BASE',
    kind: 'duration',
    default: '10s',
    description: 'delay before the first retry of an errored job (doubles each retry)',
  },
  {
    key: 'retryBackoffMaxMs',
    flag: 'retry-backoff-max',
    env: 'EXECUTOR_SERVER_RETRY_BACKOFF_MAX',
    kind: 'duration',
    default: '10m',
    description: 'longest retry delay',
  },
  {
    key: 'defaultJobTimeoutMs',
    flag: 'default-job-timeout',
    env: 'EXECUTOR_SERVER_DEFAULT_JOB_TIMEOUT',
    kind: 'duration',
    default: '30m',
    description: 'deadline of a job whose spec has no timeout',
  },
  {
    key: 'defaultMaxAttempts',
    flag: 'default-max-attempts',
    env: 'EXECUTOR_SERVER_DEFAULT_MAX_ATTEMPTS',
    kind: 'int',
    default: '1',
    description: 'attempts of a job whose spec has no maxAttempts (1 = no retries, as Sourcegraph)',
  },
  {
    key: 'maxLogBytesPerJob',
    flag: 'max-log-bytes',
    env: 'EXECUTOR_SERVER_MAX_LOG_BYTES',
    kind: 'size',
    default: '64Mi',
    description:
      'log output stored per job attempt; beyond it a marker is stored and the rest dropped (the executor keeps head and tail within its own cap)',
  },
  {
    key: 'priorityStepMs',
    flag: 'priority-step',
    env: 'EXECUTOR_SERVER_PRIORITY_STEP',
    kind: 'duration',
    default: '60s',
    description: 'queue time one priority level is worth',
  },
  {
    key: 'sourcegraphVersion',
    flag: 'sourcegraph-version',
    env: 'EXECUTOR_SERVER_SOURCEGRAPH_VERSION',
    kind: 'string',
    default: '5.3.0',
    description: 'version stock Sourcegraph executors are compared with',
  },
  {
    key: 'queueWeights',
    flag: 'queue-weights',
    env: 'EXECUTOR_SERVER_QUEUE_WEIGHTS',
    kind: 'weights',
    default: '',
    description: 'multi-queue dequeue weights, e.g. "batches=4,codeintel=1" (default weight 1)',
  },
  {
    key: 'fileInlineLimitBytes',
    flag: 'file-inline-limit',
    env: 'EXECUTOR_SERVER_FILE_INLINE_LIMIT',
    kind: 'size',
    default: '1Mi',
    description: 'job files larger than this are fetched from /.executors/files instead of inlined',
  },
  {
    key: 'executorBodyLimitBytes',
    flag: 'executor-body-limit',
    env: 'EXECUTOR_SERVER_EXECUTOR_BODY_LIMIT',
    kind: 'size',
    default: '10Mi',
    description: 'largest request body on /.executors routes (413 beyond)',
  },
  {
    key: 'apiBodyLimitBytes',
    flag: 'api-body-limit',
    env: 'EXECUTOR_SERVER_API_BODY_LIMIT',
    kind: 'size',
    default: '8Mi',
    description: 'largest request body on /api/v1 routes (413 beyond)',
  },
  {
    key: 'dashboardLoopbackOpen',
    flag: 'dashboard-loopback-open',
    env: 'EXECUTOR_SERVER_DASHBOARD_LOOPBACK_OPEN',
    kind: 'string',
    default: 'true',
    description:
      'when listening on loopback, the dashboard opens without the API token for loopback peers (true or false)',
  },
];

const MIN_TOKEN_LENGTH = 20;

function parseValue(s: Setting, raw: string): { ok: true; value: unknown } | { ok: false; message: string } {
  switch (s.kind) {
    case 'string':
      return { ok: true, value: raw };
    case 'duration': {
      const v = parseDurationMs(raw);
      return v === undefined
        ? { ok: false, message: 'must be a duration such as "25s" or "30m"' }
        : { ok: true, value: v };
    }
    case 'size': {
      const v = parseSizeBytes(raw);
      return v === undefined
        ? { ok: false, message: 'must be a size such as "10Mi" or "1048576"' }
        : { ok: true, value: v };
    }
    case 'int':
      return /^\d+$/.test(raw.trim())
        ? { ok: true, value: Number(raw.trim()) }
        : { ok: false, message: 'must be a non-negative integer' };
    case 'listen': {
      const m = /^(.*):(\d{1,5})$/.exec(raw.trim());
      if (!m) return { ok: false, message: 'must be HOST:PORT, e.g. 127.0.0.1:3080' };
      const host = m[1]!.replace(/^\[(.*)\]$/, '$1');
      return { ok: true, value: { host: host || '0.0.0.0', port: Number(m[2]) } };
    }
    case 'weights': {
      const out: Record<string, number> = {};
      for (const part of raw
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)) {
        const m = /^([^=\s]+)=(\d+(?:\.\d+)?)$/.exec(part);
        if (!m) return { ok: false, message: `"${part}" is not QUEUE=WEIGHT` };
        out[m[1]!] = Number(m[2]);
      }
      return { ok: true, value: out };
    }
  }
}

const schema = z
  .object({
    listen: z.object({ host: z.string().min(1), port: z.number().int().min(0).max(65535) }),
    dataDir: z.string().min(1),
    reposDir: z.string().min(1).optional(),
    databaseUrlRaw: z.string().min(1).optional(),
    executorsAccessToken: z
      .string({ required_error: 'is required' })
      .min(MIN_TOKEN_LENGTH, `must be at least ${MIN_TOKEN_LENGTH} characters`),
    apiToken: z
      .string({ required_error: 'is required' })
      .min(MIN_TOKEN_LENGTH, `must be at least ${MIN_TOKEN_LENGTH} characters`),
    stalledAfterMs: z.number().min(1000, 'must be at least 1s'),
    maxResets: z.number().int().min(0).max(1000),
    resetIntervalMs: z.number().min(100, 'must be at least 100ms'),
    deadlineIntervalMs: z.number().min(100, 'must be at least 100ms'),
    executorJanitorIntervalMs: z.number().min(1000, 'must be at least 1s'),
    executorMaxAgeMs: z.number().min(1000, 'must be at least 1s'),
    retryBackoffBaseMs: z.number().min(0),
    retryBackoffMaxMs: z.number().min(0),
    defaultJobTimeoutMs: z.number().min(1000, 'must be at least 1s'),
    defaultMaxAttempts: z.number().int().min(1).max(100),
    maxLogBytesPerJob: z.number().int().min(1024, 'must be at least 1Ki'),
    priorityStepMs: z.number().min(0),
    sourcegraphVersion: z.string().min(1),
    queueWeights: z.record(z.number().positive('weights must be positive')),
    fileInlineLimitBytes: z.number().int().min(0),
    executorBodyLimitBytes: z.number().int().min(1024, 'must be at least 1Ki'),
    apiBodyLimitBytes: z.number().int().min(1024, 'must be at least 1Ki'),
    dashboardLoopbackOpen: z.enum(['true', 'false'], { message: 'must be true or false' }),
  })
  .superRefine((c, ctx) => {
    if (c.retryBackoffMaxMs < c.retryBackoffBaseMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['retryBackoffMaxMs'],
        message: 'must not be below the retry backoff base',
      });
    }
  });

export interface ServerConfigSources {
  env?: Record<string, string | undefined>;
  /** Commander option values, keyed by camel-cased flag name (`stalledAfter`), or by the flag itself. */
  flags?: Record<string, unknown>;
  /** Resolves relative directories (default process.cwd()). */
  cwd?: string;
}

const camel = (flag: string) => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Builds the server configuration; throws ServerConfigError listing every problem. */
export function loadServerConfig(sources: ServerConfigSources = {}): ServerConfig {
  const env = sources.env ?? process.env;
  const flags = sources.flags ?? {};
  const cwd = sources.cwd ?? process.cwd();
  const problems: string[] = [];
  const raw: Record<string, unknown> = {};
  const label = new Map<string, string>();
  for (const s of SERVER_SETTINGS) {
    label.set(s.key, `--${s.flag} / ${s.env}`);
    const fromFlag = flags[camel(s.flag)] ?? flags[s.flag];
    const text =
      fromFlag !== undefined && fromFlag !== null && fromFlag !== ''
        ? String(fromFlag)
        : env[s.env] !== undefined && env[s.env] !== ''
          ? env[s.env]!
          : s.default;
    if (text === undefined) continue;
    const r = parseValue(s, text);
    if (r.ok) raw[s.key] = r.value;
    else problems.push(`${label.get(s.key)}: ${r.message}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const key = String(issue.path[0] ?? '');
      const setting = SERVER_SETTINGS.find((s) => s.key === key);
      // A value that failed to parse above is already reported; zod then only sees it missing.
      if (setting && !setting.required && raw[key] === undefined) continue;
      problems.push(`${label.get(key) ?? key}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !parsed.success) throw new ServerConfigError(problems);
  const c = parsed.data;
  const dataDir = path.resolve(cwd, c.dataDir);
  const sqlitePath = path.join(dataDir, 'executor.db');
  const config: ServerConfig = {
    listenHost: c.listen.host,
    listenPort: c.listen.port,
    dataDir,
    reposDir: c.reposDir ? path.resolve(cwd, c.reposDir) : path.join(dataDir, 'repos'),
    databaseUrl: c.databaseUrlRaw ?? `sqlite:${sqlitePath}`,
    sqlitePath,
    executorsAccessToken: c.executorsAccessToken,
    apiToken: c.apiToken,
    stalledAfterMs: c.stalledAfterMs,
    maxResets: c.maxResets,
    resetIntervalMs: c.resetIntervalMs,
    deadlineIntervalMs: c.deadlineIntervalMs,
    executorJanitorIntervalMs: c.executorJanitorIntervalMs,
    executorMaxAgeMs: c.executorMaxAgeMs,
    retryBackoffBaseMs: c.retryBackoffBaseMs,
    retryBackoffMaxMs: c.retryBackoffMaxMs,
    defaultJobTimeoutMs: c.defaultJobTimeoutMs,
    defaultMaxAttempts: c.defaultMaxAttempts,
    maxLogBytesPerJob: c.maxLogBytesPerJob,
    priorityStepMs: c.priorityStepMs,
    sourcegraphVersion: c.sourcegraphVersion,
    queueWeights: Object.freeze({ ...c.queueWeights }),
    fileInlineLimitBytes: c.fileInlineLimitBytes,
    executorBodyLimitBytes: c.executorBodyLimitBytes,
    apiBodyLimitBytes: c.apiBodyLimitBytes,
    dashboardLoopbackOpen: c.dashboardLoopbackOpen === 'true',
  };
  return Object.freeze(config);
}
