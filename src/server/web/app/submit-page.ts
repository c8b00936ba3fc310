/**
 * "Submit job": a job file pasted or edited in a textarea, checked as the user types with the
 * CLI's own code (protocol/job-file-text.ts: the same problems in the same words as
 * `executor submit`), sent to `POST /api/v1/jobs`, and on success the new job's page.
 *
 * Secrets: the page shows names only. Each secret gets a password field; a secret that names a
 * source (`fromEnv`, `fromFile`) needs its value typed there, since a browser cannot read either.
 * Values travel only in the submit request: when it is sent, the fields are emptied and the
 * textarea's inline values are replaced (job-form.ts, withoutSecretValues), so no value stays in
 * the page whatever the server answers, and none is written to storage.
 */
import { checkJobFileText } from '../../../protocol/job-file-text.js';
import type { SpecProblem } from '../../../protocol/job-spec.js';
import type { JobView, QueueListView } from '../../../protocol/user-api.js';
import { ApiError, apiGet, apiPost, loadWhoami, may } from './api.js';
import { clear, h } from './dom.js';
import {
  EXAMPLE_JOB,
  jobSpecOfForm,
  maskValues,
  peekJobText,
  polledQueues,
  queueHint,
  type SecretField,
  withoutSecretValues,
} from './job-form.js';
import type { PageContext } from './shared.js';

/** How long typing pauses before the file is checked again. */
const CHECK_DELAY_MS = 250;

function fieldHint(f: SecretField): string {
  switch (f.kind) {
    case 'inline':
      return 'Given inline in the file (sent, then taken out of it). Type here to send another value.';
    case 'env':
      return `The file reads it from the environment variable ${f.from}, which a browser cannot read: enter the value.`;
    case 'file':
      return `The file reads it from ${f.from}, which a browser cannot read: enter the value.`;
    default:
      return 'Enter the value.';
  }
}

