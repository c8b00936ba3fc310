import { describe, expect, it } from 'vitest';
import { spawnCli } from '../helpers/spawn-cli.js';

async function help(args: string[]): Promise<string> {
  const p = spawnCli([...args, '--help']);
  expect(await p.exited).toBe(0);
  return p.output();
}

/** The descriptions of a commander help text: the text after the term column of each entry. */
function descriptions(text: string): string[] {
  const out: string[] = [];
  let section = '';
  for (const line of text.split('\n')) {
    if (/^[A-Z][a-z]+:$/.test(line)) section = line;
    const m = /^ {2}(\S.*?) {2,}(\S.*)$/.exec(line);
    if (m && ['Options:', 'Commands:', 'Arguments:'].includes(section)) out.push(m[2]!);
  }
  return out;
}

describe('help texts', { timeout: 120_000 }, () => {
  it('speak in one voice: every command, option and argument described in sentence case', async () => {
    const top = await help([]);
    const commands = [...top.matchAll(/^ {2}([a-z]+) /gm)].map((m) => m[1]!).filter((c) => c !== 'help');
    expect(commands).toEqual(expect.arrayContaining(['up', 'run', 'submit', 'jobs', 'schema', 'validate']));
    const texts = await Promise.all([[], ...commands.map((c) => [c]), ['tokens', 'create']].map(help));
    const all = texts.flatMap(descriptions);
    expect(all.length).toBeGreaterThan(60);
    const lower = all.filter((d) => /^[a-z]/.test(d));
    expect(lower).toEqual([]);
    // Command summaries are phrases without a closing full stop, as commander's own are.
    const commandLines = [...top.matchAll(/^ {2}\S.*? {2,}(\S.*)$/gm)].map((m) => m[1]!);
    expect(commandLines.filter((d) => d.endsWith('.'))).toEqual([]);
  });

  it('submit --help points at the job file reference and the schema command', async () => {
    const text = await help(['submit']);
    expect(text).toContain('docs/job-file.md');
    expect(text).toContain('executor schema job');
    expect(text).toContain('--secret <name[=envvar]|name@file>');
  });
});
