// `dicom-deid batch`: de-identify a folder tree of DICOM files with a mapping CSV.
import os from 'node:os';
import type { Argv, CommandModule } from 'yargs';
import { closeLogger, createLogger, type ProcessLogger } from '../log.js';
import {
  defaultLogDir,
  defaultStatePath,
  runBatch,
  type BatchInterrupted,
  type BatchOptions,
} from '../batch/runBatch.js';
import { parseDestination } from '../forward/destination.js';
import { openStateStore } from '../state/openStateStore.js';
import { UsageError } from '../errors.js';
import { wrapText } from './wrapText.js';

interface BatchArgs {
  csv: string;
  input: string;
  output: string;
  db?: string;
  'log-dir'?: string;
  'copy-other-files': boolean;
  'allow-burned-in': boolean;
  workers?: number;
  quiet: boolean;
  'dry-run': boolean;
  verbose?: boolean;
  forward?: string[];
  'calling-aet': string;
  'forward-wait': number;
  'leak-guard-warn-only'?: string[];
}

/** The options a run and a dry run share, from the command line. */
function batchOptionsOf(args: BatchArgs): BatchOptions {
  return {
    csv: args.csv,
    input: args.input,
    output: args.output,
    db: args.db,
    logDir: args['log-dir'],
    copyOtherFiles: args['copy-other-files'],
    allowBurnedIn: args['allow-burned-in'],
    leakGuardWarnOnly: args['leak-guard-warn-only'],
  };
}

