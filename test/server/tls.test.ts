/**
 * HTTPS on the queue server with a CA and certificates made here with openssl: the real `executor
 * server` process serves TLS, the CLI trusts the CA given with --ca-file or EXECUTOR_FRONTEND_CA_FILE
 * and says "certificate problem" without it or with the wrong one, the executor's client says the
 * same, and SIGHUP swaps the certificate for new connections while an open log follow carries on.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBaseClient } from '../../src/executor/client/base-client.js';
import { createControlTransport } from '../../src/executor/client/control-transport.js';
import { commandAvailable, requireOrSkip, waitFor } from '../helpers/env.js';
import { type CliProcess, spawnCli } from '../helpers/spawn-cli.js';
import { API_TOKEN, EXECUTOR_TOKEN } from './harness.js';

const haveOpenssl = commandAvailable('openssl');

/** A CA and a server certificate for 127.0.0.1 signed by it, in `dir`/`name`-*.pem. */
function makePki(dir: string, name: string) {
  const f = (s: string) => path.join(dir, `${name}-${s}`);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
    '-days',
    '2',
    '-subj',
    `/CN=${name} test CA`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  );
  ssl('req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  ssl(
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('server.pem'),
    '-days',
    '2',
    '-extfile',
    f('ext.cnf'),
  );
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}

