import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dockerFactsFromDaemon } from '../../src/cli/install.js';
import {
  DAEMON_JSON_PATH,
  ENV_PATH,
  formatInstallResult,
  type InstallOptions,
  runInstall,
  UNIT_PATH,
  WORKSPACE_ROOT,
} from '../../src/executor/install/install.js';
import { dockerAvailable, requireOrSkip } from '../helpers/env.js';
import { spawnCli } from '../helpers/spawn-cli.js';

const hasDocker = requireOrSkip('docker', dockerAvailable());

describe.skipIf(!hasDocker)('executor install against a temporary root', () => {
  let root: string;
  let reloads: number;
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'install-root-'));
    reloads = 0;
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const options = (over: Partial<InstallOptions> = {}): InstallOptions => ({
    root,
    dryRun: false,
    withGvisor: false,
    registryMirrors: [],
    binPath: '/usr/local/bin/executor',
    runscPath: '/usr/bin/runsc',
    env: {
      EXECUTOR_FRONTEND_URL: 'https://queue.example.com',
      EXECUTOR_FRONTEND_PASSWORD: 'hunter2-secret',
      EXECUTOR_QUEUE_NAME: 'batches',
      UNRELATED: 'not copied',
    },
    dockerFacts: () => dockerFactsFromDaemon(),
    reloadDocker: async () => {
      reloads++;
    },
    ...over,
  });
  const read = (p: string) => readFileSync(path.join(root, p), 'utf8');

  it('writes the unit, a 0600 env file, the workspace root and merges daemon.json', async () => {
    mkdirSync(path.join(root, 'etc/docker'), { recursive: true });
    writeFileSync(
      path.join(root, DAEMON_JSON_PATH),
      JSON.stringify({ 'log-driver': 'journald', 'registry-mirrors': ['http://old-mirror:5000'] }),
    );
    const r = await runInstall(
      options({ withGvisor: true, registryMirrors: ['http://127.0.0.1:5000', 'http://old-mirror:5000'] }),
    );

    expect(r.items.map((i) => [i.path, i.status])).toEqual([
      [UNIT_PATH, 'create'],
      [ENV_PATH, 'create'],
      [WORKSPACE_ROOT, 'create'],
      [DAEMON_JSON_PATH, 'update'],
    ]);
    expect(r.ok).toBe(true);
    expect(r.checks.find((c) => c.name === 'docker')?.ok).toBe(true);
    // A temporary root is never the running daemon's configuration: no reload.
    expect(reloads).toBe(0);

    const unit = read(UNIT_PATH);
    expect(unit).toContain('ExecStart=/usr/local/bin/executor run');
    expect(unit).toContain(`EnvironmentFile=${ENV_PATH}`);

    expect(statSync(path.join(root, ENV_PATH)).mode & 0o777).toBe(0o600);
    const env = read(ENV_PATH);
    expect(env).toContain('EXECUTOR_FRONTEND_URL="https://queue.example.com"');
    expect(env).toContain('EXECUTOR_QUEUE_NAME="batches"');
    expect(env).toContain('EXECUTOR_RUNTIME="gvisor"');
    expect(env).toContain(`EXECUTOR_WORKSPACE_ROOT="${WORKSPACE_ROOT}"`);
    expect(env).toContain(
      'EXECUTOR_DOCKER_REGISTRY_MIRROR_URL="http://127.0.0.1:5000,http://old-mirror:5000"',
    );
    expect(env).not.toContain('UNRELATED');
    expect(r.missing).toEqual([]);

    expect(statSync(path.join(root, WORKSPACE_ROOT)).isDirectory()).toBe(true);

    const daemon = JSON.parse(read(DAEMON_JSON_PATH));
    expect(daemon).toEqual({
      'log-driver': 'journald',
      'registry-mirrors': ['http://old-mirror:5000', 'http://127.0.0.1:5000'],
      runtimes: { runsc: { path: '/usr/bin/runsc', runtimeArgs: ['--platform=ptrace', '--network=host'] } },
    });
  });

  it('is idempotent: a second run changes nothing and says unchanged', async () => {
    const opts = options({ withGvisor: true, registryMirrors: ['http://127.0.0.1:5000'] });
    await runInstall(opts);
    const before = [UNIT_PATH, ENV_PATH, DAEMON_JSON_PATH].map((p) => [
      read(p),
      statSync(path.join(root, p)).mtimeMs,
    ]);
    const again = await runInstall(opts);
    expect(again.items.map((i) => i.status)).toEqual(['unchanged', 'unchanged', 'unchanged', 'unchanged']);
    const after = [UNIT_PATH, ENV_PATH, DAEMON_JSON_PATH].map((p) => [
      read(p),
      statSync(path.join(root, p)).mtimeMs,
    ]);
    expect(after).toEqual(before);
    expect(formatInstallResult(again, false).filter((l) => /^(created|updated)/.test(l))).toEqual([]);
  });

  it('keeps existing env values on a re-run; only settings named by flags replace them', async () => {
    await runInstall(options());
    // An operator edits the file by hand.
    const edited = read(ENV_PATH).replace('EXECUTOR_QUEUE_NAME="batches"', 'EXECUTOR_QUEUE_NAME="codeintel"');
    writeFileSync(path.join(root, ENV_PATH), `${edited}EXECUTOR_MAXIMUM_NUM_JOBS="8"\n`);

    const r = await runInstall(
      options({
        env: { EXECUTOR_FRONTEND_URL: 'https://other.example.com', EXECUTOR_QUEUE_NAME: 'other' },
        registryMirrors: ['https://mirror.internal'],
      }),
    );
    expect(r.items.find((i) => i.path === ENV_PATH)?.status).toBe('update');
    const env = read(ENV_PATH);
    expect(env).toContain('EXECUTOR_FRONTEND_URL="https://queue.example.com"');
    expect(env).toContain('EXECUTOR_QUEUE_NAME="codeintel"');
    expect(env).toContain('EXECUTOR_MAXIMUM_NUM_JOBS="8"');
    expect(env).toContain('EXECUTOR_DOCKER_REGISTRY_MIRROR_URL="https://mirror.internal"');
    expect(statSync(path.join(root, ENV_PATH)).mode & 0o777).toBe(0o600);
  });

  it('leaves daemon.json alone when neither mirrors nor gVisor are asked for', async () => {
    const r = await runInstall(options());
    expect(r.items.map((i) => i.path)).not.toContain(DAEMON_JSON_PATH);
    expect(() => statSync(path.join(root, DAEMON_JSON_PATH))).toThrow();
  });

  it('names the required variables still missing as placeholders', async () => {
    const r = await runInstall(options({ env: {} }));
    expect(r.missing).toEqual(['EXECUTOR_FRONTEND_URL', 'EXECUTOR_FRONTEND_PASSWORD', 'EXECUTOR_QUEUE_NAME']);
    expect(read(ENV_PATH)).toContain('# EXECUTOR_FRONTEND_PASSWORD=\n');
    expect(formatInstallResult(r, false).at(-1)).toBe(
      `fill in EXECUTOR_FRONTEND_URL, EXECUTOR_FRONTEND_PASSWORD, EXECUTOR_QUEUE_NAME in ${ENV_PATH}`,
    );
  });

  it('refuses to overwrite a daemon.json that is not JSON', async () => {
    mkdirSync(path.join(root, 'etc/docker'), { recursive: true });
    writeFileSync(path.join(root, DAEMON_JSON_PATH), '{ not json');
    await expect(runInstall(options({ registryMirrors: ['http://127.0.0.1:5000'] }))).rejects.toThrow(
      /is not valid JSON/,
    );
    expect(read(DAEMON_JSON_PATH)).toBe('{ not json');
  });

  it('reports a Docker daemon that does not answer as a failed check', async () => {
    const r = await runInstall(
      options({
        dockerFacts: () => Promise.reject(new Error('connect ENOENT /nonexistent.sock')),
      }),
    );
    expect(r.ok).toBe(false);
    expect(formatInstallResult(r, false)).toContain(
      '✗ docker: the Docker daemon does not answer (connect ENOENT /nonexistent.sock); install Docker (Debian: apt-get install docker.io) and start it',
    );
  });

  it('a dry run writes nothing, says what it would write and masks secrets', async () => {
    const r = await runInstall(options({ dryRun: true, registryMirrors: ['http://127.0.0.1:5000'] }));
    expect(r.items.map((i) => i.status)).toEqual(['create', 'create', 'create', 'create']);
    const lines = formatInstallResult(r, true);
    expect(lines).toContain(`would create ${UNIT_PATH}`);
    expect(lines).toContain(`would create ${WORKSPACE_ROOT}/`);
    expect(lines).toContain('    EXECUTOR_FRONTEND_PASSWORD="********"');
    expect(lines.join('\n')).not.toContain('hunter2-secret');
    expect(readdirDeep(root)).toEqual([]);
  });
});

