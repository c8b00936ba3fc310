/**
 * The `executor` command. Only parses, wires and starts: the work lives in server/, executor/ and
 * store/. `run` is the default command, as in Sourcegraph's executor.
 */
import { Command } from 'commander';
import { packageVersion } from '../lib/version.js';
import { registerBackupCommands } from './backup.js';
import { relaunchWithCaFile } from './ca-file.js';
import { registerClientCommands } from './client-commands.js';
import { registerExecCommand } from './exec.js';
import { registerFleetCommands } from './fleet-commands.js';
import { registerInstallCommand } from './install.js';
import { registerRepoCommands } from './repo-commands.js';
import { registerRunCommand } from './run.js';
import { registerSchemaCommand } from './schema.js';
import { registerServerCommand } from './server.js';
import { registerTokenCommands } from './token-commands.js';
import { registerUpCommand } from './up.js';
import { registerValidateCommand } from './validate.js';

export function buildProgram(): Command {
  const program = new Command('executor')
    .description(
      'Run untrusted batch jobs in sandboxes: a Sourcegraph-compatible executor (run) and the queue server it talks to (server)',
    )
    .version(packageVersion(), '-v, --version', 'Print the version')
    .helpOption('-h, --help', 'Show help for the command')
    .helpCommand('help [command]', 'Show help for a command')
    .showHelpAfterError();
  registerUpCommand(program);
  registerRunCommand(program);
  registerValidateCommand(program);
  registerServerCommand(program);
  registerClientCommands(program);
  registerFleetCommands(program);
  registerTokenCommands(program);
  registerRepoCommands(program);
  registerInstallCommand(program);
  registerExecCommand(program);
  registerBackupCommands(program);
  registerSchemaCommand(program);
  return program;
}

const args = process.argv.slice(2);
// --ca-file / EXECUTOR_FRONTEND_CA_FILE: the command runs again in a child that trusts the CA.
if (!relaunchWithCaFile(args)) main(args);

function main(args: string[]): void {
  const program = buildProgram();
  // `executor` alone, or with only run's flags, means `executor run` (Sourcegraph's default command).
  if (args.length === 0 || (args[0]?.startsWith('--') && !['--help', '--version'].includes(args[0]))) {
    args.unshift('run');
  }
  // No top-level await: the single-file build (scripts/package.mjs) bundles this entry as CommonJS.
  // A rejection still ends the process with its error, as an unhandled rejection.
  void program.parseAsync(args, { from: 'user' });
}
