/**
 * The server process's file descriptors for GET /metrics: how many are open and the limit
 * (`ulimit -n`, which Node raises to the hard limit at start). Each connected executor holds one
 * or two connections (a parked long-poll, and a heartbeat or log write beside it), so a fleet
 * larger than about half the limit is refused connections: the event loop accepts and closes what
 * is beyond it (docs/operating.md, "How many executors per server"). Linux only (/proc); elsewhere,
 * and when no descriptor is free to read them, the two gauges are left out.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** The soft "Max open files" of /proc/self/limits, or undefined ("unlimited", unreadable). */
export function maxOpenFiles(limits: string): number | undefined {
  const m = /^Max open files\s+(\d+)\s/m.exec(limits);
  return m ? Number(m[1]) : undefined;
}

/** This process's limit of open file descriptors, or undefined where /proc cannot tell. */
export function fdLimit(): number | undefined {
  try {
    return maxOpenFiles(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return undefined;
  }
}

export function renderProcessFds(): string {
  let open: number;
  try {
    // The listing includes the descriptor that reads it.
    open = readdirSync('/proc/self/fd').length - 1;
  } catch {
    return '';
  }
  const max = fdLimit();
  const lines = [
    '# HELP src_executor_server_open_fds File descriptors the server process holds open.',
    '# TYPE src_executor_server_open_fds gauge',
    `src_executor_server_open_fds ${open}`,
  ];
  if (max !== undefined)
    lines.push(
      '# HELP src_executor_server_max_fds The server process limit of open file descriptors.',
      '# TYPE src_executor_server_max_fds gauge',
      `src_executor_server_max_fds ${max}`,
    );
  return `${lines.join('\n')}\n`;
}
