// `dicom-deid batch`: de-identify a folder tree of DICOM files with a mapping CSV.
import os from 'node:os';
import type { Argv, CommandModule } from 'yargs';
import { closeLogger, createLogger, type ProcessLogger } from '../log.js';
import { defaultLogDir, defaultStatePath, runBatch } from '../batch/runBatch.js';
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
  verbose?: boolean;
  forward?: string[];
  'calling-aet': string;
  'forward-wait': number;
}

const command: CommandModule<object, BatchArgs> = {
  command: 'batch',
  describe: 'De-identify a folder tree (patient/session/...) using a mapping CSV',
  builder: (y: Argv) =>
    y
      .usage('$0 batch --csv mapping.csv --input ./Raw_Scans --output ./Anonymized_Data')
      .epilogue(
        wrapText(
          'Top-level folders are patients (renamed to New_Patient_ID), second-level folders are ' +
            'sessions (renamed to New_Patient_ID_N). Exit status: 0 every DICOM file was de-identified; 1 some were skipped, held or failed (see the ' +
            'audit log); 2 usage or mapping CSV error. The audit log and the state database hold ' +
            'identifiers: keep them, never share them.',
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
      .option('forward', {
        type: 'string',
        array: true,
        describe: 'Also send the de-identified files to AET@host:port (repeatable)',
      })
      .option('calling-aet', { type: 'string', default: 'DEID', describe: 'Our AE title when forwarding' })
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
    const logDir = args['log-dir'] ?? defaultLogDir(args.csv);
    let logger: ProcessLogger | undefined;
    const createLog = (dir: string): ProcessLogger =>
      (logger = createLogger({
        logDir: dir,
        level: args.verbose || process.env.DEBUG === '1' ? 'debug' : 'info',
        consoleLevel: args.verbose || process.env.DEBUG === '1' ? 'debug' : 'warn',
        console: !args.quiet,
      }));
    try {
      const summary = await runBatch({
        csv: args.csv,
        input: args.input,
        output: args.output,
        db: args.db,
        logDir,
        copyOtherFiles: args['copy-other-files'],
        allowBurnedIn: args['allow-burned-in'],
        workers: args.workers,
        quiet: args.quiet,
        createLog,
      });
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
            logger ?? createLog(logDir),
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
      if (logger) await closeLogger(logger);
    }
  },
};

export default command;
