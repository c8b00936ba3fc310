/**
 * deploy/systemd: the executor unit is exactly the one `executor install` writes, and the server's
 * example environment file sets only declared variables and loads once its tokens are filled in.
 * `systemd-analyze verify` checks both units' syntax where it is installed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadServerConfig, SERVER_SETTINGS, ServerConfigError } from '../../src/config/server.js';
import { DEFAULT_BIN_PATH, ENV_PATH, renderUnit } from '../../src/executor/install/install.js';

const dir = new URL('../../deploy/systemd/', import.meta.url);
const read = (name: string) => readFileSync(new URL(name, dir), 'utf8');

function readEnvFile(t: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of t.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

function directives(unit: string, name: string): string[] {
  return unit
    .split('\n')
    .filter((l) => l.startsWith(`${name}=`))
    .map((l) => l.slice(name.length + 1));
}

function systemdAnalyzeAvailable(): boolean {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'pipe', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}
const hasAnalyze = systemdAnalyzeAvailable();
if (!hasAnalyze) console.warn('skipping: systemd-analyze is not available (unit syntax check)');

describe('deploy/systemd', () => {
  it('executor.service is the unit `executor install` writes', () => {
    const unit = read('executor.service');
    expect(unit).toBe(renderUnit(DEFAULT_BIN_PATH));
    expect(directives(unit, 'EnvironmentFile')).toEqual([ENV_PATH]);
  });

  it('executor-server.service runs `executor server` with the env file, as its own user', () => {
    const unit = read('executor-server.service');
    expect(directives(unit, 'ExecStart')).toEqual([`${DEFAULT_BIN_PATH} server`]);
    expect(directives(unit, 'EnvironmentFile')).toEqual(['/etc/executor/server.env']);
    expect(directives(unit, 'User')).toEqual(['executor-server']);
    expect(directives(unit, 'StateDirectory')).toEqual(['executor-server']);
    expect(directives(unit, 'KillSignal')).toEqual(['SIGTERM']);
    // The data directory the env file names is the unit's state directory.
    expect(readEnvFile(read('server.env')).EXECUTOR_SERVER_DATA).toBe('/var/lib/executor-server');
  });

  it('server.env sets only server settings, and the server refuses it until both tokens are set', () => {
    const env = readEnvFile(read('server.env'));
    const declared = new Set(SERVER_SETTINGS.map((s) => s.env));
    expect(Object.keys(env).filter((k) => !declared.has(k))).toEqual([]);
    // Every variable commented out in the file is a declared one too.
    const commented = [...read('server.env').matchAll(/^# ([A-Z0-9_]+)=/gm)].map((m) => m[1]!);
    expect(commented.filter((k) => !declared.has(k))).toEqual([]);

    let error: unknown;
    try {
      loadServerConfig({ env, cwd: '/' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ServerConfigError);
    const problems = (error as ServerConfigError).problems.join('\n');
    expect(problems).toContain('EXECUTORS_ACCESS_TOKEN');
    expect(problems).toContain('EXECUTOR_SERVER_API_TOKEN');

    const config = loadServerConfig({
      env: { ...env, EXECUTORS_ACCESS_TOKEN: 'a'.repeat(40), EXECUTOR_SERVER_API_TOKEN: 'b'.repeat(40) },
      cwd: '/',
    });
    expect(`${config.listenHost}:${config.listenPort}`).toBe('0.0.0.0:3080');
    expect(config.dataDir).toBe('/var/lib/executor-server');
    expect(config.reposDir).toBe('/srv/git');
    expect(config.databaseUrl).toBe('sqlite:/var/lib/executor-server/executor.db');
  });

  it.skipIf(!hasAnalyze)('both units pass systemd-analyze verify', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'units-'));
    for (const name of ['executor.service', 'executor-server.service']) {
      // verify insists that ExecStart's binary exists; point it at one that does.
      const unit = read(name).replaceAll(DEFAULT_BIN_PATH, '/bin/true');
      const file = join(tmp, name);
      writeFileSync(file, unit);
      // verify exits 0 on most mistakes (unknown keys, bad values) and only prints them, each line
      // prefixed with the unit's path: no such line means the unit is clean.
      const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status).toBe(0);
      expect(`${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes(file))).toEqual([]);
    }
  });
});
