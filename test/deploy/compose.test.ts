/**
 * deploy/compose: the YAML parses, its services are the ones the docs name, every variable it sets
 * is one the server or the executor declares, and the environment each service gets, interpolated
 * the way `docker compose` does with the shipped env.example, loads as a valid configuration.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { EXECUTOR_ENV, loadExecutorConfig } from '../../src/config/executor.js';
import { loadServerConfig, SERVER_SETTINGS } from '../../src/config/server.js';
import { parseDurationMs } from '../../src/lib/duration.js';

const dir = new URL('../../deploy/compose/', import.meta.url);
const root = new URL('../../', import.meta.url);
const text = readFileSync(new URL('compose.yaml', dir), 'utf8');
const postgresText = readFileSync(new URL('compose.postgres.yaml', dir), 'utf8');

type Service = {
  image?: string;
  build: { context: string; dockerfile: string; args?: Record<string, string> };
  environment: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  stop_grace_period?: string;
  stop_signal?: string;
  init?: boolean;
  deploy?: { replicas?: string | number };
  depends_on?: Record<string, { condition: string }>;
};
const compose = parse(text) as { services: Record<string, Service>; volumes?: Record<string, unknown> };

/** Reads KEY=VALUE lines, as compose reads .env. */
function readEnvFile(t: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of t.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** Compose interpolation of `${X}`, `${X:-default}` and `${X:?message}` (the forms this file uses). */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(
    /\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g,
    (_, name: string, op?: string, arg?: string) => {
      const v = vars[name];
      if (v !== undefined && v !== '') return v;
      if (op === '-') return arg ?? '';
      if (op === '?') throw new Error(`required variable ${name} is missing: ${arg}`);
      return '';
    },
  );
}

const envExample = readEnvFile(readFileSync(new URL('env.example', dir), 'utf8'));
const serverEnvNames = new Set(SERVER_SETTINGS.map((s) => s.env));
const executorEnvNames = new Set(Object.keys(EXECUTOR_ENV));

