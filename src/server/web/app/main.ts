/**
 * The dashboard: a hash-routed single page (#/jobs, #/jobs/:id, #/submit, #/executors, #/queues,
 * #/repositories). Each route
 * renders into <main> with an AbortSignal that ends its refresh timers and streams when the route
 * changes. The header shows who is signed in (whoami: name and scope). A 401 from any call signs
 * out: the token is forgotten and the sign-in form shown with the server's reason (revoked,
 * expired, wrong). The token is kept in sessionStorage.
 */
import { ApiError, getToken, loadWhoami, setToken, UnauthenticatedError } from './api.js';
import { append, clear, h } from './dom.js';
import { renderExecutorsPage } from './executors-page.js';
import { renderJobPage } from './job-page.js';
import { renderJobsPage } from './jobs-page.js';
import { renderQueuesPage } from './queues-page.js';
import { renderRepositoriesPage } from './repositories-page.js';
import type { PageContext } from './shared.js';
import { renderSubmitPage } from './submit-page.js';

type Render = (ctx: PageContext) => Promise<void>;
const ROUTES: Array<[RegExp, Render, string]> = [
  [/^\/jobs\/(\d+)$/, renderJobPage, 'jobs'],
  [/^\/jobs$/, renderJobsPage, 'jobs'],
  [/^\/submit$/, renderSubmitPage, 'submit'],
  [/^\/executors$/, renderExecutorsPage, 'executors'],
  [/^\/queues$/, renderQueuesPage, 'queues'],
  [/^\/repositories$/, renderRepositoriesPage, 'repositories'],
];

const main = document.getElementById('main') as HTMLElement;
const errorBox = document.getElementById('error') as HTMLElement;
const forget = document.getElementById('forget-token') as HTMLButtonElement;
const who = document.getElementById('whoami') as HTMLElement;
let current: AbortController | undefined;

function showError(e: unknown): void {
  if (e instanceof UnauthenticatedError) {
    const had = getToken() !== null;
    setToken(null);
    forget.hidden = true;
    who.hidden = true;
    showLogin(had ? `That token was refused: ${e.message} Enter an API token again.` : undefined);
    return;
  }
  errorBox.textContent =
    e instanceof ApiError ? `${e.message} (${e.code})` : `Something went wrong: ${String(e)}`;
  errorBox.hidden = false;
}

function showLogin(message?: string): void {
  current?.abort();
  clear(main);
  const input = h('input', {
    id: 'token',
    name: 'token',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
  });
  append(
    main,
    h('h1', { tabindex: '-1' }, 'Sign in'),
    h(
      'p',
      {},
      'Enter an API token of the server (EXECUTOR_SERVER_API_TOKEN, or one made with `executor tokens create`). It is kept in this browser tab only.',
    ),
    message ? h('p', { className: 'error', role: 'alert' }, message) : null,
    h(
      'form',
      {
        className: 'login',
        onsubmit: (e: Event) => {
          e.preventDefault();
          setToken(input.value.trim());
          route();
        },
      },
      h('label', { for: 'token' }, 'API token'),
      input,
      h('button', { type: 'submit' }, 'Sign in'),
    ),
  );
  input.focus();
}

async function route(): Promise<void> {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  errorBox.hidden = true;
  forget.hidden = !getToken();
  const hash = location.hash.replace(/^#/, '') || '/jobs';
  const [path, qs] = hash.split('?') as [string, string | undefined];
  const found = ROUTES.map(([re, fn, nav]) => [re.exec(path), fn, nav] as const).find(([m]) => m);
  for (const a of document.querySelectorAll<HTMLAnchorElement>('header nav a')) {
    if (a.dataset.nav === found?.[2]) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  clear(main);
  if (!found) {
    main.append(
      h('h1', { tabindex: '-1' }, 'Not found'),
      h('p', {}, h('a', { href: '#/jobs' }, 'Back to jobs')),
    );
    return;
  }
  const [m, render] = found;
  try {
    const me = await loadWhoami(controller.signal);
    who.textContent = `Signed in as ${me.name} (${me.scope})`;
    who.hidden = false;
  } catch (e) {
    if (!controller.signal.aborted) showError(e);
    return;
  }
  const ctx: PageContext = {
    main,
    params: m!.slice(1),
    query: new URLSearchParams(qs ?? ''),
    signal: controller.signal,
    report: showError,
    refresh: () => void route(),
  };
  try {
    await render(ctx);
    document.title = `${main.querySelector('h1')?.textContent ?? 'Dashboard'} · executor`;
    if (!location.hash.includes('attempt='))
      main.querySelector<HTMLElement>('h1')?.focus({ preventScroll: true });
  } catch (e) {
    if (!controller.signal.aborted) showError(e);
  }
}

forget.addEventListener('click', () => {
  setToken(null);
  route();
});
// The skip link must not change the hash: the hash is the route.
document.querySelector('a.skip')?.addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});
window.addEventListener('hashchange', () => void route());
void route();
