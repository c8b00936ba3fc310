/**
 * The dashboard in a real browser (Debian's Chromium driven by playwright-core) against a real
 * server and executor (shell runtime) in this process. Screenshots of each page go to
 * test-artifacts/screenshots/. Skipped with one line when /usr/bin/chromium is missing, except
 * under CI=true.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { createLogger } from '../../src/lib/logger.js';
import { EXECUTOR_PAGE_SIZE } from '../../src/protocol/user-api.js';
import { requireOrSkip, waitFor } from '../helpers/env.js';
import { makeDemoRepo } from '../helpers/repos.js';
import { createRepo as createBareRepoIn } from '../server/harness.js';

const CHROMIUM = '/usr/bin/chromium';
const available = requireOrSkip(`chromium (${CHROMIUM})`, existsSync(CHROMIUM));
const SHOTS = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url));
const SECRET = 'hunter2-dashboard-secret-value';
const BULK = 10_000;

/** Expressions evaluated in the page (strings: the test's TypeScript program has no DOM types). */
const IN_PAGE = {
  unlabeled: `[...document.querySelectorAll('input, select, textarea')]
    .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label')).map((el) => el.outerHTML)`,
  unnamed: `[...document.querySelectorAll('button, a[href]')]
    .filter((el) => !el.textContent.trim()).map((el) => el.outerHTML)`,
  unlabeledSvgs: `[...document.querySelectorAll('svg')].filter((el) => !el.getAttribute('aria-label')).length`,
  enabledButtons: `[...document.querySelectorAll('button')].filter((b) => !b.disabled && !b.hidden)
    .map((b) => b.textContent.trim())`,
  focused: `document.activeElement.tagName + ':' + document.activeElement.textContent.trim().slice(0, 30)`,
  focusedId: 'document.activeElement.id',
  storedToken: `sessionStorage.getItem('executor.apiToken')`,
};

interface Traffic {
  url: string;
  requestHeaders: Record<string, string>;
  body: Promise<string>;
}

/** A bare repository with one commit on main at `bareDir` (which ends in `.git`). */
function createBareRepo(bareDir: string): void {
  createBareRepoIn(join(bareDir, '..'), basename(bareDir, '.git'));
}

function record(page: Page, into: Traffic[]): void {
  page.on('response', (r) => {
    if (!new URL(r.url()).pathname.startsWith('/api/')) return;
    into.push({ url: r.url(), requestHeaders: r.request().headers(), body: r.text().catch(() => '') });
  });
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** A raw request, so the Host and Origin headers can be set as a browser or an attacker would. */
function rawGet(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
  });
}