describe('deploy/compose/compose.yaml', () => {
  it('has a server and an executor service, built from the Dockerfiles in deploy/docker', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['executor', 'server']);
    expect(compose.services.server!.build.dockerfile).toBe('deploy/docker/server.Dockerfile');
    expect(compose.services.executor!.build.dockerfile).toBe('deploy/docker/executor.Dockerfile');
    for (const s of Object.values(compose.services)) {
      const context = new URL(`${s.build.context.replace(/\/?$/, '/')}`, dir);
      expect(context.href).toBe(root.href);
      expect(existsSync(new URL(s.build.dockerfile, context))).toBe(true);
    }
  });

  it('sets only variables the server and the executor declare', () => {
    const unknownServer = Object.keys(compose.services.server!.environment).filter(
      (k) => !serverEnvNames.has(k),
    );
    const unknownExecutor = Object.keys(compose.services.executor!.environment).filter(
      (k) => !executorEnvNames.has(k),
    );
    expect(unknownServer).toEqual([]);
    expect(unknownExecutor).toEqual([]);
  });

  it('every ${VAR} it and compose.postgres.yaml read is in env.example, which sets nothing else but the project name', () => {
    const used = new Set([...`${text}${postgresText}`.matchAll(/\$\{([A-Z0-9_]+)/g)].map((m) => m[1]!));
    expect([...used, 'COMPOSE_PROJECT_NAME'].sort()).toEqual(Object.keys(envExample).sort());
  });

  it('uses the images npm run images tags with the package version', () => {
    const version = (JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as { version: string })
      .version;
    expect(envExample.EXECUTOR_IMAGE_TAG).toBe(version);
    const image = (s: string) => interpolate(compose.services[s]!.image!, envExample);
    expect(image('server')).toBe(`executor-server:${version}`);
    expect(image('executor')).toBe(`executor:${version}`);
    const pg = parse(postgresText) as {
      services: Record<string, { image?: string; environment: Record<string, string> }>;
    };
    expect(interpolate(pg.services.postgres!.image!, {})).toBe(`executor-postgres:${version}`);
    expect(envExample.POSTGRES_IMAGE).toBe(`executor-postgres:${version}`);
    // The override gives the server only variables it declares, and a URL that loads.
    expect(Object.keys(pg.services.server!.environment).filter((k) => !serverEnvNames.has(k))).toEqual([]);
    const url = interpolate(pg.services.server!.environment.DATABASE_URL!, {
      POSTGRES_PASSWORD: 'c'.repeat(40),
    });
    expect(new URL(url).hostname).toBe('postgres');
  });

  it('refuses to start without the two tokens', () => {
    const env = compose.services.server!.environment;
    expect(() => interpolate(env.EXECUTORS_ACCESS_TOKEN!, { ...envExample })).toThrow(
      /EXECUTORS_ACCESS_TOKEN/,
    );
    expect(() => interpolate(env.EXECUTOR_SERVER_API_TOKEN!, { ...envExample })).toThrow(
      /EXECUTOR_SERVER_API_TOKEN/,
    );
  });

  it('gives each service a configuration that loads, with the executor pointed at the server', () => {
    const vars = {
      ...envExample,
      EXECUTORS_ACCESS_TOKEN: 'a'.repeat(40),
      EXECUTOR_SERVER_API_TOKEN: 'b'.repeat(40),
    };
    const resolve = (s: Service) =>
      Object.fromEntries(Object.entries(s.environment).map(([k, v]) => [k, interpolate(String(v), vars)]));

    const server = loadServerConfig({ env: resolve(compose.services.server!), cwd: '/' });
    expect(server.listenHost).toBe('0.0.0.0');
    expect(server.executorsAccessToken).toBe(vars.EXECUTORS_ACCESS_TOKEN);

    const executorEnv = resolve(compose.services.executor!);
    const loaded = loadExecutorConfig(executorEnv);
    if (!loaded.ok) throw new Error(loaded.problems.join('; '));
    expect(loaded.config.frontendPassword).toBe(server.executorsAccessToken);
    // The executors share the host's network (their job network's firewall rules are the host's):
    // they reach the server on the loopback port it is published on.
    const frontend = new URL(loaded.config.frontendUrl);
    expect(frontend.hostname).toBe('127.0.0.1');
    const published = compose.services.server!.ports!.map((p) => interpolate(p, vars));
    expect(published).toEqual([`127.0.0.1:${frontend.port}:${server.listenPort}`]);
    expect((compose.services.executor as { network_mode?: string }).network_mode).toBe('host');
    expect((compose.services.executor as { cap_add?: string[] }).cap_add).toEqual(['NET_ADMIN']);
    // Same hostname on every replica: the janitors judge each other's leftovers by host pid.
    expect((compose.services.executor as { pid?: string }).pid).toBe('host');

    // The workspace root is bind-mounted at the same path on both sides (the host's daemon
    // resolves the step containers' mounts on the host).
    const ws = loaded.config.workspaceRoot;
    expect(compose.services.executor!.volumes!.map((v) => interpolate(v, vars))).toContain(`${ws}:${ws}`);

    // Draining: the stop grace period covers the longest job.
    expect(compose.services.executor!.stop_signal).toBe('SIGTERM');
    expect(parseDurationMs(compose.services.executor!.stop_grace_period!)).toBeGreaterThan(
      loaded.config.maximumRuntimePerJobMs,
    );
    expect(Number(interpolate(String(compose.services.executor!.deploy!.replicas), vars))).toBeGreaterThan(0);
  });

  it('mounts the Docker socket into the executor only, never into the server', () => {
    const sock = (s: Service) => (s.volumes ?? []).filter((v) => v.startsWith('/var/run/docker.sock:'));
    expect(sock(compose.services.executor!)).toEqual(['/var/run/docker.sock:/var/run/docker.sock']);
    expect(sock(compose.services.server!)).toEqual([]);
    expect(text).toMatch(/RISK/);
    expect(text).toMatch(/docs\/security\.md/);
  });

  it('starts executors only once the server is ready (the check of its image asks /readyz)', () => {
    expect(compose.services.executor!.depends_on).toEqual({ server: { condition: 'service_healthy' } });
    expect((compose.services.server as Record<string, unknown>).healthcheck).toBeUndefined();
    const dockerfile = readFileSync(new URL('deploy/docker/server.Dockerfile', root), 'utf8');
    expect(dockerfile).toMatch(/^HEALTHCHECK [^\n]*\\\n[^\n]*\/readyz/m);
  });
});
