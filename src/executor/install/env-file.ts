/**
 * The executor's environment file (`EnvironmentFile=` of the systemd unit): `KEY=value` lines,
 * comments and blank lines. Values are written in double quotes with `\`, `"` and `$` escaped,
 * which systemd reads back verbatim.
 */

export interface EnvFileEntry {
  key: string;
  value: string;
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Reads `KEY=value` lines (optionally `export KEY=...`, single or double quoted). */
export function parseEnvFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!;
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) {
      v = v.slice(1, -1).replace(/\\(["\\$`])/g, '$1');
    } else if (v.length >= 2 && v.startsWith("'") && v.endsWith("'")) {
      v = v.slice(1, -1);
    }
    out.set(m[1]!, v);
  }
  return out;
}

export function quoteEnvValue(v: string): string {
  return `"${v.replace(/["\\$`]/g, (c) => `\\${c}`)}"`;
}

/**
 * Renders the file: a header, then the entries in order; `missing` keys become commented
 * placeholders (`# KEY=`) so the operator sees what still has to be filled in.
 */
export function renderEnvFile(header: string[], entries: EnvFileEntry[], missing: string[]): string {
  const lines = header.map((h) => `# ${h}`);
  lines.push('');
  for (const { key, value } of entries) {
    if (!KEY.test(key)) throw new Error(`invalid environment variable name ${JSON.stringify(key)}`);
    if (value.includes('\n')) throw new Error(`${key}: values with newlines cannot be written`);
    lines.push(`${key}=${quoteEnvValue(value)}`);
  }
  for (const key of missing) lines.push(`# ${key}=`);
  return `${lines.join('\n')}\n`;
}