const command: CommandModule<object, BatchArgs> = {
  command: 'batch',
  describe: 'De-identify a folder tree (patient/session/...) using a mapping CSV',
  builder: (y: Argv) =>
    y
      .usage(
        '$0 batch --csv mapping.csv --input Raw_Scans --output Anonymized_Data\n\n' +
          wrapText(
            'De-identify a folder tree of raw scans (one folder per patient, one sub-folder per session) ' +
              'into a research tree, using a mapping CSV from MRN/Accession to research IDs. ' +
              'Try --dry-run first: it prints the plan and writes nothing.',
          ),
      )
      .epilogue(
        wrapText(
          'Top-level folders are patients (renamed to New_Patient_ID), second-level folders are ' +
            'sessions (renamed to New_Patient_ID_N). Exit status: 0 every DICOM file was de-identified; 1 some were skipped, held or failed (see the ' +
            'audit log); 2 usage or mapping CSV error; 130 interrupted (Ctrl-C: run the same command again to continue). ' +
            'The audit log and the state database hold identifiers: keep them (back the state up with the CSV), ' +
            'never share them.',
        ),
      )
      .option('csv', {
        type: 'string',
        demandOption: true,
        describe: 'Mapping CSV (MRN, Accession, New_Patient_ID, Surgery_Date, [Anchor_Date], [Notes])',
      })
      .option('input', { type: 'string', demandOption: true, describe: 'Folder of raw scans (one folder per patient)' })
      .option('output', { type: 'string', demandOption: true, describe: 'Folder for the de-identified tree (created)' })
      .option('db', {
        type: 'string',
        describe: 'SQLite state (UID secret, session numbers) [default: <csv dir>/dicom-deid-state.sqlite]',
      })
      .option('log-dir', {
        type: 'string',
        describe: 'Folder for the audit log and run log [default: <csv dir>/dicom-deid-logs]',
      })
      .option('copy-other-files', {
        type: 'boolean',
        default: false,
        describe:
          'Also copy non-DICOM text files whose name and text hold no identifier of the patient (other files are left out)',
      })
      .option('allow-burned-in', {
        type: 'boolean',
        default: false,
        describe:
          'Write instances whose Burned In Annotation is YES (default: hold them; for sites that clean pixels elsewhere)',
      })
      .option('workers', {
        type: 'number',
        describe: `Worker threads [default: number of cores, ${os.availableParallelism()}]`,
      })
      .option('quiet', { type: 'boolean', default: false, describe: 'No progress bar and no summary' })
      .option('dry-run', {
        type: 'boolean',
        default: false,
        describe: 'Print the plan (sessions, new names, what would be left out and why) and write nothing',
      })
      .option('leak-guard-warn-only', {
        type: 'string',
        array: true,
        describe:
          'Attributes (e.g. StudyDescription,0008,1030) where a leak guard hit only warns; elsewhere it holds the file',
      })
      .option('forward', {
        type: 'string',
        array: true,
        describe: 'Also send the de-identified files to AET@host:port (repeatable)',
      })
      .option('calling-aet', { type: 'string', default: 'DEID', describe: 'Our AE title (calling) when forwarding' })
      .option('forward-wait', {
        type: 'number',
        default: 300,
        describe: 'Seconds to keep trying before leaving the rest queued',
      })
      .check((a) => {
        if (a.workers !== undefined && (!Number.isInteger(a.workers) || a.workers < 1 || a.workers > 256)) {
          throw new UsageError('--workers must be a whole number from 1 to 256');
        }
        for (const f of a.forward ?? []) {
          try {
            parseDestination(f);
          } catch (e) {
            throw new UsageError((e as Error).message);
          }
        }
        for (const k of ['csv', 'input', 'output'] as const) {
          if (typeof a[k] !== 'string' || a[k] === '') throw new UsageError(`--${k} needs a value`);
        }
        return true;
      }) as unknown as Argv<BatchArgs>,
  handler: async (args) => {
    if (args['dry-run']) {
      const { dryRunBatch } = await import('../batch/dryRun.js');
      const stop = stopOnSignals();
      try {
        const r = await dryRunBatch({ ...batchOptionsOf(args), signal: stop.signal });
        process.exitCode = stop.signal.aborted ? 130 : r.exitCode;
      } finally {
        stop.dispose();
      }
      return;
    }
    let logger: ProcessLogger | undefined;
    const createLog = (dir: string): ProcessLogger =>
      (logger = createLogger({
        logDir: dir,
        level: args.verbose || process.env.DEBUG === '1' ? 'debug' : 'info',
        consoleLevel: args.verbose || process.env.DEBUG === '1' ? 'debug' : 'warn',
        console: !args.quiet,
      }));
    let auditLog: string | undefined;
    const stop = stopOnSignals(() => {
      if (auditLog && !args.quiet)
        process.stdout.write(`Audit log so far (contains identifiers, do not share): ${auditLog}\n`);
    });
    try {
      const summary = await runBatch({
        ...batchOptionsOf(args),
        workers: args.workers,
        quiet: args.quiet,
        createLog,
        signal: stop.signal,
        onAuditLog: (file) => (auditLog = file),
      });
      if (summary.exitCode === 130) return reportInterrupted(summary, args.quiet);
      process.exitCode = summary.exitCode;
      if (args.forward && args.forward.length > 0 && summary.written.length > 0) {
        const { forwardBatch } = await import('../batch/forwardBatch.js'); // DIMSE stack: only when used
        const state = await openStateStore(args.db ?? defaultStatePath(args.csv), { create: true });
        try {
          const results = await forwardBatch(
            state,
            summary.written,
            args.forward,
            args['calling-aet'],
            logger ?? createLog(args['log-dir'] ?? defaultLogDir(args.csv)),
            args['forward-wait'] * 1000,
          );
          for (const r of results) {
            process.stdout.write(
              `forward ${r.destination}: ${r.delivered} delivered, ${r.dead} dead, ${r.pending} still queued\n`,
            );
            if (r.dead > 0 || r.pending > 0) process.exitCode = 1;
          }
          if (results.some((r) => r.dead > 0))
            process.stdout.write('dead items and their reasons: dicom-deid queue --db <state>\n');
        } finally {
          await state.close();
        }
      }
    } finally {
      stop.dispose();
      if (logger) await closeLogger(logger);
    }
  },
};

/** "interrupted after N of M files; ...": stderr, exit status 130 (128 + SIGINT, as shells do). */
function reportInterrupted(r: BatchInterrupted, quiet: boolean): void {
  process.stderr.write(
    `dicom-deid: interrupted after ${r.done} of ${r.total} files; run the same command again to continue\n`,
  );
  if (r.auditLog && !quiet)
    process.stdout.write(`Audit log so far (contains identifiers, do not share): ${r.auditLog}\n`);
  process.exitCode = 130;
}

/**
 * Turns the first SIGINT (Ctrl-C) or SIGTERM into an abort of `signal`: the run stops taking
 * files and finishes those in flight. A second one ends the process at once (exit 130), after
 * `beforeExit` (which names the audit log): files being written are left under their temporary
 * names (`.<name>.<hex>.tmp`), never whole-looking, and the next run removes them.
 */
function stopOnSignals(beforeExit: () => void = () => {}): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = (): void => {
    if (!controller.signal.aborted) {
      process.stderr.write('\ndicom-deid: stopping: finishing the files in flight (again to stop at once)\n');
      controller.abort();
      return;
    }
    process.stderr.write('dicom-deid: stopped at once; run the same command again to continue\n');
    beforeExit();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

export default command;
