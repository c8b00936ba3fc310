/** Pieces the pages share: the page context, live refresh, badges. */
import { h } from './dom.js';

export interface PageContext {
  main: HTMLElement;
  params: string[];
  query: URLSearchParams;
  /** Aborts when the user leaves the page. */
  signal: AbortSignal;
  /** Reports an error in the page's status area. */
  report(e: unknown): void;
  /** Renders the current route again. */
  refresh(): void;
}

/** Runs fn every intervalMs until signal aborts; never overlapping; errors go to onError. */
export function every(
  signal: AbortSignal,
  intervalMs: number,
  fn: () => Promise<void>,
  onError?: (e: unknown) => void,
): void {
  let timer: number | undefined;
  const tick = async () => {
    if (signal.aborted) return;
    try {
      await fn();
    } catch (e) {
      if (!signal.aborted) onError?.(e);
    }
    if (!signal.aborted) timer = window.setTimeout(tick, intervalMs);
  };
  timer = window.setTimeout(tick, intervalMs);
  signal.addEventListener('abort', () => window.clearTimeout(timer), { once: true });
}

export function stateBadge(state: string): HTMLElement {
  return h('span', { className: `badge state-${state}` }, state);
}
