/**
 * Structure of the images `npm run images` builds (as Sourcegraph's image_test.yaml checks theirs):
 * entry point and `--version`, git and CA certificates present, no Node.js or npm, the server's user
 * is not root, its data volume and port, health checks, labels, and no shell history, package lists
 * or package caches in any layer. The server image is also started and must report healthy.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/env.js';
import {
  BUILD_TIMEOUT_MS,
  buildImages,
  canBuildImages,
  docker,
  type Images,
  repo,
  runIn,
  version,
} from './images.js';

const ok = canBuildImages();
/** A bound on each image (measured: base 167 MB + binary 120 MB = 287 MB, executor +4 MB iptables). */
const MAX_IMAGE_BYTES = 330_000_000;

interface ImageConfig {
  Entrypoint: string[] | null;
  Cmd: string[] | null;
  User: string;
  Env: string[];
  Volumes: Record<string, unknown> | null;
  ExposedPorts: Record<string, unknown> | null;
  Labels: Record<string, string> | null;
  Healthcheck?: { Test: string[] };
}

function inspect(image: string): { Config: ImageConfig; Size: number } {
  return (JSON.parse(docker(['image', 'inspect', image])) as { Config: ImageConfig; Size: number }[])[0]!;
}

/** Paths no layer may hold: shell history, apt lists and caches, Node.js and npm, leftovers in /tmp. */
const FORBIDDEN: { what: string; re: RegExp }[] = [
  { what: 'shell history', re: /(^|\/)\.(bash|sh|ash|zsh|python)_history$|(^|\/)\.(lesshst|viminfo)$/ },
  { what: 'apt package lists', re: /^var\/lib\/apt\/lists\/(?!lock$|partial\/?$|auxfiles\/?$).+/ },
  { what: 'apt package cache', re: /^var\/cache\/apt\/(archives\/.+\.deb|[^/]+\.bin)$/ },
  { what: 'Node.js or npm', re: /(^|\/)(node_modules|\.npm)\/|^usr\/(local\/)?bin\/(node|npm|npx)$/ },
  { what: 'files in /tmp', re: /^(var\/)?tmp\/.+/ },
];

