import { describe, expect, it } from 'vitest';
import { checkRegistryMirrorUrl, loadExecutorConfig } from '../../src/config/executor.js';
import { checkRegistryMirrors, mergeDaemonConfig } from '../../src/executor/install/daemon-config.js';
import { parseEnvFile, renderEnvFile } from '../../src/executor/install/env-file.js';

describe('EXECUTOR_DOCKER_REGISTRY_MIRROR_URL', () => {
  const base = {
    EXECUTOR_FRONTEND_URL: 'http://127.0.0.1:3080',
    EXECUTOR_FRONTEND_PASSWORD: 'pw',
    EXECUTOR_QUEUE_NAME: 'q',
  };

  it('is a comma list, normalised and deduplicated; empty when unset', () => {
    const r = loadExecutorConfig({
      ...base,
      EXECUTOR_DOCKER_REGISTRY_MIRROR_URL:
        'http://10.0.0.5:5000/, https://mirror.internal ,http://10.0.0.5:5000',
    });
    expect(r.ok && r.config.dockerRegistryMirrorUrls).toEqual([
      'http://10.0.0.5:5000',
      'https://mirror.internal',
    ]);
    const none = loadExecutorConfig(base);
    expect(none.ok && none.config.dockerRegistryMirrorUrls).toEqual([]);
  });

  it('rejects what dockerd rejects, naming the variable', () => {
    for (const bad of ['mirror:5000', 'ftp://mirror', 'http://mirror:5000/v2', 'http://m?x=1']) {
      const r = loadExecutorConfig({ ...base, EXECUTOR_DOCKER_REGISTRY_MIRROR_URL: bad });
      expect(r.ok).toBe(false);
      expect(!r.ok && r.problems.join('\n')).toMatch(/^EXECUTOR_DOCKER_REGISTRY_MIRROR_URL: /m);
    }
    expect(checkRegistryMirrorUrl('https://m.example:443/')).toEqual({ ok: true, url: 'https://m.example' });
  });
});

describe('mergeDaemonConfig', () => {
  it('appends new mirrors after existing ones, treating a trailing slash as the same mirror', () => {
    const out = mergeDaemonConfig(
      { 'registry-mirrors': ['http://a:5000/'], debug: true },
      { registryMirrors: ['http://a:5000', 'http://b:5000'] },
    );
    expect(out).toEqual({ 'registry-mirrors': ['http://a:5000/', 'http://b:5000'], debug: true });
  });

  it('registers runsc next to other runtimes and keeps an existing runsc entry as it is', () => {
    const other = { path: '/usr/bin/crun' };
    expect(
      mergeDaemonConfig({ runtimes: { crun: other } }, { registryMirrors: [], runscPath: '/usr/bin/runsc' }),
    ).toEqual({
      runtimes: {
        crun: other,
        runsc: { path: '/usr/bin/runsc', runtimeArgs: ['--platform=ptrace', '--network=host'] },
      },
    });
    const mine = { path: '/opt/runsc', runtimeArgs: ['--platform=kvm'] };
    expect(
      mergeDaemonConfig({ runtimes: { runsc: mine } }, { registryMirrors: [], runscPath: '/usr/bin/runsc' }),
    ).toEqual({
      runtimes: { runsc: mine },
    });
  });

  it('does not modify its input and adds nothing when nothing is wanted', () => {
    const input = { 'registry-mirrors': ['http://a'] };
    expect(mergeDaemonConfig(input, { registryMirrors: [] })).toEqual(input);
    mergeDaemonConfig(input, { registryMirrors: ['http://b'] });
    expect(input).toEqual({ 'registry-mirrors': ['http://a'] });
  });
});

describe('checkRegistryMirrors (validate)', () => {
  it('reports the daemon mirrors when none are configured', () => {
    expect(checkRegistryMirrors([], ['http://m:5000/'])).toEqual({
      ok: true,
      detail: 'the Docker daemon uses registry mirror(s) http://m:5000',
    });
    expect(checkRegistryMirrors([], []).detail).toMatch(/uses no registry mirror/);
  });

  it('fails when a configured mirror is not the daemon’s', () => {
    const r = checkRegistryMirrors(['http://m:5000', 'http://n:5000'], ['http://m:5000/']);
    expect(r.ok).toBe(false);
    expect(r.detail).toMatch(/^EXECUTOR_DOCKER_REGISTRY_MIRROR_URL names http:\/\/n:5000 but/);
    expect(checkRegistryMirrors(['http://m:5000'], ['http://m:5000/']).ok).toBe(true);
  });
});

describe('env file', () => {
  it('round-trips values with quotes, dollars and backslashes', () => {
    const tricky = 'p"a$s\\w`d x';
    const text = renderEnvFile(
      ['header'],
      [{ key: 'EXECUTOR_FRONTEND_PASSWORD', value: tricky }],
      ['EXECUTOR_QUEUE_NAME'],
    );
    expect(text).toContain('# EXECUTOR_QUEUE_NAME=\n');
    expect(parseEnvFile(text)).toEqual(new Map([['EXECUTOR_FRONTEND_PASSWORD', tricky]]));
    expect(parseEnvFile("export A='x y'\nB=plain\n# C=commented\n")).toEqual(
      new Map([
        ['A', 'x y'],
        ['B', 'plain'],
      ]),
    );
  });

  it('refuses values it cannot write on one line', () => {
    expect(() => renderEnvFile([], [{ key: 'A', value: 'x\ny' }], [])).toThrow(/newlines/);
  });
});
