/**
 * The job page at a common laptop size (1400x900) in Debian's Chromium: a finished job's page opens
 * at its top with its text painted (not a blank page scrolled past its content), the tail is followed
 * only while the job runs, and the jobs list shows why a job failed. Skipped with one line when
 * /usr/bin/chromium is missing, except under CI=true.
 */
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { createLogger } from '../../src/lib/logger.js';
import { requireOrSkip, waitFor } from '../helpers/env.js';

const CHROMIUM = '/usr/bin/chromium';
const available = requireOrSkip(`chromium (${CHROMIUM})`, existsSync(CHROMIUM));
const SHOTS = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url));

/** Whether the element's centre is inside the viewport and the element itself is what is painted there. */
const PAINTED_AT_CENTRE = `(sel) => {
  const el = document.querySelector(sel);
  if (!el) return 'missing';
  const r = el.getBoundingClientRect();
  const x = r.left + Math.min(r.width / 2, 20), y = r.top + r.height / 2;
  if (y < 0 || y > window.innerHeight || x < 0 || x > window.innerWidth) return 'outside the viewport at y=' + Math.round(y);
  const hit = document.elementFromPoint(x, y);
  return hit && (hit === el || el.contains(hit)) ? 'ok' : 'covered by ' + (hit ? hit.outerHTML.slice(0, 80) : 'nothing');
}`;

describe.skipIf(!available)('job page at 1400x900', { timeout: 180_000 }, () => {
  let cluster: LocalCluster;
  let browser: Browser;
  let page: Page;
  let failedId = 0;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    cluster = await startLocalCluster({
      dataDir: mkdtempSync(join(tmpdir(), 'job-page-')),
      runtime: 'shell',
      logger: createLogger({ level: 'error' }),
    });
    // A long log (taller than the window many times over) and a failure.
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [
        { key: 'long', image: 'unused', run: 'for i in $(seq 1 600); do echo "line $i"; done; exit 3' },
      ],
    });
    failedId = job.id;
    await waitFor(async () => ['failed', 'errored'].includes((await cluster.api.getJob(job.id)).state), {
      timeoutMs: 60_000,
      what: 'the job to fail',
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
    page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await cluster?.stop({ force: true });
  });

  it("opens a finished job's page at its top, with its text painted", async () => {
    await page.goto('about:blank');
    const blank = (await page.screenshot()).length;
    await page.goto(`${cluster.url}/#/jobs/${failedId}`);
    await page.locator('pre.log').filter({ hasText: 'line 600' }).waitFor({ timeout: 30_000 });
    // Let any scroll the page would do happen: the log is complete once line 600 is in.
    await page.evaluate('new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))');
    expect(await page.evaluate('window.scrollY')).toBe(0);
    expect(await page.locator('#log-follow').isChecked()).toBe(false);
    expect(await page.evaluate(`(${PAINTED_AT_CENTRE})('main h1')`)).toBe('ok');
    await expect(page.locator('main h1').textContent()).resolves.toContain(`${failedId}`);
    const shot = await page.screenshot({ path: join(SHOTS, 'job-finished-1400x900.png') });
    // A blank page compresses to almost nothing; a page of text does not.
    expect(shot.length).toBeGreaterThan(blank * 4);
  });

  it('lists the failure reason in the jobs list', async () => {
    const failure = (await cluster.api.getJob(failedId)).failureMessage;
    expect(failure).toBeTruthy();
    await page.goto(`${cluster.url}/#/jobs`);
    const cell = page.locator(`tr[data-job-id="${failedId}"] td.failure`);
    await cell.waitFor();
    expect((await cell.textContent())?.trim()).toBe(failure);
    await expect(page.locator('table.jobs thead').textContent()).resolves.toContain('Failure');
  });

  it('follows the tail while the job runs', async () => {
    const job = await cluster.api.submit({
      queue: 'default',
      steps: [
        { key: 'slow', image: 'unused', run: 'for i in $(seq 1 400); do echo "tick $i"; sleep 0.05; done' },
      ],
    });
    await page.goto(`${cluster.url}/#/jobs/${job.id}`);
    await page.locator('pre.log').filter({ hasText: 'tick 150' }).waitFor({ timeout: 60_000 });
    expect(await page.locator('#log-follow').isChecked()).toBe(true);
    await waitFor(async () => Number(await page.evaluate('window.scrollY')) > 0, {
      what: 'the page to follow the tail',
    });
    await page.locator('.job-state .badge.state-completed').waitFor({ timeout: 60_000 });
    await waitFor(async () => !(await page.locator('#log-follow').isChecked()), {
      what: 'follow to stop at the end',
    });
  });

  it('queue charts: "started" stays visible under an equal "finished", and all share one time axis', async () => {
    // Two samples: the jobs above were started and finished in the first interval, none since.
    await cluster.app.loops.history.runOnce(Date.now());
    await cluster.app.loops.history.runOnce(Date.now() + 5_000);
    await page.goto(`${cluster.url}/#/queues`);
    const card = page.locator('section.card', { hasText: 'default' });
    const throughput = card.locator('figure.chart', { hasText: 'Throughput' });
    await throughput.locator('path.line.series-1').waitFor({ timeout: 30_000 });
    const style = (sel: string) =>
      page.evaluate(
        `(() => { const s = getComputedStyle(document.querySelector(${JSON.stringify(sel)})); return [parseFloat(s.strokeWidth), s.strokeDasharray]; })()`,
      ) as Promise<[number, string]>;
    const fig = 'section.card figure.chart:nth-of-type(2)';
    const [startedWidth, startedDash] = await style(`${fig} path.line.series-0`);
    const [finishedWidth, finishedDash] = await style(`${fig} path.line.series-1`);
    expect(startedDash).toBe('none');
    expect(finishedDash).not.toBe('none');
    expect(startedWidth).toBeGreaterThan(finishedWidth);
    const ticks = async (name: string) =>
      card.locator('figure.chart', { hasText: name }).locator('text.tick').allTextContents();
    const latency = await ticks('Dispatch latency');
    const rate = await ticks('Throughput');
    expect(latency.length).toBe(4);
    // [max, min, from, to]: the time labels are the same.
    expect(latency.slice(2)).toEqual(rate.slice(2));
    expect(latency.slice(2)).toEqual((await ticks('Depth')).slice(2));
  });
});
