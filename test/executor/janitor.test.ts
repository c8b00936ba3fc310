/**
 * The janitor loop judges orphans against the jobs running at the moment it looks, not at the
 * moment its sweep began: a job dequeued during a sweep keeps its workspace and containers.
 */
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createJanitor, liveIdSet } from '../../src/executor/janitor.js';
import { OWNER_SUFFIX, type WorkspaceOwner } from '../../src/executor/workspace/prepare.js';
import { createMemoryLogger } from '../../src/lib/logger.js';

const SELF = 'janitor-test-executor';
const roots: string[] = [];

afterEach(async () => {
  await Promise.all(roots.splice(0).map((r) => rm(r, { recursive: true, force: true })));
});

async function makeWorkspace(root: string, jobUid: string): Promise<string> {
  const dir = path.join(root, `workspace-${jobUid}-abc${jobUid}`);
  await mkdir(dir);
  const owner: WorkspaceOwner = {
    executorName: SELF,
    hostname: os.hostname(),
    pid: process.pid,
    jobUid,
    createdAt: new Date().toISOString(),
  };
  await writeFile(`${dir}${OWNER_SUFFIX}`, JSON.stringify(owner));
  return dir;
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

describe('janitor loop', () => {
  it('keeps the workspace of a job that started while the sweep was under way', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'janitor-loop-'));
    roots.push(root);
    const running: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let seenByRuntime: ReadonlySet<string> | undefined;
    // A fake runtime whose container cleanup takes as long as the test wants.
    const fakeRuntime = {
      async cleanupOrphans(active: ReadonlySet<string>) {
        seenByRuntime = active;
        await gate;
        return [];
      },
    };
    const stale = await makeWorkspace(root, '8');
    const janitor = createJanitor({
      runtime: fakeRuntime,
      running: { ids: () => [...running] },
      workspaceRoot: root,
      executorName: SELF,
      intervalMs: 60_000,
      logger: createMemoryLogger(),
    });

    const sweep = janitor.sweep();
    // Job 7 is dequeued and prepares its workspace while the runtime cleanup is still going on.
    running.push('7');
    const fresh = await makeWorkspace(root, '7');
    release();
    const removed = await sweep;

    expect(await exists(fresh)).toBe(true);
    expect(await exists(stale)).toBe(false);
    expect(removed).toEqual([stale]);
    expect(seenByRuntime?.has('7')).toBe(true);
  });

  it('liveIdSet reads the ids at every lookup', () => {
    const ids = ['a'];
    const set = liveIdSet(() => ids);
    expect(set.has('b')).toBe(false);
    ids.push('b');
    expect(set.has('b')).toBe(true);
    expect(set.size).toBe(2);
    expect([...set]).toEqual(['a', 'b']);
    const seen: string[] = [];
    set.forEach((v) => {
      seen.push(v);
    });
    expect(seen).toEqual(['a', 'b']);
  });
});
