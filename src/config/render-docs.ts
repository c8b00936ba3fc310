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

/** The first sentence of a description, without Markdown backticks: the one-line summary. */
export function firstSentence(description: string): string {
  const m = /^(.+?(?<!\be\.g|\bi\.e)\.)(?=\s|$)/s.exec(description);
  return (m ? m[1]! : description).replace(/`/g, '');
}

/** Words of `text` in lines of at most `width` characters, each led by `indent`. */
function wrap(text: string, indent: string, width = 100): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines;
}

export interface EnvHelpGroup {
  title: string;
  /** Whether a variable belongs to this group (the first group that matches takes it). */
  has: (name: string) => boolean;
}

/**
 * For `--help`: per variable, `  NAME (default X)` or `  NAME (required)` and its first sentence
 * below it; variables are listed under the first group that takes them, the rest first.
 */
export function renderEnvHelp(catalogue: Catalogue, groups: readonly EnvHelpGroup[] = []): string {
  const entry = ([env, s]: [string, Setting]) => {
    const def = s.required
      ? ' (required)'
      : s.default !== undefined && s.default !== ''
        ? ` (default ${s.default})`
        : '';
    return [`  ${env}${def}`, ...wrap(firstSentence(s.description), '      ')].join('\n');
  };
  const all = Object.entries(catalogue);
  const groupOf = (name: string) => groups.findIndex((g) => g.has(name));
  const out = [
    all
      .filter(([n]) => groupOf(n) < 0)
      .map(entry)
      .join('\n'),
  ];
  groups.forEach((g, i) => {
    const members = all.filter(([n]) => groupOf(n) === i);
    if (members.length) out.push(`${g.title}\n${members.map(entry).join('\n')}`);
  });
  return out.join('\n\n');
}
