import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findOrphanWorkspaces, removeOrphanWorkspaces } from '../../../src/executor/workspace/janitor.js';
import type { WorkspaceOwner } from '../../../src/executor/workspace/prepare.js';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'janitor-test-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A pid that certainly belonged to a process that has exited. */
function deadPid(): number {
  const r = spawnSync('sh', ['-c', 'echo $$']);
  return Number(r.stdout.toString().trim());
}

async function workspace(name: string, owner?: Partial<WorkspaceOwner>, ageMs = 0): Promise<string> {
  const dir = path.join(root, name);
  await mkdir(path.join(dir, 'sub'), { recursive: true });
  await writeFile(path.join(dir, 'sub', 'f'), 'x');
  if (owner) {
    const full: WorkspaceOwner = {
      executorName: 'self',
      hostname: os.hostname(),
      pid: process.pid,
      jobUid: '1',
      createdAt: new Date().toISOString(),
      ...owner,
    };
    await writeFile(`${dir}.owner.json`, JSON.stringify(full));
  }
  if (ageMs) {
    const t = new Date(Date.now() - ageMs);
    await utimes(dir, t, t);
  }
  return dir;
}

describe('workspace janitor', () => {
  it('finds exactly the orphans', async () => {
    const active = await workspace('workspace-1-aaa', { jobUid: '1' });
    const inactive = await workspace('workspace-2-bbb', { jobUid: '2' });
    const otherLive = await workspace('workspace-3-ccc', { executorName: 'other', jobUid: '3' });
    const otherDead = await workspace('workspace-4-ddd', {
      executorName: 'other',
      jobUid: '4',
      pid: deadPid(),
    });
    const otherHost = await workspace('workspace-5-eee', {
      executorName: 'self',
      hostname: `${os.hostname()}-elsewhere`,
      jobUid: '5',
    });
    const preserved = await workspace('workspace-6-fff', { jobUid: '6', preserved: true });
    const oldNoOwner = await workspace('workspace-7-ggg', undefined, 2 * 3600_000);
    const youngNoOwner = await workspace('workspace-8-hhh');
    const unrelated = await workspace('something-else', undefined, 2 * 3600_000);
    const queued = await workspace('workspace-9-iii', { jobUid: '9-batches' });

    const found = await findOrphanWorkspaces(root, new Set(['1', '9-batches']), 'self');
    expect(found.sort()).toEqual([inactive, otherDead, oldNoOwner].sort());

    const removed = await removeOrphanWorkspaces(root, new Set(['1', '9-batches']), 'self');
    expect(removed.sort()).toEqual(found.sort());
    for (const d of found) {
      expect(existsSync(d)).toBe(false);
      expect(existsSync(`${d}.owner.json`)).toBe(false);
    }
    for (const d of [active, otherLive, otherHost, preserved, youngNoOwner, unrelated, queued]) {
      expect(existsSync(d)).toBe(true);
    }
  });

  it('removes an owner file whose workspace was never made, or is gone, once its process is gone', async () => {
    const owner = (o: Partial<WorkspaceOwner>) =>
      JSON.stringify({
        executorName: 'other',
        hostname: os.hostname(),
        pid: deadPid(),
        jobUid: '1',
        createdAt: new Date().toISOString(),
        ...o,
      });
    const file = (name: string) => path.join(root, name);
    // Killed between writing the owner file and making the directory (or removing the two).
    await writeFile(file('workspace-1-aaa.owner.json'), owner({}));
    // Its process still running: between the two, or a workspace on its way.
    await writeFile(file('workspace-2-bbb.owner.json'), owner({ pid: process.pid }));
    await writeFile(file('workspace-3-ccc.owner.json'), owner({ hostname: `${os.hostname()}-elsewhere` }));
    await writeFile(file('workspace-4-ddd.owner.json'), '');
    // An owner file still being written: kept while young, removed when old.
    await writeFile(file('.owner-staging-young'), owner({}));
    await writeFile(file('.owner-staging-old'), owner({}));
    const old = new Date(Date.now() - 2 * 3600_000);
    await utimes(file('.owner-staging-old'), old, old);

    const removed = await removeOrphanWorkspaces(root, new Set(), 'self');
    expect(removed.sort()).toEqual([file('.owner-staging-old'), file('workspace-1-aaa.owner.json')]);
    for (const kept of [
      'workspace-2-bbb.owner.json',
      'workspace-3-ccc.owner.json',
      'workspace-4-ddd.owner.json',
      '.owner-staging-young',
    ])
      expect(existsSync(file(kept)), kept).toBe(true);
  });

  it('returns nothing for a missing root', async () => {
    expect(await findOrphanWorkspaces(path.join(root, 'nope'), new Set(), 'self')).toEqual([]);
  });
});