/** The per-secret password fields, kept across re-renders so typed values survive edits of the file. */
function createSecretFields(onInput: () => void) {
  const inputs = new Map<string, HTMLInputElement>();
  const list = h('div', { className: 'secret-fields' });
  const box = h(
    'fieldset',
    { className: 'secrets', id: 'job-secrets', hidden: true },
    h('legend', {}, 'Secrets'),
    h(
      'p',
      { className: 'muted' },
      'Names only are shown. Values are sent with this submit only and then cleared from the page; the job page and the API show names only.',
    ),
    list,
  );
  const render = (fields: SecretField[]) => {
    clear(list);
    const names = new Set(fields.map((f) => f.name));
    for (const name of [...inputs.keys()]) if (!names.has(name)) inputs.delete(name);
    for (const f of fields) {
      let input = inputs.get(f.name);
      if (!input) {
        input = h('input', {
          type: 'password',
          id: `secret-${f.name}`,
          name: `secret-${f.name}`,
          autocomplete: 'off',
          'data-secret': f.name,
        });
        input.addEventListener('input', onInput);
        inputs.set(f.name, input);
      }
      const hintId = `secret-${f.name}-hint`;
      input.setAttribute('aria-describedby', hintId);
      list.append(
        h(
          'div',
          { className: 'secret-field' },
          h('label', { for: input.id }, h('code', {}, f.name)),
          input,
          h('span', { className: 'muted', id: hintId }, fieldHint(f)),
        ),
      );
    }
    box.hidden = fields.length === 0;
  };
  const values = (): Record<string, string> => {
    const out: Record<string, string> = {};
    for (const [name, input] of inputs) if (input.value) out[name] = input.value;
    return out;
  };
  const empty = () => {
    for (const input of inputs.values()) input.value = '';
  };
  const markInvalid = (problems: SpecProblem[]) => {
    for (const [name, input] of inputs) {
      if (problems.some((p) => p.path === `secrets.${name}`)) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  };
  return { box, render, values, empty, markInvalid };
}

/** The problem list: one item per field, `path: message`, as the CLI prints them. */
function renderProblems(list: HTMLElement, heading: HTMLElement, title: string, problems: SpecProblem[]) {
  clear(list);
  heading.textContent = title;
  heading.hidden = problems.length === 0;
  for (const p of problems) {
    list.append(h('li', { 'data-path': p.path }, h('code', {}, p.path), `: ${p.message}`));
  }
}

function renderNoScope(ctx: PageContext, name: string, scope: string): void {
  ctx.main.append(
    h('h1', { tabindex: '-1' }, 'Submit job'),
    h(
      'p',
      { className: 'notice', role: 'status' },
      `Signed in as ${name} with the ${scope} scope, which cannot submit jobs. Sign in with a token of scope submit or admin (an admin makes one with `,
      h('code', {}, 'executor tokens create --name NAME --scope submit'),
      ').',
    ),
  );
}

export async function renderSubmitPage(ctx: PageContext): Promise<void> {
  const me = await loadWhoami(ctx.signal);
  if (!may('submit')) {
    renderNoScope(ctx, me.name, me.scope);
    return;
  }
  const text = h('textarea', {
    id: 'job-text',
    name: 'job',
    rows: 18,
    spellcheck: 'false',
    autocomplete: 'off',
    'aria-describedby': 'job-format job-queue-hint',
  });
  text.value = EXAMPLE_JOB;
  const queueLine = h('p', { className: 'muted', id: 'job-queue-hint' });
  const problemsTitle = h('h2', { id: 'job-problems-title', tabindex: '-1', hidden: true });
  const problems = h('ul', {
    className: 'problems',
    id: 'job-problems',
    'aria-labelledby': 'job-problems-title',
  });
  const status = h('p', { className: 'status', role: 'status' });
  const submit = h('button', { type: 'submit' }, 'Submit job');
  let polled: string[] | undefined;
  let timer: number | undefined;

  /** The secret fields and the queue's hint, from the text as it is now. */
  const peekAgain = () => {
    const peek = peekJobText(text.value);
    secrets.render(peek.secrets);
    queueLine.textContent = queueHint(peek.queue, polled);
  };
  const check = () => {
    window.clearTimeout(timer);
    peekAgain();
    const file = checkJobFileText(text.value);
    const r = file.ok ? jobSpecOfForm(file.value, secrets.values()) : file;
    const found = r.ok ? [] : r.problems;
    renderProblems(problems, problemsTitle, 'Problems', found);
    secrets.markInvalid(found);
    text.setAttribute('aria-invalid', String(found.some((p) => !p.path.startsWith('secrets.'))));
    return r;
  };
  const later = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(check, CHECK_DELAY_MS);
  };
  const secrets = createSecretFields(later);
  text.addEventListener('input', later);
  ctx.signal.addEventListener('abort', () => window.clearTimeout(timer), { once: true });

  const send = async () => {
    const r = check();
    if (!r.ok) {
      status.textContent = 'Not submitted: fix the problems above.';
      problemsTitle.focus();
      return;
    }
    const sent = r.value.secrets ?? {};
    // From here on no value stays in the page, whatever the server answers.
    text.value = withoutSecretValues(text.value, sent);
    secrets.empty();
    peekAgain();
    submit.disabled = true;
    status.textContent = 'Submitting…';
    try {
      const job = await apiPost<JobView>('/api/v1/jobs', r.value);
      status.textContent = `Submitted job ${job.id}.`;
      location.hash = `#/jobs/${job.id}`;
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      const mask = (s: string) => maskValues(s, sent);
      const found = e.details.length
        ? e.details.map((d) => ({ path: d.path, message: mask(d.message) }))
        : [{ path: '(server)', message: `${mask(e.message)} (${e.code})` }];
      renderProblems(problems, problemsTitle, `The server refused the job: ${mask(e.message)}`, found);
      secrets.markInvalid(found);
      status.textContent = Object.keys(sent).length
        ? 'Not submitted. Secret values are not kept after a submit: enter them again.'
        : 'Not submitted.';
      problemsTitle.focus();
    } finally {
      submit.disabled = false;
    }
  };

  ctx.main.append(
    h('h1', { tabindex: '-1' }, 'Submit job'),
    h(
      'p',
      { id: 'job-format' },
      'A job file as ',
      h('code', {}, 'executor submit'),
      ' reads it: YAML or JSON with queue, steps and optionally repository, files, secrets, timeout, maxAttempts and priority (docs/job-file.md in the package). It is checked here by the same rules as the CLI, then by the server.',
    ),
    h(
      'form',
      {
        className: 'submit-job',
        'aria-label': 'Submit job',
        onsubmit: (e: Event) => {
          e.preventDefault();
          send().catch(ctx.report);
        },
      },
      h('label', { for: 'job-text' }, 'Job file (YAML or JSON)'),
      text,
      queueLine,
      secrets.box,
      problemsTitle,
      problems,
      h('div', { className: 'actions' }, submit),
      status,
    ),
  );
  check();
  try {
    // The queues' list names the polled ones: not the whole executor list, which at a fleet of
    // thousands is megabytes.
    polled = polledQueues((await apiGet<QueueListView>('/api/v1/queues', ctx.signal)).queues);
    peekAgain();
  } catch (e) {
    if (!ctx.signal.aborted) ctx.report(e);
  }
}
