/**
 * Runs git against a remote for the mirrors: a fixed environment (nothing of the server's own
 * environment but PATH and HOME, no system or global git configuration, no prompt of any kind),
 * configuration passed as GIT_CONFIG_* variables (protocol.allow, the credential header), a
 * timeout and an AbortSignal. A failure becomes a MirrorError whose message says what went wrong
 * in words (unreachable, authentication refused, not a repository, timed out) and never contains a
 * secret.
 */
import { spawn } from 'node:child_process';
import { redactSecrets } from './credentials.js';

export type MirrorFailure =
  | 'unreachable'
  | 'auth'
  | 'not-found'
  | 'timeout'
  | 'too-large'
  | 'credential'
  | 'git';

export class MirrorError extends Error {
  constructor(
    readonly kind: MirrorFailure,
    message: string,
  ) {
    super(message);
    this.name = 'MirrorError';
  }
}

export interface GitRun {
  args: string[];
  /** Configuration pairs, given to git as GIT_CONFIG_KEY_n/GIT_CONFIG_VALUE_n. */
  config: [string, string][];
  /** Strings to take out of any message (the credential). */
  secrets: string[];
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Ordered: the first pattern that matches git's stderr names the failure. */
const FAILURES: [RegExp, MirrorFailure, string][] = [
  [
    /Authentication failed|could not read (Username|Password)|HTTP Basic: Access denied|The requested URL returned error: 40[13]|Permission denied \(publickey|terminal prompts disabled/i,
    'auth',
    'authentication refused by the host; check the credential',
  ],
  [
    /Could not resolve host|Connection refused|Failed to connect|Couldn't connect|Connection timed out|No route to host|Network is unreachable|Could not read from remote repository|Connection reset/i,
    'unreachable',
    'the host cannot be reached',
  ],
  [
    /not found|does not appear to be a git repository|Repository not found|returned error: 404/i,
    'not-found',
    'there is no repository at this URL',
  ],
];

/** The environment git runs with: PATH and HOME only (ssh keys and known_hosts live in HOME). */
function gitEnv(config: [string, string][]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: process.env.HOME ?? '/',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    // No askpass program either: a missing credential fails at once instead of waiting.
    GIT_ASKPASS: '/bin/false',
    SSH_ASKPASS: '/bin/false',
    GIT_SSH_COMMAND: 'ssh -o BatchMode=yes -o ConnectTimeout=30',
    GIT_CONFIG_COUNT: String(config.length),
  };
  config.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = k;
    env[`GIT_CONFIG_VALUE_${i}`] = v;
  });
  return env;
}

/** Runs git; resolves with stdout, rejects with a MirrorError. */
export function runGitRemote(run: GitRun): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', run.args, { env: gitEnv(run.config), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < 1024 * 1024) stdout += d.toString('utf8');
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 16 * 1024) stderr += d.toString('utf8');
    });
    const kill = () => {
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, run.timeoutMs);
    const onAbort = () => kill();
    run.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => {
      clearTimeout(timer);
      run.signal?.removeEventListener('abort', onAbort);
      reject(new MirrorError('git', `git could not be started (${e.message})`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      run.signal?.removeEventListener('abort', onAbort);
      if (code === 0) {
        resolve(stdout);
        return;
      }
      if (timedOut) {
        reject(
          new MirrorError(
            'timeout',
            `the fetch took longer than ${Math.round(run.timeoutMs / 1000)}s and was stopped`,
          ),
        );
        return;
      }
      if (run.signal?.aborted) {
        reject(
          new MirrorError(
            'git',
            'the fetch was stopped (the server is shutting down or the repository was removed)',
          ),
        );
        return;
      }
      reject(describeFailure(redactSecrets(stderr, run.secrets)));
    });
  });
}

/** The failure git's stderr describes; unknown ones keep git's last `fatal:`/`error:` line. */
export function describeFailure(stderr: string): MirrorError {
  for (const [re, kind, message] of FAILURES) if (re.test(stderr)) return new MirrorError(kind, message);
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const last = [...lines].reverse().find((l) => /^(fatal|error):/.test(l)) ?? lines[lines.length - 1] ?? '';
  return new MirrorError('git', `git failed${last ? `: ${last.slice(0, 300)}` : ''}`);
}
