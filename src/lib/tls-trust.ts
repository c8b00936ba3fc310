/**
 * Trusting the queue server's certificate: recognising a certificate failure among transport
 * errors, so that executors and the CLI say "certificate problem" and how to fix it instead of
 * "fetch failed".
 */

/** OpenSSL / Node codes of a certificate the client does not accept. */
export const CERTIFICATE_ERROR_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The certificate error code in an error or its causes (fetch wraps it), else undefined. */
export function certificateErrorCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && CERTIFICATE_ERROR_CODES.has(code)) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/** What to tell the user about a certificate failure reaching `url`. */
export function certificateProblemMessage(url: string, code: string): string {
  const origin = (() => {
    try {
      return new URL(url).origin;
    } catch {
      return url;
    }
  })();
  return (
    `TLS certificate problem talking to ${origin}: ${code}. The server's certificate is not trusted ` +
    '(or names another host, or has expired): give the CA that signed it with EXECUTOR_FRONTEND_CA_FILE ' +
    'or --ca-file (NODE_EXTRA_CA_CERTS works too)'
  );
}

export class CertificateError extends Error {
  constructor(
    readonly url: string,
    readonly code: string,
    cause: unknown,
  ) {
    super(certificateProblemMessage(url, code), { cause });
    this.name = 'CertificateError';
  }
}
