#!/usr/bin/env node
// dicom-deid command line. Commands live in src/commands/ (see src/commands/index.ts).
//
// Exit codes: 0 success, 1 some work failed or an unexpected error, 2 usage or mapping CSV
// error, 130 interrupted (batch). Errors print one line (a mapping CSV, one line per problem);
// the stack only with DEBUG=1 or --verbose. A system error says what it could not do, in words
// ("cannot create the folder /x: permission denied"), never a raw ENOENT. A closed stdout or
// stderr (`| head`) ends the output quietly.
import { createRequire } from 'node:module';
import type Yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { commands } from './commands/index.js';
import { asBatchCommand, repeatedOptions, usageHints, type KnownOptions } from './commands/usageHints.js';
import { describeSystemError, UsageError } from './errors.js';
import { escapeControlCharacters } from './printable.js';
import { MappingError } from './core/types.js';

// yargs' CommonJS build: its help wraps at word boundaries; the ES module build's (cliui's
// Deno-compatible wrap) cuts words in two at the terminal's width.
const yargs = createRequire(import.meta.url)('yargs') as typeof Yargs;

// `| head` closes the pipe: later writes fail with EPIPE, reported as an 'error' event that
// would otherwise end the process with a stack trace. Nothing is left to tell: stop writing.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});

let argv = hideBin(process.argv);
const verbose = process.env.DEBUG === '1' || argv.includes('--verbose');

/** Words for a failed system call on a path: "cannot create the folder /x/y". */
const SYSCALL_WORDS: Record<string, string> = {
  open: 'cannot open',
  mkdir: 'cannot create the folder',
  rename: 'cannot rename',
  scandir: 'cannot list the folder',
  opendir: 'cannot list the folder',
  stat: 'cannot find',
  lstat: 'cannot find',
  unlink: 'cannot remove',
  rmdir: 'cannot remove the folder',
  copyfile: 'cannot copy',
  write: 'cannot write',
  read: 'cannot read',
  access: 'cannot reach',
};

function message(err: unknown): string {
  const e = err as NodeJS.ErrnoException | null;
  if (e && typeof e.code === 'string' && typeof e.syscall === 'string' && typeof e.path === 'string') {
    if (e.syscall === 'mkdir' && e.code === 'EEXIST') return `cannot create the folder ${e.path}: a file has its name`;
    return `${SYSCALL_WORDS[e.syscall] ?? `cannot ${e.syscall}`} ${e.path}: ${describeSystemError(e)}`;
  }
  return err instanceof Error ? err.message : String(err);
}

function fail(err: unknown, code: number): void {
  const lines = message(err)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  // A usage or mapping CSV error may be several problems, one per line (every bad CSV line at
  // once); anything else shows its first line only.
  // A path in the message (a folder named with ESC) never reaches the terminal raw.
  for (const line of code === 2 ? lines : lines.slice(0, 1))
    process.stderr.write(`dicom-deid: ${escapeControlCharacters(line)}\n`);
  if (lines.length === 0) process.stderr.write('dicom-deid: error\n');
  if (verbose && err instanceof Error && err.stack && code !== 2) process.stderr.write(err.stack + '\n');
  process.exitCode = code;
}

async function main(): Promise<void> {
  const names = commands.map((c) => String(c.command ?? '').split(' ')[0]!);
  const asBatch = asBatchCommand(argv, names);
  if (asBatch) {
    process.stderr.write('dicom-deid: note: no command given: running "dicom-deid batch" (the old script\'s form)\n');
    argv = asBatch;
  }
  /** The options of the command being parsed (yargs resets them per command). */
  let known: KnownOptions | undefined;
  let command = '';
  const beforeValidation = (args: { _: (string | number)[] } & Record<string, unknown>, y: unknown): void => {
    known = (y as { getOptions(): KnownOptions }).getOptions();
    command = String(args._[0] ?? '');
    const repeated = repeatedOptions(args, known);
    if (repeated.length > 0) throw new UsageError(repeated.join('\n'));
  };
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
    // Before validation: remember the command's options, refuse an option given twice. (yargs
    // passes itself as the second argument; its types declare one.)
    .middleware(beforeValidation as unknown as (args: object) => void, true)
    // Validation failures (msg) become usage errors; errors thrown by handlers pass through.
    .fail((msg, err) => {
      if (err) throw err;
      const unknown = /^Unknown arguments?: (.*)$/.exec(msg)?.[1]?.split(', ') ?? [];
      const hints = known ? usageHints(argv, known, unknown, command) : [];
      throw new UsageError(hints.length > 0 ? hints.join('\n') : `${msg} (see dicom-deid --help)`);
    });
  for (const c of commands) parser = parser.command(c);
  try {
    await parser.parseAsync();
  } catch (err) {
    if (err instanceof UsageError || err instanceof MappingError) return fail(err, 2);
    if (err instanceof Error && (err.name === 'YError' || err.name === 'MappingError')) return fail(err, 2);
    return fail(err, 1);
  }
}

main().catch((err) => fail(err, 1));
