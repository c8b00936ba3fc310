/**
 * The dashboard's "Submit job" form in Debian's Chromium (playwright-core, 1400x900) against a real
 * server and executor (shell runtime) in this process, the loopback rule off so every tab signs in
 * with a token: a valid file lands on the new job's page, an invalid one shows the CLI's messages,
 * the server's refusal is shown per field, secret values never stay in the page, and a read token
 * is told it cannot submit. Skipped with one line when /usr/bin/chromium is missing, except under
 * CI=true.
 */
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobFileError, parseJobText } from '../../src/cli/job-file.js';
import { type LocalCluster, startLocalCluster } from '../../src/cli/local-cluster.js';
import { createLogger } from '../../src/lib/logger.js';
import { requireOrSkip, waitFor } from '../helpers/env.js';

const CHROMIUM = '/usr/bin/chromium';
const available = requireOrSkip(`chromium (${CHROMIUM})`, existsSync(CHROMIUM));
const SHOTS = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url));
const INLINE = 'inline-secret-value-7f3a9c';
const TYPED = 'typed-secret-value-41d2e8';

/** Every value the page holds: its markup, form fields' values and both storages (strings: no DOM types here). */
const PAGE_STATE = `[document.documentElement.outerHTML,
  ...[...document.querySelectorAll('input, textarea')].map((el) => el.value),
  JSON.stringify({ ...sessionStorage }), JSON.stringify({ ...localStorage })].join('\\n')`;
const UNLABELED = `[...document.querySelectorAll('input, select, textarea')]
  .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label')).map((el) => el.outerHTML)`;

/** The problems `executor submit` prints for `text`, as `path: message`. */
function cliMessages(text: string): string[] {
  try {
    parseJobText(text, 'job.yaml');
  } catch (e) {
    if (e instanceof JobFileError) return e.problems.map((p) => `${p.path}: ${p.message}`);
    throw e;
  }
  return [];
}

