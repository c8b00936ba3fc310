/**
 * The docs tables of docs/configuration.md and the `--help` summaries, rendered from the
 * declarations. The tables are checked against the file by test/executor/config.test.ts and
 * test/server/config.test.ts; `npx tsx scripts/config-docs.ts` rewrites them after a declaration
 * changes.
 */
import type { Catalogue, Setting } from './declare.js';

const esc = (s: string) => s.replace(/\|/g, '\\|');

const defaultCell = (s: Setting) =>
  s.required ? '**required**' : s.default !== undefined && s.default !== '' ? `\`${s.default}\`` : '';

/** `| variable | default | meaning |`, one row per variable (aliases named next to it). */
export function renderEnvTable(catalogue: Catalogue): string {
  const rows = Object.entries(catalogue).map(([env, s]) => {
    const alias = s.alias ? ` (alias: \`${s.alias}\`)` : '';
    return `| \`${env}\`${alias} | ${defaultCell(s)} | ${esc(s.description)} |`;
  });
  return ['| variable | default | meaning |', '|---|---|---|', ...rows].join('\n');
}

/** `| flag | variable | default | meaning |`, one row per setting that has a flag. */
export function renderFlagTable(catalogue: Catalogue): string {
  const rows = Object.entries(catalogue)
    .filter(([, s]) => s.flag)
    .map(([env, s]) => `| \`--${s.flag}\` | \`${env}\` | ${defaultCell(s)} | ${esc(s.description)} |`);
  return ['| flag | variable | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

/** One line per variable, `  NAME (required)` or `  NAME (default X)`, for `--help`. */
export function renderEnvHelp(catalogue: Catalogue): string {
  return Object.entries(catalogue)
    .map(([env, s]) => {
      const def = s.required ? ' (required)' : s.default !== undefined ? ` (default ${s.default})` : '';
      return `  ${env}${def}`;
    })
    .join('\n');
}