/** Every path of every layer of the saved images, per layer. */
function layerPaths(images: string[]): string[][] {
  const dir = mkdtempSync(path.join(tmpdir(), 'image-layers-'));
  try {
    const saved = path.join(dir, 'images.tar');
    docker(['save', '-o', saved, ...images], { timeoutMs: 300_000 });
    const manifest = JSON.parse(execFileSync('tar', ['-xOf', saved, 'manifest.json']).toString()) as {
      Layers: string[];
    }[];
    const layers = [...new Set(manifest.flatMap((m) => m.Layers))];
    return layers.map((layer) =>
      execFileSync('sh', ['-c', 'tar -xOf "$1" "$2" | tar -tf -', 'sh', saved, layer], {
        maxBuffer: 64 * 1024 * 1024,
      })
        .toString()
        .split('\n')
        .filter(Boolean)
        .map((p) => p.replace(/^\.\//, '')),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(!ok)('container images (npm run images)', () => {
  let images: Images;

  beforeAll(() => {
    images = buildImages();
  }, BUILD_TIMEOUT_MS);

  it('both run the binary as their entry point and print the package version', () => {
    for (const image of [images.server, images.executor]) {
      expect(inspect(image).Config.Entrypoint).toEqual(['/usr/local/bin/executor']);
      const r = runIn(image, ['--version']);
      expect(r).toEqual({ code: 0, out: `${version}\n` });
    }
    expect(inspect(images.server).Config.Cmd).toEqual([
      'server',
      '--listen',
      '0.0.0.0:3080',
      '--data',
      '/var/lib/executor-server',
    ]);
    expect(inspect(images.executor).Config.Cmd).toEqual(['run']);
  });

  it('carry git and CA certificates, the executor iptables, and no Node.js or npm', () => {
    for (const image of [images.server, images.executor]) {
      const git = runIn(image, ['--entrypoint=git', '--version']);
      expect(git.code).toBe(0);
      expect(git.out).toMatch(/^git version 2\./);
      expect(runIn(image, ['--entrypoint=test', '-s', '/etc/ssl/certs/ca-certificates.crt']).code).toBe(0);
      const node = runIn(image, ['--entrypoint=bash', '-c', 'command -v node nodejs npm npx']);
      expect(node).toEqual({ code: 1, out: '' });
    }
    expect(runIn(images.executor, ['--entrypoint=iptables-restore', '--version']).out).toMatch(/nf_tables/);
  });

  it('the server runs as uid 10001, not root, with its data in a volume it owns, on port 3080', () => {
    const config = inspect(images.server).Config;
    expect(config.User).toBe('10001:10001');
    expect(runIn(images.server, ['--entrypoint=id', '-u'])).toEqual({ code: 0, out: '10001\n' });
    expect(Object.keys(config.Volumes ?? {})).toEqual(['/var/lib/executor-server']);
    expect(Object.keys(config.ExposedPorts ?? {})).toEqual(['3080/tcp']);
    const owner = runIn(images.server, ['--entrypoint=stat', '-c', '%u:%g %a', '/var/lib/executor-server']);
    expect(owner.out).toMatch(/^10001:10001 7[0-7]{2}\n$/);
    // The executor is root in its container (see executor.Dockerfile: the socket's group differs).
    expect(['', 'root', '0']).toContain(inspect(images.executor).Config.User);
  });

  it('both have a health check and labels naming version, revision and source', () => {
    const revision = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repo }).toString().trim();
    for (const image of [images.server, images.executor]) {
      const config = inspect(image).Config;
      const labels = config.Labels ?? {};
      expect(labels['org.opencontainers.image.version']).toBe(version);
      expect(labels['org.opencontainers.image.revision']).toMatch(new RegExp(`^${revision}(-dirty)?$`));
      expect(labels['org.opencontainers.image.source']).toBeTruthy();
      expect(config.Healthcheck?.Test[0]).toBe('CMD');
    }
    expect(inspect(images.server).Config.Healthcheck?.Test.join(' ')).toContain('/readyz');
    expect(inspect(images.executor).Config.Healthcheck?.Test.join(' ')).toContain('/metrics');
  });

  it(`are each smaller than ${MAX_IMAGE_BYTES / 1e6} MB`, () => {
    for (const image of [images.server, images.executor]) {
      const size = inspect(image).Size;
      console.info(`${image}: ${(size / 1e6).toFixed(0)} MB`);
      expect(size).toBeLessThan(MAX_IMAGE_BYTES);
    }
  });

  it('leave no shell history, package lists, package caches, Node.js or /tmp files in any layer', () => {
    const layers = layerPaths([images.server, images.executor]);
    expect(layers.length).toBeGreaterThanOrEqual(3);
    // The binary is in a layer (the scan reads real layer contents).
    expect(layers.flat()).toContain('usr/local/bin/executor');
    // Whiteouts (`.wh.<name>`) record deletions of a lower layer's files; they hold no content.
    const found = layers
      .flat()
      .filter((p) => !path.basename(p).startsWith('.wh.'))
      .flatMap((p) => FORBIDDEN.filter((f) => f.re.test(p)).map((f) => `${f.what}: ${p}`));
    expect(found).toEqual([]);
  });

  it('the server starts as its user, writes its volume and reports healthy', async () => {
    const name = `executor-structure-test-${process.pid}`;
    docker([
      'run',
      '-d',
      '--name',
      name,
      '-e',
      `EXECUTORS_ACCESS_TOKEN=${'a'.repeat(40)}`,
      '-e',
      `EXECUTOR_SERVER_API_TOKEN=${'b'.repeat(40)}`,
      '--health-interval=1s',
      images.server,
    ]);
    try {
      const status = await waitFor(
        () => {
          const s = docker(['inspect', '-f', '{{.State.Health.Status}} {{.State.Status}}', name]).trim();
          return s.startsWith('healthy') || s.endsWith('exited') ? s : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 500, what: `${name} to become healthy` },
      );
      expect(status).toBe('healthy running');
      const files = docker(['exec', name, 'ls', '/var/lib/executor-server']);
      expect(files).toMatch(/\.(db|sqlite)/);
    } finally {
      docker(['rm', '-f', '-v', name]);
    }
  }, 120_000);
});
