/**
 * The server's second line against leaked secrets: executors redact output before sending it, and
 * the server masks any secret value that still arrives in a log write or failure message. The mask
 * has the same UTF-8 byte length as the secret, so byte offsets of appended output stay valid.
 *
 * Values shorter than MIN_MASKED_LENGTH are left alone: masking "a" or "1" would destroy the log
 * while protecting nothing.
 */
export const MIN_MASKED_LENGTH = 4;

export function maskSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  // Longest first, so a secret containing another is masked whole.
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    if (s.length < MIN_MASKED_LENGTH || !out.includes(s)) continue;
    out = out.split(s).join('*'.repeat(Buffer.byteLength(s, 'utf8')));
  }
  return out;
}

/** maskSecrets on UTF-8 bytes, in place: every secret's bytes become as many `*`. Returns `bytes`. */
export function maskSecretBytes(bytes: Buffer, secrets: readonly string[]): Buffer {
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    if (s.length < MIN_MASKED_LENGTH) continue;
    const secret = Buffer.from(s, 'utf8');
    for (let at = bytes.indexOf(secret); at !== -1; at = bytes.indexOf(secret, at + secret.length))
      bytes.fill(0x2a, at, at + secret.length);
  }
  return bytes;
}
