/**
 * JobRecord -> Job (the dequeue payload). The submitted JobSpec becomes Sourcegraph's shape: steps
 * -> dockerSteps (run as a command list, env as K=V with every secret added), secrets ->
 * redactedValues `value -> ${{ secrets.NAME }}`, repository fields, files inline or (when larger
 * than the inline limit) as references to /.executors/files/job-files/<jobId>/<index>.
 */
import { type Job, type VirtualMachineFile, ZERO_TIME } from '../../protocol/job.js';
import { type JobSpec, secretPlaceholder } from '../../protocol/job-spec.js';
import type { JobRecord } from '../../store/types.js';

export const JOB_FILES_BUCKET = 'job-files';

/** Decoded content of a spec file: a string is UTF-8 text, `{ base64 }` is binary. */
export function specFileContent(file: NonNullable<JobSpec['files']>[string]): Buffer {
  return typeof file === 'string' ? Buffer.from(file, 'utf8') : Buffer.from(file.base64, 'base64');
}

/** The spec's files in a stable order; a file's index in this list is its key in the files bucket. */
export function specFiles(spec: JobSpec): [string, Buffer][] {
  return Object.entries(spec.files ?? {}).map(([p, f]) => [p, specFileContent(f)]);
}

export function buildJob(
  record: JobRecord,
  attempt: number,
  token: string,
  opts: { fileInlineLimitBytes: number; queue?: string },
): Job {
  const spec = record.spec;
  const secrets = Object.entries(spec.secrets ?? {});
  const files: Record<string, VirtualMachineFile> = {};
  specFiles(spec).forEach(([p, content], i) => {
    files[p] =
      content.length > opts.fileInlineLimitBytes
        ? { bucket: JOB_FILES_BUCKET, key: `${record.id}/${i}`, modifiedAt: ZERO_TIME }
        : { content, modifiedAt: ZERO_TIME };
  });
  const redactedValues: Record<string, string> = {};
  for (const [name, value] of secrets) redactedValues[value] = secretPlaceholder(name);
  return {
    version: 1,
    id: record.id,
    queue: opts.queue,
    token,
    repositoryName: record.repositoryName,
    repositoryDirectory: spec.repository?.directory ?? '',
    commit: record.commit,
    fetchTags: spec.repository?.fetchTags ?? false,
    shallowClone: spec.repository?.shallow ?? false,
    sparseCheckout: spec.repository?.sparse ?? [],
    files,
    dockerSteps: spec.steps.map((s) => ({
      key: s.key,
      image: s.image,
      commands: typeof s.run === 'string' ? [s.run] : [...s.run],
      dir: s.dir ?? '',
      env: [...Object.entries(s.env ?? {}), ...secrets].map(([k, v]) => `${k}=${v}`),
    })),
    cliSteps: [],
    redactedValues,
    dockerAuthConfig: {},
    attempt,
  };
}
