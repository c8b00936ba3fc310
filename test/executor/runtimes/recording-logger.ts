/**
 * A JobLogger that records every entry in memory, for runtime tests: what a step wrote to stdout and
 * stderr, raw lines, and how the entry was closed. Not a stand-in for the real command logger; it
 * only captures what the runtime hands to the JobLogger interface.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { JobContext, JobLogger } from '../../../src/executor/job-context.js';
import type { Workspace } from '../../../src/executor/runtimes/types.js';
import type { Job } from '../../../src/protocol/job.js';

export interface RecordedEntry {
  key: string;
  command: string[] | null;
  stdout: string;
  stderr: string;
  raw: string;
  exitCode?: number;
  closeCount: number;
}

export function createRecordingLogger(): JobLogger & { entries: RecordedEntry[] } {
  const entries: RecordedEntry[] = [];
  return {
    entries,
    entry(key, command) {
      const e: RecordedEntry = { key, command, stdout: '', stderr: '', raw: '', closeCount: 0 };
      entries.push(e);
      return {
        write(stream, chunk) {
          e[stream] += chunk.toString();
        },
        writeRaw(text) {
          e.raw += text;
        },
        close(exitCode) {
          e.exitCode = exitCode;
          e.closeCount++;
        },
      };
    },
  };
}

export function createTestContext(executorName: string) {
  const controller = new AbortController();
  const logger = createRecordingLogger();
  const ctx: JobContext = { signal: controller.signal, logger, executorName };
  return { ctx, controller, logger };
}

let nextId = 9_000_000 + Math.floor(Math.random() * 100_000);

export function makeJob(
  steps: Array<{ image: string; dir?: string; env?: string[]; key?: string }>,
  over: Partial<Job> = {},
): Job {
  return {
    version: 2,
    id: nextId++,
    token: 'job-token',
    repositoryName: '',
    repositoryDirectory: '',
    commit: '',
    fetchTags: false,
    shallowClone: false,
    sparseCheckout: [],
    files: {},
    dockerSteps: steps.map((s) => ({
      key: s.key,
      image: s.image,
      commands: [],
      dir: s.dir ?? '',
      env: s.env ?? [],
    })),
    cliSteps: [],
    redactedValues: {},
    dockerAuthConfig: {},
    ...over,
  };
}

/**
 * A workspace made by hand (what prepareLocalWorkspace produces for a job without a repository):
 * one script per step in `.sourcegraph-executor/`, plus any extra files.
 */
export async function makeWorkspace(
  scripts: string[],
  extraFiles: Record<string, string> = {},
): Promise<Workspace> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'executor-runtime-test-'));
  await mkdir(path.join(dir, '.sourcegraph-executor'));
  const scriptNames = scripts.map((_, i) => `step-${i}.sh`);
  await Promise.all(
    scripts.map((body, i) =>
      writeFile(path.join(dir, '.sourcegraph-executor', scriptNames[i]!), `${body}\n`, { mode: 0o755 }),
    ),
  );
  for (const [rel, content] of Object.entries(extraFiles)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), content);
  }
  return {
    path: dir,
    scriptNames,
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
