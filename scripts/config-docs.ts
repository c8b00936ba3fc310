/**
 * Rewrites the generated tables of docs/configuration.md from the configuration declarations:
 * each block between a `<!-- generated from src/config/... -->` line and `<!-- end generated -->`.
 * Run `npx tsx scripts/config-docs.ts` after changing a declaration; the config tests fail until then.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { renderExecutorEnvDocs } from '../src/config/executor.js';
import { renderServerSettingsDocs } from '../src/config/server.js';

const file = new URL('../docs/configuration.md', import.meta.url);
const tables: Record<string, () => string> = {
  EXECUTOR_ENV: renderExecutorEnvDocs,
  SERVER_ENV: renderServerSettingsDocs,
};

const doc = readFileSync(file, 'utf8').replace(
  /^(<!-- generated from \S+ \((\w+)\);.*-->\n)[\s\S]*?^(<!-- end generated -->)$/gm,
  (_, start: string, name: string, end: string) => {
    const render = tables[name];
    if (!render) throw new Error(`docs/configuration.md: no table is rendered from ${name}`);
    return `${start}${render()}\n${end}`;
  },
);
writeFileSync(file, doc);
