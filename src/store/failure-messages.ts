/** The failure messages the store's own sweeps write; both twins write the same text. */
import { formatDuration } from '../lib/duration.js';

/** A job failed by the resetter after too many stalled attempts (Sourcegraph's wording). */
export const RESET_FAILURE_MESSAGE = 'job processor died while handling this message too many times';

/** An attempt ended by its deadline, naming the job's own timeout. */
export function deadlineMessage(timeoutMs: number): string {
  return `job exceeded its timeout of ${formatDuration(timeoutMs)}`;
}
