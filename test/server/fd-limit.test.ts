/**
 * A server at its file-descriptor limit (EMFILE: more connections than `ulimit -n` allows, as a
 * fleet larger than the limit makes) keeps running: connections beyond the limit are closed by the
 * event loop, the ones it holds are still answered, and once descriptors are free again it takes
 * new connections. The memory guard, whose sample of the process's memory needs a descriptor, once
 * ended the process from the request listener there.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxOpenFiles } from '../../src/server/process-metrics.js';
import { requireOrSkip, waitFor } from '../helpers/env.js';
import { type CliProcess, spawnServer } from '../helpers/spawn-cli.js';
import { API_TOKEN, EXECUTOR_TOKEN } from './harness.js';

const hasPrlimit = (() => {
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** One request over `agent` (a kept-alive connection), answered with its status and body. */
function request(
  agent: http.Agent,
  url: string,
  route: string,
  body: unknown,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(
      `${url}${route}`,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `token-executor ${EXECUTOR_TOKEN}`,
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(data)),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

describe('the descriptor limit, read from /proc/self/limits', () => {
  it('is the soft limit of "Max open files", and unknown when unlimited or absent', () => {
    const limits = [
      'Limit                     Soft Limit           Hard Limit           Units     ',
      'Max processes             unlimited            unlimited            processes ',
      'Max open files            20000                65536                files     ',
    ].join('\n');
    expect(maxOpenFiles(limits)).toBe(20000);
    expect(maxOpenFiles(limits.replace('20000', 'unlimited'))).toBeUndefined();
    expect(maxOpenFiles('')).toBeUndefined();
  });
});

if (requireOrSkip('prlimit (util-linux) to lower a running server’s descriptor limit', hasPrlimit)) {
  describe('a server at its file-descriptor limit (a server process)', () => {
    let dir: string;
    let cli: CliProcess;
    let url: string;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const extra: net.Socket[] = [];

    beforeAll(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'executor-fd-limit-'));
      let line: string;
      ({ cli, url, line } = await spawnServer(dir, {
        EXECUTORS_ACCESS_TOKEN: EXECUTOR_TOKEN,
        EXECUTOR_SERVER_API_TOKEN: API_TOKEN,
      }));
      // The start names the limit an operator sizes the fleet by.
      expect(Number(/maxFds=(\d+)/.exec(line)?.[1])).toBe(
        maxOpenFiles(readFileSync(`/proc/${cli.child.pid}/limits`, 'utf8')),
      );
    }, 90_000);

    afterAll(async () => {
      for (const s of extra) s.destroy();
      agent.destroy();
      if (cli && cli.child.exitCode === null) {
        cli.child.kill('SIGKILL');
        await cli.exited;
      }
      rmSync(dir, { recursive: true, force: true });
    });

    it('keeps answering the connections it holds, and takes new ones once descriptors are free', async () => {
      const pid = cli.child.pid!;
      const dequeue = { executorName: 'fd-limit', version: 'dev', numCanHandle: 1 };
      const route = '/.executors/queue/default/dequeue';
      // The kept connection, opened before the limit; the memory guard takes its first sample.
      expect((await request(agent, url, route, dequeue)).status).toBe(204);

      // A limit a few descriptors above what the server holds now.
      const open = readdirSync(`/proc/${pid}/fd`).length;
      const limit = open + 4;
      execFileSync('prlimit', [`--pid=${pid}`, `--nofile=${limit}:${limit}`]);

      // More connections than that: the ones beyond it are accepted and closed at once.
      let cut = 0;
      for (let i = 0; i < 12; i++) {
        const s = net.connect(Number(new URL(url).port), '127.0.0.1');
        s.on('error', () => {});
        s.on('close', () => {
          cut++;
        });
        extra.push(s);
      }
      await waitFor(() => cut > 0, { timeoutMs: 20_000, what: 'a connection beyond the limit to be closed' });
      expect(readdirSync(`/proc/${pid}/fd`).length).toBeGreaterThanOrEqual(limit - 1);

      // The kept connection is still answered, through the memory guard's next sample, which
      // cannot open /proc/self/stat now: the server says so and goes on.
      await waitFor(
        async () => {
          if (cli.child.exitCode !== null) throw new Error(`the server exited: ${cli.output().slice(-800)}`);
          expect((await request(agent, url, route, dequeue)).status).toBe(204);
          return cli.output().includes('cannot read the server process memory');
        },
        { timeoutMs: 20_000, intervalMs: 100, what: 'the memory guard to sample at the limit' },
      );
      expect(cli.output()).toMatch(/EMFILE/);
      const heartbeat = await request(agent, url, '/.executors/queue/default/heartbeat', {
        executorName: 'fd-limit',
        jobIds: [],
      });
      expect(heartbeat.status).toBe(200);

      // Descriptors freed: a new connection is taken and answered.
      for (const s of extra) s.destroy();
      const health = await waitFor(
        async () => {
          try {
            return (await fetch(`${url}/healthz`)).status;
          } catch {
            return undefined;
          }
        },
        { timeoutMs: 20_000, what: 'a new connection to be answered' },
      );
      expect(health).toBe(200);
      expect(cli.child.exitCode).toBeNull();

      // /metrics gives the limit the test set and what is open under it.
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toContain(`\nsrc_executor_server_max_fds ${limit}\n`);
      const openNow = Number(/^src_executor_server_open_fds (\d+)$/m.exec(metrics)?.[1]);
      expect(openNow).toBeGreaterThan(0);
      expect(openNow).toBeLessThan(limit);
    }, 60_000);
  });
} else {
  describe.skip('a server at its file-descriptor limit (a server process)', () => {
    it('needs prlimit (util-linux) to lower a running server’s descriptor limit', () => {});
  });
}
