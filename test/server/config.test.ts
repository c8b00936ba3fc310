import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  loadServerConfig,
  renderServerSettingsDocs,
  SERVER_SETTINGS,
  ServerConfigError,
} from '../../src/config/server.js';

const required = {
  EXECUTORS_ACCESS_TOKEN: 'x'.repeat(20),
  EXECUTOR_SERVER_API_TOKEN: 'y'.repeat(20),
};

describe('loadServerConfig', () => {
  it('applies defaults with normalised units and freezes the result', () => {
    const c = loadServerConfig({ env: required, cwd: '/srv' });
    expect(c).toMatchObject({
      listenHost: '127.0.0.1',
      listenPort: 3080,
      dataDir: path.resolve('/srv', '.executor-data'),
      reposDir: path.resolve('/srv', '.executor-data', 'repos'),
      databaseUrl: `sqlite:${path.resolve('/srv', '.executor-data', 'executor.db')}`,
      stalledAfterMs: 25_000,
      maxResets: 3,
      resetIntervalMs: 5_000,
      defaultJobTimeoutMs: 30 * 60_000,
      maxLogBytesPerJob: 64 * 1024 * 1024,
      priorityStepMs: 60_000,
      sourcegraphVersion: '5.6.0',
      fileInlineLimitBytes: 1024 * 1024,
      executorBodyLimitBytes: 10 * 1024 * 1024,
      executorMaxAgeMs: 7 * 86_400_000,
      requestTimeoutMs: 120_000,
      bodyIdleTimeoutMs: 15_000,
      maxLogEntriesPerJob: 1000,
      maxLogCommandBytes: 64 * 1024,
      queueWeights: {},
      authFailureLimit: 10,
      authFailureWindowMs: 60_000,
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.queueWeights)).toBe(true);
  });

  it('takes flags over environment variables', () => {
    const c = loadServerConfig({
      env: { ...required, EXECUTOR_SERVER_LISTEN: '0.0.0.0:1', EXECUTOR_SERVER_STALLED_AFTER: '1m' },
      flags: { listen: '[::1]:4000', stalledAfter: '40s', queueWeights: 'batches=4,codeintel=1', data: '/d' },
    });
    expect(c).toMatchObject({
      listenHost: '::1',
      listenPort: 4000,
      stalledAfterMs: 40_000,
      queueWeights: { batches: 4, codeintel: 1 },
      reposDir: '/d/repos',
    });
  });

  it('uses DATABASE_URL when given', () => {
    const c = loadServerConfig({ env: { ...required, DATABASE_URL: 'postgres://u@h/db' } });
    expect(c.databaseUrl).toBe('postgres://u@h/db');
  });

  it('reports every problem at once, naming flag and variable', () => {
    let err: unknown;
    try {
      loadServerConfig({
        env: {
          EXECUTORS_ACCESS_TOKEN: 'short',
          EXECUTOR_SERVER_STALLED_AFTER: 'soon',
          EXECUTOR_SERVER_LISTEN: 'nowhere',
          EXECUTOR_SERVER_QUEUE_WEIGHTS: 'a=x',
        },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ServerConfigError);
    const problems = (err as ServerConfigError).problems;
    expect(problems).toHaveLength(5);
    expect(problems.join('\n')).toMatch(
      /--executors-access-token \/ EXECUTORS_ACCESS_TOKEN: must be at least 20/,
    );
    expect(problems.join('\n')).toMatch(/--api-token \/ EXECUTOR_SERVER_API_TOKEN: is required/);
    expect(problems.join('\n')).toMatch(/EXECUTOR_SERVER_STALLED_AFTER: must be a duration/);
    expect(problems.join('\n')).toMatch(/EXECUTOR_SERVER_LISTEN: must be HOST:PORT/);
    expect(problems.join('\n')).toMatch(/EXECUTOR_SERVER_QUEUE_WEIGHTS: "a=x" is not QUEUE=WEIGHT/);
  });

  it('the authentication-failure limit is at least 1 and its window at least 1s', () => {
    const problems = (env: Record<string, string>): string[] => {
      try {
        loadServerConfig({ env: { ...required, ...env } });
        return [];
      } catch (e) {
        return (e as ServerConfigError).problems;
      }
    };
    expect(
      problems({ EXECUTOR_SERVER_AUTH_FAILURE_LIMIT: '0', EXECUTOR_SERVER_AUTH_FAILURE_WINDOW: '10ms' }),
    ).toEqual([
      expect.stringMatching(/^--auth-failure-limit \/ EXECUTOR_SERVER_AUTH_FAILURE_LIMIT: /),
      expect.stringMatching(
        /^--auth-failure-window \/ EXECUTOR_SERVER_AUTH_FAILURE_WINDOW: must be at least 1s/,
      ),
    ]);
    expect(problems({ EXECUTOR_SERVER_AUTH_FAILURE_LIMIT: 'many' })).toHaveLength(1);
    expect(
      loadServerConfig({
        env: {
          ...required,
          EXECUTOR_SERVER_AUTH_FAILURE_LIMIT: '3',
          EXECUTOR_SERVER_AUTH_FAILURE_WINDOW: '5m',
        },
      }),
    ).toMatchObject({ authFailureLimit: 3, authFailureWindowMs: 300_000 });
  });

  it("the heap's growth step is 0 (V8's own) unless set, at most 400 %", () => {
    expect(loadServerConfig({ env: required }).heapGrowingPercent).toBe(0);
    expect(
      loadServerConfig({ env: { ...required, EXECUTOR_SERVER_HEAP_GROWING_PERCENT: '20' } })
        .heapGrowingPercent,
    ).toBe(20);
    for (const bad of ['500', '-1', 'some'])
      expect(() =>
        loadServerConfig({ env: { ...required, EXECUTOR_SERVER_HEAP_GROWING_PERCENT: bad } }),
      ).toThrow(/--heap-growing-percent \/ EXECUTOR_SERVER_HEAP_GROWING_PERCENT: /);
  });

  it('docs/configuration.md lists every server setting with its default', () => {
    const doc = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## Server (executor server)'));
    expect(section.length).toBeGreaterThan(100);
    for (const s of SERVER_SETTINGS) {
      const row = section.split('\n').find((l) => l.startsWith(`| \`--${s.flag}\` | \`${s.env}\` |`));
      expect(row, s.env).toBeDefined();
      if (s.default) expect(row).toContain(`\`${s.default}\``);
    }
    expect(section).toContain(renderServerSettingsDocs());
  });
});
