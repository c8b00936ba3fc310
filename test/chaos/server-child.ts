/**
 * A queue server process for the SIGKILL scenario: configured from the environment as `executor
 * server` is, its store wrapped by the auditing decorator (CHAOS_AUDIT_FILE, appended synchronously,
 * so what it recorded survives the kill), listening on 127.0.0.1 at a port of its choice. Prints
 * `chaos-server listening <port>` once it serves. It is meant to be killed with SIGKILL; SIGTERM
 * closes it gracefully.
 */
import { mkdirSync } from 'node:fs';
import { loadServerConfig } from '../../src/config/server.js';
import { systemClock } from '../../src/lib/clock.js';
import { createLogger } from '../../src/lib/logger.js';
import { createServer, listen } from '../../src/server/index.js';
import { openStore } from '../../src/store/index.js';
import { createAuditStore } from './audit-store.js';

const config = loadServerConfig({ env: process.env, flags: { listen: '127.0.0.1:0' } });
mkdirSync(config.reposDir, { recursive: true });
const store = createAuditStore(openStore(config.databaseUrl), process.env.CHAOS_AUDIT_FILE!);
await store.migrate();
const app = createServer({ store, config, clock: systemClock, logger: createLogger({ level: 'warn' }) });
const server = await listen(app, '127.0.0.1', 0);
app.startBackground();
process.stdout.write(`chaos-server listening ${server.port}\n`);
process.once('SIGTERM', () => {
  void server
    .close()
    .then(() => store.close())
    .then(() => process.exit(0));
});