if (requireOrSkip('openssl', haveOpenssl)) {
  describe('TLS (HTTPS server, CA trust, SIGHUP reload)', () => {
    let dir: string;
    let a: ReturnType<typeof makePki>;
    let b: ReturnType<typeof makePki>;
    let server: CliProcess;
    let url: string;
    const servedCert = () => path.join(dir, 'served.pem');
    const servedKey = () => path.join(dir, 'served.key');

    beforeAll(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'executor-tls-'));
      a = makePki(dir, 'a');
      b = makePki(dir, 'b');
      copyFileSync(a.cert, servedCert());
      copyFileSync(a.key, servedKey());
      server = spawnCli(
        [
          'server',
          '--listen',
          '127.0.0.1:0',
          '--data',
          path.join(dir, 'data'),
          '--tls-cert',
          servedCert(),
          '--tls-key',
          servedKey(),
        ],
        {
          EXECUTORS_ACCESS_TOKEN: EXECUTOR_TOKEN,
          EXECUTOR_SERVER_API_TOKEN: API_TOKEN,
          EXECUTOR_SERVER_HEARTBEAT_LANE: 'true',
        },
      );
      url = await waitFor(() => /queue server listening url=(\S+)/.exec(server.output())?.[1], {
        what: 'the listening line',
      });
    }, 60_000);
    afterAll(async () => {
      if (server && server.child.exitCode === null) {
        server.child.kill('SIGTERM');
        await server.exited;
      }
      rmSync(dir, { recursive: true, force: true });
    });

    /** One HTTPS request trusting only `ca`; resolves with status and body, or rejects. */
    const get = (p: string, ca: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = https.get(`${url}${p}`, { ca: readFileSync(ca), headers, agent: false }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
      });

    /** Submits a job over HTTPS trusting CA a; resolves with its id. */
    const submitJob = (spec: Record<string, unknown>) =>
      new Promise<number>((resolve, reject) => {
        const req = https.request(
          `${url}/api/v1/jobs`,
          {
            method: 'POST',
            ca: readFileSync(a.ca),
            headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
          },
          (res) => {
            let body = '';
            res.on('data', (d: Buffer) => {
              body += d;
            });
            res.on('end', () => resolve((JSON.parse(body) as { id: number }).id));
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify(spec));
      });

    const cli = (args: string[], env: Record<string, string> = {}) => {
      const p = spawnCli([...args, '--server', url, '--token', API_TOKEN], env);
      return p.exited.then((code) => ({ code, out: p.output() }));
    };

    it('serves HTTPS; the CLI trusts the CA from --ca-file or EXECUTOR_FRONTEND_CA_FILE', async () => {
      expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(await get('/readyz', a.ca)).toEqual({ status: 200, body: 'ready' });
      const flag = await cli(['jobs', '--ca-file', a.ca]);
      expect(flag.code, flag.out).toBe(0);
      const env = await cli(['jobs'], { EXECUTOR_FRONTEND_CA_FILE: a.ca });
      expect(env.code, env.out).toBe(0);
      const node = await cli(['jobs'], { NODE_EXTRA_CA_CERTS: a.ca });
      expect(node.code, node.out).toBe(0);
    }, 60_000);

    it('the heartbeat lane reads what TLS decrypted, and hands the connection over intact', async () => {
      const answered = async () =>
        Number(
          /^src_executor_server_lane_answers_total\{route="heartbeat"\} (\d+)$/m.exec(
            (await get('/metrics', a.ca)).body,
          )?.[1],
        );
      const before = await answered();
      const body = JSON.stringify({ executorName: 'tls-lane', jobIds: [] });
      const hb = [
        'POST /.executors/queue/default/heartbeat HTTP/1.1',
        'Host: 127.0.0.1',
        `Authorization: token-executor ${EXECUTOR_TOKEN}`,
        `Content-Length: ${body.length}`,
        '',
        body,
      ].join('\r\n');
      const auth = `GET /.executors/test/auth HTTP/1.1\r\nHost: x\r\nAuthorization: token-executor ${EXECUTOR_TOKEN}\r\n\r\n`;
      const { port } = new URL(url);
      const socket = tls.connect({ host: '127.0.0.1', port: Number(port), ca: readFileSync(a.ca) });
      let text = '';
      socket.on('data', (d: Buffer) => {
        text += d.toString('latin1');
      });
      socket.write(hb + hb + auth + hb);
      const statuses = await waitFor(() => {
        const all = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
        return all.length === 4 && text.endsWith('{"knownIds":[],"cancelIds":[]}\n') ? all : undefined;
      });
      socket.destroy();
      expect(statuses).toEqual([200, 200, 200, 200]);
      const none = '{"knownIds":[],"cancelIds":[]}\n';
      const bodies = text
        .split('\r\n\r\n')
        .slice(1)
        .map((part) => part.replace(/HTTP\/1\.1 [\s\S]*$/, ''));
      expect(bodies).toEqual([none, none, 'ok', none]);
      expect((await answered()) - before).toBe(2);
    });

    it('an executor trusting the CA runs a job, its heartbeats and dequeues in the lane', async () => {
      const lane = async (route: string) =>
        Number(
          new RegExp(`^src_executor_server_lane_answers_total\\{route="${route}"\\} (\\d+)$`, 'm').exec(
            (await get('/metrics', a.ca)).body,
          )?.[1],
        );
      const before = { heartbeats: await lane('heartbeat'), dequeues: await lane('dequeue') };
      const ws = mkdtempSync(path.join(dir, 'ws-'));
      const executor = spawnCli(['run'], {
        EXECUTOR_FRONTEND_URL: url,
        EXECUTOR_FRONTEND_PASSWORD: EXECUTOR_TOKEN,
        EXECUTOR_FRONTEND_CA_FILE: a.ca,
        EXECUTOR_QUEUE_NAME: 'tls-run',
        EXECUTOR_RUNTIME: 'shell',
        EXECUTOR_WORKSPACE_ROOT: ws,
        EXECUTOR_MIN_FREE_DISK: '0',
        EXECUTOR_NUM_TOTAL_JOBS: '1',
        EXECUTOR_NAME: 'tls-runner',
      });
      try {
        const id = await submitJob({ queue: 'tls-run', steps: [{ image: 'ignored', run: 'echo over-tls' }] });
        expect(await executor.exited, executor.output()).toBe(0);
        const job = JSON.parse(
          (await get(`/api/v1/jobs/${id}`, a.ca, { authorization: `Bearer ${API_TOKEN}` })).body,
        ) as { state: string };
        expect(job.state).toBe('completed');
      } finally {
        executor.child.kill('SIGKILL');
      }
      // Its ping and its dequeue, over its own connections (the job's logs and mark over others).
      expect((await lane('heartbeat')) - before.heartbeats).toBeGreaterThanOrEqual(1);
      expect((await lane('dequeue')) - before.dequeues).toBeGreaterThanOrEqual(1);
    }, 60_000);

    it('says it is a certificate problem without the CA, or with the wrong one', async () => {
      const none = await cli(['jobs']);
      expect(none.code).toBe(3);
      expect(none.out).toMatch(
        /TLS certificate problem talking to https:\/\/127\.0\.0\.1:\d+: UNABLE_TO_VERIFY_LEAF_SIGNATURE/,
      );
      expect(none.out).toMatch(/EXECUTOR_FRONTEND_CA_FILE or --ca-file/);
      const wrong = await cli(['jobs', '--ca-file', b.ca]);
      expect(wrong.code).toBe(3);
      expect(wrong.out).toMatch(/TLS certificate problem/);
      const missing = await cli(['jobs', '--ca-file', path.join(dir, 'nope.pem')]);
      expect(missing.code).toBe(2);
      expect(missing.out).toMatch(/--ca-file .*nope\.pem: no such file/);

      // The executor's client, over the global fetch and over its own connections for heartbeats
      // and dequeues: the same message, and no retrying a certificate that will not change.
      const control = createControlTransport();
      for (const fetch of [undefined, control.fetch]) {
        const client = createBaseClient({
          baseUrl: url,
          pathPrefix: '/.executors/queue',
          password: EXECUTOR_TOKEN,
          executorName: 'e1',
          retry: {
            maxAttempts: 20,
            delayBaseMs: 1000,
            delayMaxMs: 1000,
            retryAfterMaxMs: 1000,
            timeoutMs: 0,
          },
          fetch,
        });
        const started = Date.now();
        await expect(client.request({ method: 'POST', endpoint: 'q/heartbeat', body: {} })).rejects.toThrow(
          /TLS certificate problem .*UNABLE_TO_VERIFY_LEAF_SIGNATURE.*EXECUTOR_FRONTEND_CA_FILE/,
        );
        expect(Date.now() - started).toBeLessThan(1000);
      }
      control.close();
    }, 60_000);

    it('refuses to start with a key that does not match the certificate, and says which setting', async () => {
      const bad = spawnCli(
        [
          'server',
          '--listen',
          '127.0.0.1:0',
          '--data',
          path.join(dir, 'data-bad'),
          '--tls-cert',
          a.cert,
          '--tls-key',
          b.key,
        ],
        { EXECUTORS_ACCESS_TOKEN: EXECUTOR_TOKEN, EXECUTOR_SERVER_API_TOKEN: API_TOKEN },
      );
      expect(await bad.exited).toBe(2);
      expect(bad.output()).toMatch(/--tls-cert \/ --tls-key .*: .*key values mismatch/);
    }, 60_000);

    it('SIGHUP loads the new certificate for new connections; an open follow keeps going', async () => {
      const submit = await submitJob({ queue: 'tls', steps: [{ image: 'alpine', run: 'true' }] });
      // A log follow (server-sent events) opened over the old certificate.
      let events = '';
      let streamError: Error | undefined;
      const ended = new Promise<void>((resolve) => {
        https.get(
          `${url}/api/v1/jobs/${submit}/logs?follow=1`,
          {
            ca: readFileSync(a.ca),
            headers: { authorization: `Bearer ${API_TOKEN}`, accept: 'text/event-stream' },
          },
          (res) => {
            res.on('data', (d: Buffer) => {
              events += d;
            });
            res.on('end', () => resolve());
            res.on('error', (e) => {
              streamError = e;
              resolve();
            });
          },
        );
      });

      copyFileSync(b.cert, servedCert());
      copyFileSync(b.key, servedKey());
      server.child.kill('SIGHUP');
      await waitFor(() => server.output().includes('TLS certificate reloaded'), { what: 'the reload' });

      expect(await get('/readyz', b.ca)).toEqual({ status: 200, body: 'ready' });
      await expect(get('/readyz', a.ca)).rejects.toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });

      // Canceling the job ends the follow that began before the reload, normally.
      const cancel = await new Promise<number>((resolve, reject) => {
        const req = https.request(
          `${url}/api/v1/jobs/${submit}/cancel`,
          { method: 'POST', ca: readFileSync(b.ca), headers: { authorization: `Bearer ${API_TOKEN}` } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(cancel).toBe(200);
      await ended;
      expect(streamError).toBeUndefined();
      expect(events).toMatch(/event: end\ndata: .*"state":"canceled"/);

      // A broken pair is refused and the working certificate stays.
      writeFileSync(servedKey(), 'not a key');
      server.child.kill('SIGHUP');
      await waitFor(() => server.output().includes('TLS certificate reload failed'), { what: 'the refusal' });
      expect(await get('/readyz', b.ca)).toEqual({ status: 200, body: 'ready' });
      expect(server.child.exitCode).toBeNull();
    }, 60_000);
  });
} else {
  describe.skip('TLS', () => {
    it('needs openssl', () => {});
  });
}
