/**
 * `executor schema job`: the job file's JSON Schema, generated from the zod definition the server
 * validates with (protocol/job-spec.ts), so the two cannot drift. Editors read it through a
 * `# yaml-language-server: $schema=...` line at the top of a job file.
 */
import type { Command } from 'commander';
import { zodToJsonSchema } from 'zod-to-json-schema';
import { jobFileSchema } from '../protocol/job-spec.js';

/** The job file's JSON Schema (draft 2019-09, which yaml-language-server and ajv read). */
export function jobFileJsonSchema(): Record<string, unknown> {
  const schema = zodToJsonSchema(jobFileSchema, {
    target: 'jsonSchema2019-09',
    $refStrategy: 'none',
  }) as Record<string, unknown>;
  return {
    $schema: schema.$schema,
    title: 'executor job file',
    description:
      'A job for `executor submit` and `executor exec`: a queue, an optional repository, files, steps and secrets. See docs/job-file.md.',
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== '$schema')),
  };
}

export function registerSchemaCommand(program: Command): void {
  program
    .command('schema')
    .description('Print a JSON Schema: `executor schema job` for job files')
    .argument('<what>', 'Which schema: job')
    .action((what: string) => {
      if (what !== 'job') {
        process.stderr.write(
          `error: unknown schema "${what}"; the one schema is "job" (executor schema job)\n`,
        );
        process.exitCode = 2;
        return;
      }
      process.stdout.write(`${JSON.stringify(jobFileJsonSchema(), null, 2)}\n`);
    });
}
