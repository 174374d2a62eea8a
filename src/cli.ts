#!/usr/bin/env node
// dicom-deid command line. Commands live in src/commands/ (see src/commands/index.ts).
//
// Exit codes: 0 success, 1 some work failed or an unexpected error, 2 usage or mapping CSV
// error. Errors print one line (a mapping CSV, one line per problem); the stack only with
// DEBUG=1 or --verbose.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { commands } from './commands/index.js';
import { UsageError } from './errors.js';
import { MappingError } from './core/types.js';

const argv = hideBin(process.argv);
const verbose = process.env.DEBUG === '1' || argv.includes('--verbose');

function fail(err: unknown, code: number): void {
  const msg = err instanceof Error ? err.message : String(err);
  const lines = msg
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  // A usage or mapping CSV error may be several problems, one per line (every bad CSV line at
  // once); anything else shows its first line only.
  for (const line of code === 2 ? lines : lines.slice(0, 1)) process.stderr.write(`dicom-deid: ${line}\n`);
  if (lines.length === 0) process.stderr.write('dicom-deid: error\n');
  if (verbose && err instanceof Error && err.stack && code !== 2) process.stderr.write(err.stack + '\n');
  process.exitCode = code;
}

async function main(): Promise<void> {
  let parser = yargs(argv)
    .scriptName('dicom-deid')
    .usage('$0 <command> [options]')
    .option('verbose', { type: 'boolean', describe: 'More logging; stack traces on errors', global: true })
    .strict()
    .demandCommand(1, 'Missing command')
    .recommendCommands()
    .help()
    .alias('help', 'h')
    .version()
    .wrap(Math.min(100, process.stdout.columns || 80))
    // Validation failures (msg) become usage errors; errors thrown by handlers pass through.
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(`${msg} (see dicom-deid --help)`);
    });
  for (const command of commands) parser = parser.command(command);
  try {
    await parser.parseAsync();
  } catch (err) {
    if (err instanceof UsageError || err instanceof MappingError) return fail(err, 2);
    if (err instanceof Error && (err.name === 'YError' || err.name === 'MappingError')) return fail(err, 2);
    return fail(err, 1);
  }
}

main().catch((err) => fail(err, 1));
