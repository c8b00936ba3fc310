/**
 * Repositories: the server's mirrored repositories with state, last sync (when, how long), size on
 * disk, last error and a "Sync now" button (shown to submit and admin scopes, as the route needs).
 */
import type { RepositoryListView, RepositoryView } from '../../../protocol/user-api.js';
import { apiGet, apiPost, may } from './api.js';
import { clear, h } from './dom.js';
import { formatAge, formatBytes, formatDuration } from './format.js';
import { every, type PageContext, stateBadge } from './shared.js';

/** Path of a repository: its name's slashes are part of it. */
const repoPath = (name: string) => name.split('/').map(encodeURIComponent).join('/');

export async function renderRepositoriesPage(ctx: PageContext): Promise<void> {
  const tbody = h('tbody');
  const status = h('p', { className: 'muted', role: 'status' });
  ctx.main.append(
    h('h1', { tabindex: '-1' }, 'Repositories'),
    h(
      'p',
      { className: 'muted' },
      'Repositories the server mirrors from their Git host; add them with `executor repos add NAME URL`. Repositories placed by hand in the repositories directory are not listed.',
    ),
    status,
    h(
      'div',
      { className: 'table-wrap' },
      h(
        'table',
        { className: 'repositories' },
        h('caption', { className: 'visually-hidden' }, 'Mirrored repositories'),
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            ...['Repository', 'State', 'Last sync', 'Took', 'Size', 'Default branch', 'Last error', ''].map(
              (c) => h('th', { scope: 'col' }, c),
            ),
          ),
        ),
        tbody,
      ),
    ),
  );
  const syncButton = (r: RepositoryView) => {
    if (!may('submit')) return null;
    const button = h(
      'button',
      {
        type: 'button',
        'aria-label': `Sync ${r.name} now`,
        onclick: async () => {
          button.disabled = true;
          status.textContent = `Fetching ${r.name}…`;
          try {
            const after = await apiPost<RepositoryView>(`/api/v1/repositories/${repoPath(r.name)}/sync`);
            status.textContent = `${after.name} is up to date.`;
          } catch (e) {
            status.textContent = '';
            ctx.report(e);
          } finally {
            button.disabled = false;
            await load().catch(ctx.report);
          }
        },
      },
      'Sync now',
    );
    return button;
  };
  const load = async () => {
    const { repositories } = await apiGet<RepositoryListView>('/api/v1/repositories', ctx.signal);
    clear(tbody);
    if (repositories.length === 0)
      tbody.append(h('tr', {}, h('td', { colspan: 8 }, 'No repositories registered.')));
    for (const r of repositories) {
      tbody.append(
        h(
          'tr',
          { 'data-repository': r.name },
          h('th', { scope: 'row' }, r.name, h('div', { className: 'muted' }, r.url)),
          h('td', {}, stateBadge(r.state)),
          h('td', {}, r.lastSyncAt === null ? 'never' : formatAge(r.lastSyncAt)),
          h('td', {}, r.lastSyncDurationMs === null ? '—' : formatDuration(r.lastSyncDurationMs)),
          h('td', {}, r.sizeBytes === null ? '—' : formatBytes(r.sizeBytes)),
          h('td', {}, r.defaultBranch ?? '—'),
          h('td', { className: r.lastError ? 'repo-error' : '' }, r.lastError ?? ''),
          h('td', {}, syncButton(r)),
        ),
      );
    }
  };
  await load();
  every(ctx.signal, 10_000, load, ctx.report);
}
