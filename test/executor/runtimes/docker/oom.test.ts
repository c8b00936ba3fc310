/**
 * The OOM classifier on recorded shapes: `State` objects as `docker inspect` returned them after a
 * memory hog exited (runc, flagged; runsc under load, not flagged), and /proc/vmstat texts.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import {
  classifyOom,
  daemonIsLocal,
  parseOomKillCount,
  readOomKillCount,
} from '../../../../src/executor/runtimes/docker/oom.js';

/** runc, 32m limit, `tail /dev/zero`: Docker saw the OOM event. */
const FLAGGED = JSON.parse(
  '{"Status":"exited","Running":false,"Paused":false,"Restarting":false,"OOMKilled":true,"Dead":false,"Pid":0,"ExitCode":137,"Error":"","StartedAt":"2026-12-04T23:00:56.764435143Z","FinishedAt":"2026-12-04T23:00:56.960541145Z"}',
);
/** runsc, 64m limit, same hog beside a fork bomb on a loaded host: killed for memory, not flagged. */
const UNFLAGGED = { ...FLAGGED, OOMKilled: false };
const CLEAN_EXIT = { ...FLAGGED, OOMKilled: false, ExitCode: 0 };

function evidence(
  state: { OOMKilled: boolean; ExitCode: number },
  over: Partial<Parameters<typeof classifyOom>[0]> = {},
) {
  return {
    exitCode: state.ExitCode,
    dockerOomKilled: state.OOMKilled,
    memoryLimited: true,
    killedByUs: false,
    ...over,
  };
}

describe('classifyOom', () => {
  it("trusts Docker's flag", () => {
    expect(classifyOom(evidence(FLAGGED))).toEqual({ oomKilled: true, source: 'docker' });
    expect(classifyOom(evidence(FLAGGED, { hostOomKills: 0 }))).toEqual({
      oomKilled: true,
      source: 'docker',
    });
  });

  it('calls an unflagged SIGKILL exit an OOM kill when the kernel counted one during the step', () => {
    expect(classifyOom(evidence(UNFLAGGED, { hostOomKills: 1 }))).toEqual({
      oomKilled: true,
      source: 'kernel-count',
    });
    expect(classifyOom(evidence(UNFLAGGED, { hostOomKills: 3 })).oomKilled).toBe(true);
  });

  it('does not call it an OOM kill without evidence', () => {
    // No kill counted, or the count could not be read (remote daemon, no /proc).
    expect(classifyOom(evidence(UNFLAGGED, { hostOomKills: 0 }))).toEqual({ oomKilled: false });
    expect(classifyOom(evidence(UNFLAGGED))).toEqual({ oomKilled: false });
  });

  it('never blames memory for our own kill, another exit code, or a step without a limit', () => {
    expect(classifyOom(evidence(UNFLAGGED, { hostOomKills: 1, killedByUs: true })).oomKilled).toBe(false);
    expect(classifyOom(evidence(CLEAN_EXIT, { hostOomKills: 1 })).oomKilled).toBe(false);
    expect(classifyOom(evidence({ OOMKilled: false, ExitCode: 1 }, { hostOomKills: 1 })).oomKilled).toBe(
      false,
    );
    expect(classifyOom(evidence(UNFLAGGED, { hostOomKills: 1, memoryLimited: false })).oomKilled).toBe(false);
  });
});

describe('the host OOM count', () => {
  it('parses the oom_kill line of /proc/vmstat', () => {
    expect(parseOomKillCount('pgfault 10\noom_kill 77\nnr_foll_pin_acquired 0\n')).toBe(77);
    expect(parseOomKillCount('pgfault 10\n')).toBeUndefined();
    expect(parseOomKillCount('xoom_kill 5\n')).toBeUndefined();
  });

  it('reads a vmstat file and gives undefined for one that cannot be read', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'vmstat-'));
    const file = path.join(dir, 'vmstat');
    writeFileSync(file, 'nr_free_pages 1\noom_kill 4\n');
    expect(await readOomKillCount(file)).toBe(4);
    expect(await readOomKillCount(path.join(dir, 'missing'))).toBeUndefined();
  });

  it('is consulted only for a daemon on a local socket', () => {
    expect(daemonIsLocal(new Dockerode())).toBe(true);
    expect(daemonIsLocal(new Dockerode({ socketPath: '/run/docker.sock' }))).toBe(true);
    expect(daemonIsLocal(new Dockerode({ host: '192.0.2.1', port: 2375 }))).toBe(false);
  });
});