describe.skipIf(!available)('dashboard: Submit job', { timeout: 180_000 }, () => {
  let cluster: LocalCluster;
  let browser: Browser;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    cluster = await startLocalCluster({
      dataDir: mkdtempSync(join(tmpdir(), 'submit-form-')),
      runtime: 'shell',
      logger: createLogger({ level: 'error' }),
      serverEnv: { EXECUTOR_SERVER_DASHBOARD_LOOPBACK_OPEN: 'false' },
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

  /** A new tab on the form, signed in with `token`; `posts` collects the bodies of job submits. */
  async function openForm(token: string, posts: string[] = []): Promise<Page> {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    page.on('request', (r) => {
      if (r.method() === 'POST' && new URL(r.url()).pathname === '/api/v1/jobs')
        posts.push(r.postData() ?? '');
    });
    await page.goto(`${cluster.url}/#/submit`);
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Submit job' }).waitFor();
    return page;
  }

  /** Waits for the job page the form went to; returns the job id. */
  async function landedJobId(page: Page): Promise<number> {
    await page.waitForURL(/#\/jobs\/\d+$/);
    const id = Number(/#\/jobs\/(\d+)$/.exec(page.url())![1]);
    await page.getByRole('heading', { name: `Job #${id}` }).waitFor();
    return id;
  }

  it('submits a valid file and lands on the new job page', async () => {
    const posts: string[] = [];
    const page = await openForm(cluster.apiToken, posts);
    await expect(page.getByLabel('Job file (YAML or JSON)').inputValue()).resolves.toContain(
      'queue: default',
    );
    await page
      .locator('#job-queue-hint', { hasText: 'Queue default is polled by an active executor' })
      .waitFor();
    await page
      .getByLabel('Job file (YAML or JSON)')
      .fill(
        'queue: default\nsteps:\n  - key: greet\n    image: unused\n    run: echo "from-the-form $((6 * 7))"\n',
      );
    await page.screenshot({ path: join(SHOTS, 'submit-job.png') });
    await page.getByRole('button', { name: 'Submit job' }).click();
    const id = await landedJobId(page);
    expect(posts).toHaveLength(1);
    await page.locator('pre.log').filter({ hasText: 'from-the-form 42' }).waitFor({ timeout: 60_000 });
    const job = await cluster.api.getJob(id);
    expect(job.queue).toBe('default');
    await page.context().close();
  });

  it('shows the same messages as `executor submit` for an invalid file, and sends nothing', async () => {
    const posts: string[] = [];
    const page = await openForm(cluster.apiToken, posts);
    const text = 'queue: default\nsteps:\n  - key: no-run\n    image: alpine:3.20\nstep:\n  - run: echo hi\n';
    const expected = cliMessages(text);
    expect(expected).toEqual(['steps[0].run: required', 'step: unknown field; did you mean `steps`?']);
    await page.getByLabel('Job file (YAML or JSON)').fill(text);
    // Checked as the user types, and again on submit.
    await page.locator('#job-problems li').first().waitFor();
    await page.getByRole('button', { name: 'Submit job' }).click();
    await page.getByRole('status').filter({ hasText: 'Not submitted: fix the problems above.' }).waitFor();
    expect(await page.locator('#job-problems li').allTextContents()).toEqual(expected);
    expect(
      await page.locator('#job-problems li').evaluateAll((l) => l.map((e) => e.getAttribute('data-path'))),
    ).toEqual(['steps[0].run', 'step']);
    // A YAML syntax error is reported by line, as the CLI does.
    await page.getByLabel('Job file (YAML or JSON)').fill('queue: [default\n');
    await page.getByRole('button', { name: 'Submit job' }).click();
    await page.getByRole('status').filter({ hasText: 'Not submitted' }).waitFor();
    expect(await page.locator('#job-problems li').allTextContents()).toEqual(
      cliMessages('queue: [default\n'),
    );
    await page.screenshot({ path: join(SHOTS, 'submit-job-problems.png') });
    expect(new URL(page.url()).hash).toBe('#/submit');
    expect(posts).toEqual([]);
    await page.context().close();
  });

  it('never keeps a secret value in the page: not after a refused submit, not after a good one', async () => {
    const posts: string[] = [];
    const page = await openForm(cluster.apiToken, posts);
    const file = (extra: string) =>
      `queue: default\n${extra}secrets:\n  INLINE_ONE: ${INLINE}\n  TYPED_ONE: { fromEnv: TYPED_ONE }\nsteps:\n  - key: show\n    image: unused\n    run: echo "i=$INLINE_ONE t=$TYPED_ONE"\n`;
    const editor = page.getByLabel('Job file (YAML or JSON)');
    await editor.fill(file('repository: { name: org/none, commit: main }\n'));
    // Names only, a field each; the one from the environment must be typed.
    await page.locator('#job-secrets label').filter({ hasText: 'TYPED_ONE' }).waitFor();
    expect(await page.locator('#job-secrets label').allTextContents()).toEqual(['INLINE_ONE', 'TYPED_ONE']);
    expect(await page.evaluate<string[]>(UNLABELED)).toEqual([]);
    await page.getByRole('button', { name: 'Submit job' }).click();
    await expect(
      page.locator('#job-problems li[data-path="secrets.TYPED_ONE"]').textContent(),
    ).resolves.toContain('a browser cannot read the environment variable TYPED_ONE');
    expect(posts).toEqual([]);

    // The server refuses the repository: shown at its field; both values are gone from the page.
    await page.getByLabel('TYPED_ONE').fill(TYPED);
    await page.getByRole('button', { name: 'Submit job' }).click();
    await page.locator('#job-problems li[data-path="repository.name"]').waitFor();
    await page.getByRole('status').filter({ hasText: 'enter them again' }).waitFor();
    expect(posts).toHaveLength(1);
    expect(posts[0]).toContain(INLINE);
    expect(posts[0]).toContain(TYPED);
    const refused = await page.evaluate<string>(PAGE_STATE);
    expect(refused).not.toContain(INLINE);
    expect(refused).not.toContain(TYPED);
    await expect(editor.inputValue()).resolves.toContain('INLINE_ONE: { fromEnv: INLINE_ONE }');
    await page.screenshot({ path: join(SHOTS, 'submit-job-refused.png') });

    // Fixed and submitted again with both values typed: the job runs with them, redacted in its log.
    await editor.fill(file(''));
    await page.getByLabel('INLINE_ONE').fill(INLINE);
    await page.getByLabel('TYPED_ONE').fill(TYPED);
    await page.getByRole('button', { name: 'Submit job' }).click();
    const id = await landedJobId(page);
    await page
      .locator('pre.log')
      .filter({ hasText: 'i=${{ secrets.INLINE_ONE }} t=${{ secrets.TYPED_ONE }}' })
      .waitFor({ timeout: 60_000 });
    const stored = await cluster.store.getJob(id);
    expect(stored?.spec.secrets).toEqual({ INLINE_ONE: INLINE, TYPED_ONE: TYPED });
    expect(posts).toHaveLength(2);
    const landed = await page.evaluate<string>(PAGE_STATE);
    expect(landed).not.toContain(INLINE);
    expect(landed).not.toContain(TYPED);
    // Back to the form: a fresh one, nothing of the last submit.
    await page.goBack();
    await page.getByRole('heading', { name: 'Submit job' }).waitFor();
    const back = await page.evaluate<string>(PAGE_STATE);
    expect(back).not.toContain(INLINE);
    expect(back).not.toContain(TYPED);
    await page.context().close();
  });

  it('tells a read token that it cannot submit, and shows no form', async () => {
    const viewer = await cluster.api.createToken({ name: 'form-viewer', scope: 'read' });
    const page = await openForm(viewer.token);
    await page.getByText('with the read scope, which cannot submit jobs').waitFor();
    expect(await page.locator('textarea').count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Submit job' }).count()).toBe(0);
    await waitFor(
      async () => (await page.locator('#whoami').textContent()) === 'Signed in as form-viewer (read)',
      {
        timeoutMs: 10_000,
        what: 'the header to name the read token',
      },
    );
    await page.context().close();
  });
});