describe.skipIf(!available)('dashboard in Chromium', () => {
  let cluster: LocalCluster;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const traffic: Traffic[] = [];
  let liveJobId = 0;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    const data = mkdtempSync(join(tmpdir(), 'dashboard-'));
    makeDemoRepo(join(data, 'repos'));
    cluster = await startLocalCluster({
      dataDir: data,
      runtime: 'shell',
      logger: createLogger({ level: 'error' }),
      // The repositories page syncs a repository from a local path.
      serverEnv: { EXECUTOR_SERVER_ALLOW_LOCAL_REPOSITORIES: 'true' },
    });
    // A queue no executor polls, deep enough to need server-side pagination.
    const now = Date.now();
    for (let i = 0; i < BULK; i++) {
      await cluster.store.enqueue(
        {
          queue: 'bulk',
          spec: { queue: 'bulk', steps: [{ image: 'unused', run: `echo ${i}` }] },
          repositoryName: '',
          commit: '',
          priority: 0,
          maxAttempts: 1,
          timeoutMs: 60_000,
        },
        now - (BULK - i) * 1000,
      );
    }
    await cluster.app.loops.history.runOnce(Date.now());
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    record(page, traffic);
  });

  afterAll(async () => {
    await browser?.close();
    await cluster?.stop({ force: true });
  });

  it('shows a job log live, renders ANSI, and cancels the job with the button', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      repository: { name: 'demo/hello', commit: 'main' },
      steps: [
        {
          key: 'loop',
          image: 'unused',
          run: [
            'printf "\\033[31mred-text\\033[0m plain\\n"',
            'echo "token=$TOKEN"',
            'for i in $(seq 1 900); do echo "tick $i"; sleep 0.1; done',
          ],
        },
      ],
      secrets: { TOKEN: SECRET },
    });
    liveJobId = job.id;
    await page.goto(`${cluster.url}/#/jobs/${job.id}`);
    const log = page.locator('section.entry[data-key="step.docker.loop"] pre.log');
    await log.filter({ hasText: 'tick 3' }).waitFor({ timeout: 30_000 });
    // Lines keep arriving without a reload.
    const lastTick = (t: string) => Math.max(0, ...[...t.matchAll(/tick (\d+)/g)].map((m) => Number(m[1])));
    const seen = (await log.textContent()) ?? '';
    const later = await waitFor(
      async () => {
        const t = (await log.textContent()) ?? '';
        return lastTick(t) >= lastTick(seen) + 5 ? t : undefined;
      },
      { timeoutMs: 30_000, what: 'more log lines' },
    );
    expect(later.length).toBeGreaterThan(seen.length);
    await expect(log.locator('span.ansi-fg-1').first().textContent()).resolves.toBe('red-text');
    expect(later).toContain('token=${{ secrets.TOKEN }}');
    await shot(page, 'job-running');

    await page.getByRole('button', { name: 'Cancel job' }).click();
    await page.locator('.job-state .badge.state-canceled').waitFor({ timeout: 30_000 });
    expect((await cluster.api.getJob(job.id)).state).toBe('canceled');
    await page.getByRole('button', { name: 'Retry job' }).waitFor();
    expect(await page.getByRole('button', { name: 'Cancel job' }).isDisabled()).toBe(true);
    // The history names who did what: the CLI client's API token, then the tokenless dashboard.
    const history = page.locator('ol.history li');
    await history.filter({ hasText: 'canceled by' }).waitFor({ timeout: 30_000 });
    expect((await history.allTextContents()).map((t) => t.replace(/^.*\) /, ''))).toEqual([
      'submitted by bootstrap',
      'canceled by local',
    ]);
    // The spec is shown with the secret's name only.
    await page.locator('details.spec-box summary').click();
    await expect(page.locator('pre.spec').textContent()).resolves.toContain('"TOKEN"');
    await shot(page, 'job-canceled');
  });

  it('searches the log and downloads it as plain text', async () => {
    await page.goto(`${cluster.url}/#/jobs/${liveJobId}`);
    await page.locator('pre.log').filter({ hasText: 'tick 3' }).waitFor();
    await page.getByLabel('Search log').fill('tick 2');
    await page.locator('pre.log mark').first().waitFor();
    expect(await page.locator('pre.log mark').first().textContent()).toBe('tick 2');
    await expect(page.locator('.log-tools').textContent()).resolves.toMatch(/\d+ match/);
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download log' }).click(),
    ]);
    const text = readFileSync((await download.path())!, 'utf8');
    expect(text).toContain('### step.docker.loop');
    expect(text).toContain('red-text plain');
    expect(text).toContain('tick 1');
    expect(text).not.toContain('\u001b[');
    expect(text).not.toContain(SECRET);
  });

  // What shows the paging is the request's limit and the rendered row count; a wall-clock bound on
  // the page load only measured how busy the machine was.
  it('lists jobs one server-side page at a time on a queue of 10,000', async () => {
    const listRequest = page.waitForRequest(
      (r) => r.url().includes('/api/v1/jobs?') && r.url().includes('queue=bulk'),
    );
    await page.goto(`${cluster.url}/#/jobs?queue=bulk`);
    const url = new URL((await listRequest).url());
    await page.locator('.summary', { hasText: `of ${BULK}` }).waitFor();
    expect(url.searchParams.get('limit')).toBe('50');
    expect(await page.locator('table.jobs tbody tr').count()).toBe(50);
    const firstIds = await page
      .locator('table.jobs tbody tr')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job-id')));
    await shot(page, 'jobs');

    const nextRequest = page.waitForRequest(
      (r) => r.url().includes('/api/v1/jobs?') && r.url().includes('before='),
    );
    await page.getByRole('button', { name: 'Older →' }).click();
    const next = new URL((await nextRequest).url());
    expect(next.searchParams.get('limit')).toBe('50');
    await page.locator('.summary', { hasText: `Jobs 51–100 of ${BULK}` }).waitFor();
    const nextIds = await page
      .locator('table.jobs tbody tr')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-job-id')));
    expect(nextIds).toHaveLength(50);
    expect(Number(nextIds[0])).toBeLessThan(Number(firstIds[49]));
    await page.getByRole('button', { name: '← Newer' }).click();
    await page.locator('.summary', { hasText: `Jobs 1–50 of ${BULK}` }).waitFor();

    await page.getByLabel('State').selectOption('canceled');
    await page.locator('.summary', { hasText: 'No jobs match the filter.' }).waitFor();
  });

  it('lists the executor with its version, compatibility and pushed metrics', async () => {
    // Run first (alone, say), the cluster's executor may not have sent its first heartbeat yet.
    let ex: { name: string; executorVersion: string } | undefined;
    await waitFor(
      async () => {
        const executors = (await (
          await fetch(`${cluster.url}/api/v1/executors`, {
            headers: { authorization: `Bearer ${cluster.apiToken}` },
          })
        ).json()) as { executors: Array<{ name: string; executorVersion: string }> };
        ex = executors.executors[0];
        return ex !== undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: "the cluster's executor listed" },
    );
    if (ex === undefined) throw new Error('unreachable: waitFor returned without an executor');
    const { name } = ex;
    await waitFor(
      async () => {
        await cluster.app.loops.history.runOnce(Date.now());
        const h = (await (
          await fetch(`${cluster.url}/api/v1/executors/history`, {
            headers: { authorization: `Bearer ${cluster.apiToken}` },
          })
        ).json()) as { executors: Record<string, Record<string, unknown[]>> };
        return (h.executors[name]?.src_executor_processor_handlers?.length ?? 0) >= 2;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'two metric samples' },
    );
    await page.goto(`${cluster.url}/#/executors`);
    const row = page.locator(`tr[data-executor="${name}"]`);
    await row.waitFor();
    // One page: no pager.
    await expect(page.getByRole('navigation', { name: 'Pages' }).isHidden()).resolves.toBe(true);
    await expect(row.textContent()).resolves.toContain(`executor ${ex.executorVersion}`);
    await expect(row.locator('.badge').first().textContent()).resolves.toBe('Up to date');
    await expect(row.textContent()).resolves.toContain('Active');
    // Attached, not visible: an idle executor's line is flat (0 jobs), a path with no height.
    const line = page.locator('figure.chart', { hasText: 'Jobs running' }).locator('svg path.line');
    await line.waitFor({ state: 'attached' });
    await expect(line.getAttribute('d')).resolves.toMatch(/^M[\d.]+,[\d.]+( L[\d.]+,[\d.]+)+$/);
    await shot(page, 'executors');
  });

  it('pages through a fleet of executors by name, each page with its own charts', async () => {
    const auth = { authorization: `Bearer ${cluster.apiToken}` };
    const before = (await (await fetch(`${cluster.url}/api/v1/executors`, { headers: auth })).json()) as {
      executors: Array<{ name: string }>;
    };
    expect(before.executors).toHaveLength(1);
    const own = before.executors[0]!.name;
    // 100 more, named to sort before the cluster's own: it is alone on the second page.
    const extra = Array.from({ length: EXECUTOR_PAGE_SIZE }, (_, i) => `aaa-${String(i).padStart(3, '0')}`);
    expect(own > extra.at(-1)!).toBe(true);
    for (const name of extra) {
      const r = await fetch(`${cluster.url}/.executors/queue/default/heartbeat`, {
        method: 'POST',
        headers: { authorization: `token-executor ${cluster.executorsAccessToken}` },
        body: JSON.stringify({ executorName: name, jobIds: [] }),
      });
      expect(r.status).toBe(200);
    }
    await page.goto(`${cluster.url}/#/executors`);
    const summary = page.locator('#executors-summary');
    await summary.filter({ hasText: `Showing 1–${EXECUTOR_PAGE_SIZE} by name.` }).waitFor();
    await expect(summary.textContent()).resolves.toMatch(/^101 executors, 101 active\./);
    await expect(page.locator('tr[data-executor]').count()).resolves.toBe(EXECUTOR_PAGE_SIZE);
    await expect(page.locator('tr[data-executor]').first().getAttribute('data-executor')).resolves.toBe(
      'aaa-000',
    );
    await expect(page.locator(`tr[data-executor="${own}"]`).count()).resolves.toBe(0);
    await page.getByRole('button', { name: 'Next →' }).click();
    await page.locator(`tr[data-executor="${own}"]`).waitFor();
    await summary.filter({ hasText: 'Showing 101 by name.' }).waitFor();
    await expect(page.locator('tr[data-executor]').count()).resolves.toBe(1);
    // The charts are those of this page's executors: the cluster's own pushes metrics.
    await page.locator(`section[aria-label="Metrics of ${own}"]`).waitFor();
    await expect(page.locator('section.card').count()).resolves.toBe(1);
    await expect(page.getByRole('button', { name: 'Next →' }).isDisabled()).resolves.toBe(true);
    await shot(page, 'executors-page-2');
    await page.getByRole('button', { name: '← Previous' }).click();
    await page.locator('tr[data-executor="aaa-000"]').waitFor();
    await expect(page.getByRole('button', { name: '← Previous' }).isDisabled()).resolves.toBe(true);
  });

  it('shows queues with depth and charts over time', async () => {
    await cluster.app.loops.history.runOnce(Date.now());
    await page.goto(`${cluster.url}/#/queues`);
    const bulk = page.locator('tr[data-queue="bulk"]');
    await bulk.waitFor();
    await expect(bulk.locator('td').first().textContent()).resolves.toBe(String(BULK));
    // Nobody polls bulk: said in its row. The cluster's executor polls default (with the fleet of
    // the paging test, when that ran first).
    await expect(bulk.locator('td.unpolled').textContent()).resolves.toBe('no active executor');
    await expect(page.locator('tr[data-queue="default"] td').last().textContent()).resolves.toMatch(
      /^(1 executor|\d+ executors)$/,
    );
    const card = page.locator('section.card', { hasText: 'bulk' });
    await expect(card.locator('figure.chart').count()).resolves.toBe(3);
    await expect(card.locator('svg[role="img"]').first().getAttribute('aria-label')).resolves.toContain(
      `waiting ${BULK}`,
    );
    const def = page.locator('section.card', { hasText: 'default' });
    await expect(def.locator('figure.chart', { hasText: 'Throughput' }).count()).resolves.toBe(1);
    await shot(page, 'queues');
  });

  it('lists mirrored repositories with state, size and error, and syncs one now', async () => {
    const src = join(cluster.config.dataDir, 'upstream', 'lib.git');
    createBareRepo(src);
    const now = Date.now();
    await cluster.store.addRepository({ name: 'org/lib', url: src, credential: null, source: 'api' }, now);
    await cluster.store.addRepository(
      { name: 'org/broken', url: 'https://git.invalid/org/broken.git', credential: null, source: 'api' },
      now,
    );
    await cluster.store.recordRepositorySync('org/broken', {
      state: 'failed',
      lastSyncAt: now,
      lastSyncDurationMs: 40,
      lastError: 'the host cannot be reached',
    });
    await page.goto(`${cluster.url}/#/repositories`);
    const broken = page.locator('tr[data-repository="org/broken"]');
    await broken.waitFor();
    await expect(broken.textContent()).resolves.toContain('the host cannot be reached');
    await expect(broken.locator('.badge').textContent()).resolves.toBe('failed');
    const lib = page.locator('tr[data-repository="org/lib"]');
    await expect(lib.locator('.badge').textContent()).resolves.toBe('new');
    await lib.getByRole('button', { name: 'Sync org/lib now' }).click();
    await page.locator('[role="status"]', { hasText: 'org/lib is up to date.' }).waitFor();
    await lib.locator('.badge', { hasText: 'ready' }).waitFor();
    await expect(lib.textContent()).resolves.toMatch(/main/);
    await shot(page, 'repositories');
  });

  it('labels every input and reaches every button by keyboard', async () => {
    for (const hash of ['#/jobs', `#/jobs/${liveJobId}`, '#/executors', '#/queues']) {
      await page.goto(`${cluster.url}/${hash}`);
      await page.locator('main h1').waitFor();
      await page.waitForLoadState('networkidle').catch(() => {});
      const unlabeled = await page.evaluate<string[]>(IN_PAGE.unlabeled);
      expect(unlabeled, hash).toEqual([]);
      const unnamed = await page.evaluate<string[]>(IN_PAGE.unnamed);
      expect(unnamed, hash).toEqual([]);
      const charts = await page.evaluate<number>(IN_PAGE.unlabeledSvgs);
      expect(charts, hash).toBe(0);
    }
    // On the job page, Tab alone reaches the skip link first and then every enabled button.
    await page.goto(`${cluster.url}/#/jobs/${liveJobId}`);
    await page.locator('pre.log').first().waitFor();
    const want = await page.evaluate<string[]>(IN_PAGE.enabledButtons);
    expect(want).toEqual(expect.arrayContaining(['Retry job', 'Download log']));
    // A route change moves focus to the page heading. Shift+Tab from there leads back to the skip
    // link (the first stop); Tab from the content reaches every enabled button.
    const back: string[] = [];
    for (let i = 0; i < 10 && back[back.length - 1] !== 'A:Skip to content'; i++) {
      await page.keyboard.press('Shift+Tab');
      back.push(await page.evaluate<string>(IN_PAGE.focused));
    }
    expect(back[back.length - 1]).toBe('A:Skip to content');
    // The skip link moves focus to the content without changing the route (the hash is the route).
    const hash = new URL(page.url()).hash;
    await page.keyboard.press('Enter');
    expect(await page.evaluate<string>(IN_PAGE.focusedId)).toBe('main');
    expect(new URL(page.url()).hash).toBe(hash);
    const reached: string[] = [];
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      reached.push(await page.evaluate<string>(IN_PAGE.focused));
    }
    for (const name of want) expect(reached).toContain(`BUTTON:${name}`);
  });

  it('never shows a secret value in the page or the API traffic', async () => {
    await page.goto(`${cluster.url}/#/jobs/${liveJobId}`);
    await page.locator('pre.log').filter({ hasText: 'token=' }).waitFor();
    expect(await page.content()).not.toContain(SECRET);
    const bodies = await Promise.all(traffic.map((t) => t.body));
    expect(traffic.some((t) => t.url.includes(`/api/v1/jobs/${liveJobId}/logs?follow=1`))).toBe(true);
    expect(bodies.join('\n').length).toBeGreaterThan(1000);
    for (const [i, b] of bodies.entries()) expect(b, traffic[i]!.url).not.toContain(SECRET);
  });

  it('opens without a token only for loopback requests that carry the dashboard header and a loopback Host', async () => {
    const url = `${cluster.url}/api/v1/queues`;
    const host = new URL(cluster.url).host;
    expect(await rawGet(url, { 'x-executor-dashboard': '1' })).toBe(200);
    expect(await rawGet(url, {})).toBe(401);
    expect(await rawGet(url, { 'x-executor-dashboard': '1', host: 'evil.example' })).toBe(401);
    expect(await rawGet(url, { 'x-executor-dashboard': '1', host, origin: 'http://evil.example' })).toBe(401);
    expect(await rawGet(url, { 'x-executor-dashboard': '1', host, origin: `http://${host}` })).toBe(200);
  });

  it('treats a request that came through a proxy as remote: it needs a token', async () => {
    const url = `${cluster.url}/api/v1/queues`;
    const proxied: Record<string, string> = {
      forwarded: 'for=203.0.113.9',
      'x-forwarded-for': '203.0.113.9',
      'x-forwarded-host': 'executor.example.com',
      'x-forwarded-proto': 'https',
      'x-real-ip': '203.0.113.9',
      via: '1.1 nginx',
    };
    for (const [name, value] of Object.entries(proxied)) {
      expect(await rawGet(url, { 'x-executor-dashboard': '1', [name]: value }), name).toBe(401);
    }
  });
});

