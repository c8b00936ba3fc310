// Makes the CLI entry point executable after tsc has written it.
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
const text = readFileSync(entry, 'utf8');
if (!text.startsWith('#!')) writeFileSync(entry, `#!/usr/bin/env node\n${text}`);
chmodSync(entry, 0o755);

// The dashboard: static files next to the compiled routes, and the client bundled into one module.
const { cpSync, mkdirSync } = await import('node:fs');
const { fileURLToPath } = await import('node:url');
const webStatic = new URL('../dist/server/web/static/', import.meta.url);
mkdirSync(webStatic, { recursive: true });
cpSync(new URL('../src/server/web/static/', import.meta.url), webStatic, { recursive: true });
const { bundleClient } = await import('../dist/server/web/bundle.js');
const clientEntry = fileURLToPath(new URL('../src/server/web/app/main.ts', import.meta.url));
writeFileSync(new URL('app.js', webStatic), await bundleClient(clientEntry));

// The VM runtime's guest init, next to the compiled runtime: scripts/vm-assets.sh (shipped with
// the package for `executor install --vm`) packs it into the initramfs.
const guest = new URL('../dist/executor/runtimes/vm/guest/', import.meta.url);
mkdirSync(guest, { recursive: true });
cpSync(new URL('../src/executor/runtimes/vm/guest/init.sh', import.meta.url), new URL('init.sh', guest));