describe.skipIf(!hasDocker)('executor install (the command)', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'install-cli-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const env = {
    EXECUTOR_FRONTEND_URL: 'http://127.0.0.1:3080',
    EXECUTOR_FRONTEND_PASSWORD: 'pw',
    EXECUTOR_QUEUE_NAME: 'q',
  };

  it('installs, then reports everything unchanged on a second run', async () => {
    const args = [
      'install',
      '--root',
      root,
      '--registry-mirror',
      'http://127.0.0.1:5000/',
      '--bin',
      '/opt/executor/executor',
    ];
    const first = spawnCli(args, env);
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain(`created ${UNIT_PATH}`);
    expect(first.output()).toMatch(/✓ docker: the Docker daemon answers; version \S+/);
    expect(readFileSync(path.join(root, UNIT_PATH), 'utf8')).toContain(
      'ExecStart=/opt/executor/executor run',
    );
    expect(JSON.parse(readFileSync(path.join(root, DAEMON_JSON_PATH), 'utf8'))).toEqual({
      'registry-mirrors': ['http://127.0.0.1:5000'],
    });

    const second = spawnCli(args, env);
    expect(await second.exited).toBe(0);
    const out = second.output();
    expect(out).toContain(`unchanged ${UNIT_PATH}`);
    expect(out).toContain(`unchanged ${ENV_PATH}`);
    expect(out).toContain(`unchanged ${DAEMON_JSON_PATH}`);
    expect(out).not.toMatch(/^(created|updated) /m);
  }, 60_000);

  it('--dry-run writes nothing; a bad mirror URL exits 2', async () => {
    const dry = spawnCli(['install', '--root', root, '--dry-run', '--with-gvisor'], env);
    expect(await dry.exited).toBe(0);
    expect(dry.output()).toContain(`would create ${ENV_PATH}`);
    expect(dry.output()).toContain('    EXECUTOR_RUNTIME="gvisor"');
    expect(readdirDeep(root)).toEqual([]);

    const bad = spawnCli(['install', '--root', root, '--registry-mirror', 'http://mirror:5000/v2/'], env);
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toContain('--registry-mirror: "http://mirror:5000/v2/" must have no path');
  }, 60_000);
});

function readdirDeep(dir: string): string[] {
  return readdirSync(dir, { recursive: true }) as string[];
}
