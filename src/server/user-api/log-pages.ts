/**
 * Pages of a job's log for the user API. Every read is bounded by what one page shows (entries,
 * output bytes, command characters), never by what the job holds: a page costs the same on a job
 * of ten entries and on one of a hundred thousand, and no single store read of output returns more
 * than LOG_PAGE.bytes (the synchronous SQLite read of it takes a few milliseconds).
 */
import {
  COMMAND_VIEW_CHARS,
  JOB_ENTRIES_PAGE,
  LOG_PAGE,
  type LogEntryView,
  type LogsCursor,
} from '../../protocol/user-api.js';
import type { JobRecord, Store } from '../../store/types.js';
import { logEntryView, secretValues } from './job-view.js';

/** The job view's page of entries (no output) after `entriesAfter`. */
export async function entriesPage(
  store: Store,
  job: JobRecord,
  entriesAfter: number,
  limit: number = JOB_ENTRIES_PAGE.default,
): Promise<{ logEntries: LogEntryView[]; nextEntriesAfter: number | null }> {
  if (job.attempts === 0) return { logEntries: [], nextEntriesAfter: null };
  const rows = await store.getLogEntries(job.id, {
    attempt: job.attempts,
    afterEntryId: entriesAfter,
    limit: limit + 1,
    commandChars: COMMAND_VIEW_CHARS,
  });
  const page = rows.slice(0, limit);
  const secrets = secretValues(job);
  return {
    logEntries: page.map((e) => logEntryView(e, secrets)),
    nextEntriesAfter: rows.length > limit ? page[page.length - 1]!.entryId : null,
  };
}

/**
 * The logs route's page: entries after `cursor.entriesAfter`, the first from byte `cursor.outputFrom`,
 * with their output until `limit` entries or `maxBytes` of output; `next` continues where it stopped.
 */
export async function logsPage(
  store: Store,
  job: JobRecord,
  attempt: number,
  cursor: LogsCursor,
  limit: number = LOG_PAGE.default,
  maxBytes: number = LOG_PAGE.bytes,
): Promise<{ entries: LogEntryView[]; next: LogsCursor | null }> {
  if (attempt === 0) return { entries: [], next: null };
  const rows = await store.getLogEntries(job.id, {
    attempt,
    afterEntryId: cursor.entriesAfter,
    limit: limit + 1,
    commandChars: COMMAND_VIEW_CHARS,
  });
  const secrets = secretValues(job);
  const entries: LogEntryView[] = [];
  let budget = maxBytes;
  for (const [i, e] of rows.slice(0, limit).entries()) {
    const from = i === 0 ? Math.min(cursor.outputFrom, e.outLength) : 0;
    const want = e.outLength - from;
    if (want > 0 && budget <= 0) return { entries, next: { entriesAfter: e.entryId - 1, outputFrom: from } };
    const data =
      want > 0 ? await store.readLogOutput(job.id, attempt, e.entryId, from, Math.min(want, budget)) : '';
    const bytes = Buffer.byteLength(data, 'utf8');
    budget -= bytes;
    entries.push(logEntryView({ ...e, out: data }, secrets));
    if (from > 0) entries[entries.length - 1]!.outFrom = from;
    if (from + bytes < e.outLength) {
      return { entries, next: { entriesAfter: e.entryId - 1, outputFrom: from + bytes } };
    }
  }
  const last = entries[entries.length - 1];
  return {
    entries,
    next: rows.length > limit && last ? { entriesAfter: last.entryId, outputFrom: 0 } : null,
  };
}
