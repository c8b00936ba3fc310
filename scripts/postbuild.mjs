// Makes the CLI entry point executable after tsc has written it.
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
const text = readFileSync(entry, 'utf8');
if (!text.startsWith('#!')) writeFileSync(entry, `#!/usr/bin/env node\n${text}`);
chmodSync(entry, 0o755);
