/**
 * The vm runtime's janitor: VMs, disks and sockets left by a crashed executor. A VM belongs to a
 * workspace (its sockets and pid file are in `<workspace>/.vm/step-<i>/`), so the workspace janitor's
 * verdict decides: for each orphaned workspace, every QEMU whose pid file is there is killed (only
 * when the process's command line names that pid file, so a reused pid is never hit), then the
 * workspace, its disk and owner file are removed (workspace/janitor.ts).
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { findOrphanWorkspaces, removeOrphanWorkspaces } from '../../workspace/janitor.js';
import { RUN_DIR } from './workspace-disk.js';

export async function removeOrphanVms(
  workspaceRoot: string,
  activeJobUids: ReadonlySet<string>,
  executorName: string,
): Promise<string[]> {
  const killed: string[] = [];
  for (const dir of await findOrphanWorkspaces(workspaceRoot, activeJobUids, executorName)) {
    const runDir = path.join(dir, RUN_DIR);
    const steps = await readdir(runDir).catch(() => [] as string[]);
    for (const step of steps) {
      const pidFile = path.join(runDir, step, 'qemu.pid');
      const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
      if (!Number.isInteger(pid) || pid <= 0) continue;
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (!cmdline.split('\0').includes(pidFile)) continue;
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(`vm pid ${pid} (${path.join(runDir, step)})`);
      } catch {
        // gone meanwhile
      }
    }
  }
  const removed = await removeOrphanWorkspaces(workspaceRoot, activeJobUids, executorName);
  return [...killed, ...removed];
}
