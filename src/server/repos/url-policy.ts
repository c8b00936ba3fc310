/**
 * Which repository URLs the server fetches from, and the git configuration that holds git to the
 * same rule. Remote hosts only (`https://`, `http://`, `ssh://` and scp-like `user@host:path`);
 * `file://` and local paths read the server's own disk and are accepted only with
 * EXECUTOR_SERVER_ALLOW_LOCAL_REPOSITORIES; git's remote helpers (`ext::` runs a command,
 * `fd::`, ...) are always refused. Credentials never go in the URL: they come from the
 * registration's `credential` (credentials.ts), so a URL can be shown and logged as it is.
 */

export type UrlKind = 'http' | 'ssh' | 'local';

export type UrlCheck = { ok: true; kind: UrlKind } | { ok: false; message: string };

/** scp-like syntax as git reads it: `[user@]host:path`, a colon before any slash, no `::`. */
const SCP_LIKE = /^(?:[A-Za-z0-9._~-]+@)?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?:(?!\/\/)[^:\s][^\s]*$/;

export function checkRepositoryUrl(url: string, allowLocal: boolean): UrlCheck {
  const refuseLocal = (): UrlCheck =>
    allowLocal
      ? { ok: true, kind: 'local' }
      : {
          ok: false,
          message:
            'file:// URLs and local paths are refused; start the server with --allow-local-repositories to mirror from its own disk',
        };
  if (url.length === 0 || url.length > 2048) return { ok: false, message: 'must be 1 to 2048 characters' };
  if (url.startsWith('-')) return { ok: false, message: 'must not start with "-"' };
  if (/^[A-Za-z][A-Za-z0-9+.-]*::/.test(url)) {
    return {
      ok: false,
      message: 'git remote helpers (ext::, fd::, ...) are refused; use https://, http:// or ssh://',
    };
  }
  if (/[\s\x00-\x1f\x7f]/.test(url))
    return { ok: false, message: 'must not contain spaces or control characters' };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'file') return refuseLocal();
  if (scheme === 'https' || scheme === 'http' || scheme === 'ssh') {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return { ok: false, message: 'is not a valid URL' };
    }
    if (!parsed.hostname) return { ok: false, message: 'must name a host' };
    if (scheme !== 'ssh' && (parsed.username || parsed.password)) {
      return {
        ok: false,
        message: 'must not contain credentials; name where they come from in "credential" instead',
      };
    }
    if (scheme === 'ssh' && parsed.password) {
      return { ok: false, message: 'must not contain a password' };
    }
    return { ok: true, kind: scheme === 'ssh' ? 'ssh' : 'http' };
  }
  if (scheme !== undefined) {
    return { ok: false, message: `scheme "${scheme}://" is not supported; use https://, http:// or ssh://` };
  }
  if (url.startsWith('/') || url.startsWith('.') || url.startsWith('~')) return refuseLocal();
  if (SCP_LIKE.test(url)) return { ok: true, kind: 'ssh' };
  return refuseLocal();
}

/**
 * `protocol.allow` as git configuration pairs: every transport off but the ones a policy accepts,
 * so a redirect or a submodule-style URL cannot reach another transport either.
 */
export function protocolConfig(allowLocal: boolean): [string, string][] {
  const pairs: [string, string][] = [
    ['protocol.allow', 'never'],
    ['protocol.https.allow', 'always'],
    ['protocol.http.allow', 'always'],
    ['protocol.ssh.allow', 'always'],
  ];
  if (allowLocal) pairs.push(['protocol.file.allow', 'always']);
  return pairs;
}
