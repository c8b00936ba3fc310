/** Parsers of the EXECUTOR_DOCKER_* variables, whose syntax is Docker's own. */
import { z } from 'zod';
import { json, type Parser } from '../parsers.js';

/**
 * Checks one registry mirror URL as dockerd does (`registry.ValidateMirror`): http or https, a host,
 * no path, query or fragment. Returns the URL normalised to `scheme://host[:port]`, or a problem.
 */
export function checkRegistryMirrorUrl(
  s: string,
): { ok: true; url: string } | { ok: false; problem: string } {
  let u: URL;
  try {
    u = new URL(s.trim());
  } catch {
    return { ok: false, problem: `${JSON.stringify(s)} is not a URL (want http(s)://host[:port])` };
  }
  if (!/^https?:$/.test(u.protocol) || u.host === '') {
    return { ok: false, problem: `${JSON.stringify(s)} must be an http(s) URL with a host` };
  }
  if ((u.pathname !== '' && u.pathname !== '/') || u.search !== '' || u.hash !== '') {
    return {
      ok: false,
      problem: `${JSON.stringify(s)} must have no path, query or fragment (dockerd rejects them)`,
    };
  }
  return { ok: true, url: `${u.protocol}//${u.host}` };
}

/** Comma-separated mirror URLs, normalised, duplicates dropped. */
export const registryMirrorUrls = (): Parser<string[]> =>
  z.string().transform((s, ctx) => {
    const urls: string[] = [];
    for (const part of s.split(',')) {
      if (part.trim() === '') continue;
      const r = checkRegistryMirrorUrl(part);
      if (!r.ok) {
        ctx.addIssue({ code: 'custom', message: r.problem });
        return z.NEVER;
      }
      if (!urls.includes(r.url)) urls.push(r.url);
    }
    return urls;
  });

export interface DockerAuthConfig {
  auths?: Record<string, { auth: string }>;
}

export const dockerAuthConfig = (): Parser<DockerAuthConfig> =>
  json(
    z.object({ auths: z.record(z.object({ auth: z.string() }).passthrough()).optional() }).passthrough(),
    'must look like {"auths":{"<registry>":{"auth":"<base64>"}}}',
  ) as Parser<DockerAuthConfig>;

const TARGET_KEYS = ['target', 'dst', 'destination'];

/** `;`-separated `docker run --mount` specs, each with exactly one target. */
export const mounts = (): Parser<string[]> =>
  z.string().transform((s, ctx) => {
    const list = s
      .split(';')
      .map((m) => m.trim())
      .filter(Boolean);
    for (const m of list) {
      const targets = m
        .split(',')
        .map((f) => f.split('=')[0]!.trim())
        .filter((f) => TARGET_KEYS.includes(f));
      if (targets.length === 0) {
        ctx.addIssue({ code: 'custom', message: `mount ${JSON.stringify(m)} has no target` });
      } else if (targets.length > 1) {
        ctx.addIssue({
          code: 'custom',
          message: `mount ${JSON.stringify(m)}: incorrect separator (use ";")`,
        });
      }
    }
    return list;
  });