describe.skipIf(!available)('dashboard with the loopback rule off', () => {
  let cluster: LocalCluster;
  let browser: Browser;

  beforeAll(async () => {
    const data = mkdtempSync(join(tmpdir(), 'dashboard-token-'));
    cluster = await startLocalCluster({
      dataDir: data,
      runtime: 'shell',
      logger: createLogger({ level: 'error' }),
      serverEnv: { EXECUTOR_SERVER_DASHBOARD_LOOPBACK_OPEN: 'false', EXECUTOR_SERVER_MAX_LOG_BYTES: '1Ki' },
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--no-first-run',
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await cluster?.stop({ force: true });
  });

  it('asks for the token once per tab, and marks where the log cap cut a step', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [
        { key: 'loud', image: 'unused', run: 'for i in $(seq 1 200); do echo "line $i of a long log"; done' },
      ],
    });
    await cluster.api.followLogs(job.id, () => {});
    const page = await browser.newPage();
    await page.goto(`${cluster.url}/#/jobs/${job.id}`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('API token').fill('wrong-token-wrong-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'refused' }).waitFor();
    await shot(page, 'sign-in');
    await page.getByLabel('API token').fill(cluster.apiToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('.truncated-banner').waitFor();
    await expect(page.locator('.truncation-marker').first().textContent()).resolves.toContain(
      'output truncated',
    );
    await shot(page, 'job-truncated');
    // Kept in the tab's session: a reload needs no token.
    await page.reload();
    await page.locator('.truncated-banner').waitFor();
    expect(await page.evaluate(IN_PAGE.storedToken)).toBe(cluster.apiToken);
    await page.getByRole('button', { name: 'Forget token' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  });

  it('signed in with a read token: shows its name and scope, hides cancel and retry, signs out on a revoke', async () => {
    const job = await cluster.api.submit({
      queue: 'nobody-polls',
      steps: [{ image: 'unused', run: 'true' }],
    });
    const viewer = await cluster.api.createToken({ name: 'viewer', scope: 'read' });
    const page = await browser.newPage();
    await page.goto(`${cluster.url}/#/jobs/${job.id}`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('API token').fill(viewer.token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: `Job #${job.id}` }).waitFor();
    await expect(page.locator('#whoami').textContent()).resolves.toBe('Signed in as viewer (read)');
    // The job is queued, so an admin would see an enabled Cancel button; a reader sees neither.
    expect(await page.getByRole('button', { name: 'Cancel job' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Retry job' }).count()).toBe(0);
    expect(await page.evaluate(IN_PAGE.enabledButtons)).not.toContain('Cancel job');
    await shot(page, 'job-read-token');

    await cluster.api.revokeToken('viewer');
    await page.goto(`${cluster.url}/#/queues`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByRole('alert').filter({ hasText: 'revoked' }).waitFor();
    expect(await page.evaluate(IN_PAGE.storedToken)).toBeNull();
    expect(await page.locator('#whoami').isHidden()).toBe(true);

    // The bootstrap token (admin) sees the buttons on the same job.
    await page.getByLabel('API token').fill(cluster.apiToken);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.goto(`${cluster.url}/#/jobs/${job.id}`);
    // The header is redrawn once the new token's whoami answers: wait for it, then check it whole.
    await page.locator('#whoami', { hasText: 'bootstrap' }).waitFor();
    await expect(page.locator('#whoami').textContent()).resolves.toBe('Signed in as bootstrap (admin)');
    await page.getByRole('button', { name: 'Cancel job' }).waitFor();
    await page.close();
  });
});
