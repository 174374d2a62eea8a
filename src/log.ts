// Logger shared by the batch command and the DICOM node.
//
// JSON lines go to `<logDir>/dicom-deid.log`; readable lines go to stderr. Never pass patient
// identifiers (names, MRNs, accessions, source paths, original UIDs) to this logger: its file
// is meant to be shareable with support. Identifying detail belongs in the audit CSV only.
//
// winston is loaded on the first createLogger() call, not at start-up: it is ~40 ms of module
// loading, which batch mode does while its worker threads start.
import { createRequire } from 'node:module';
import path from 'node:path';
import type Winston from 'winston';
import type DailyRotateFileType from 'winston-daily-rotate-file';
import { describeSystemError } from './errors.js';
import { mkdirRecursiveSync } from './io/durableWrite.js';
import { escapeControlCharacters } from './printable.js';

/**
 * The one logger interface of the project: every component takes this, never winston itself.
 * `meta` holds plain fields (codes, counts, AE titles); never a patient identifier or an
 * original UID.
 */
export interface Logger {
  error(message: string, meta?: object): void;
  warn(message: string, meta?: object): void;
  info(message: string, meta?: object): void;
  debug(message: string, meta?: object): void;
}

/** What createLogger returns: a Logger that closeLogger can flush. */
export type ProcessLogger = Logger & Pick<Winston.Logger, 'on' | 'end'>;

let loaded: typeof Winston | undefined;
function winstonModule(): typeof Winston {
  loaded ??= createRequire(import.meta.url)('winston') as typeof Winston;
  return loaded;
}

let rotating: typeof DailyRotateFileType | undefined;
function dailyRotateFileModule(): typeof DailyRotateFileType {
  rotating ??= createRequire(import.meta.url)('winston-daily-rotate-file') as typeof DailyRotateFileType;
  return rotating;
}

export interface LoggerOptions {
  /** Directory for the JSON-lines log file; no file transport when absent. */
  logDir?: string;
  /** winston level (error, warn, info, debug); default info, or debug when DEBUG=1. */
  level?: string;
  /** Readable lines on stderr (default true). */
  console?: boolean;
  /** Level of the console lines (default: level). */
  consoleLevel?: string;
  /** Log file name inside logDir (default dicom-deid.log). */
  fileName?: string;
  /** Console lines: 'text' (readable; colours only on a TTY) or 'json' (one object per line). Default text. */
  consoleFormat?: 'text' | 'json';
  /** The log file rotates when it reaches this many bytes (default 50 MiB) and each day, keeping maxFiles files (default 10). */
  maxFileBytes?: number;
  maxFiles?: number;
}

/** One readable line: time, level, message, then the metadata as key=value fields. */
function consoleFormat(winston: typeof Winston): Winston.Logform.Format {
  return winston.format.printf((info) => {
    const { level, message, timestamp, ...rest } = info as Record<string, unknown>;
    const extra = Object.keys(rest).filter((k) => typeof k === 'string');
    const fields = extra.length ? ' ' + extra.map((k) => `${k}=${formatValue(rest[k])}`).join(' ') : '';
    // A message or value from outside (a file name) never moves the cursor or starts an escape sequence.
    return `${String(timestamp)} ${String(level)}: ${escapeControlCharacters(String(message))}${fields}`;
  });
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return escapeControlCharacters(/\s/.test(v) ? JSON.stringify(v) : v);
  if (v instanceof Error) return JSON.stringify(v.message);
  return JSON.stringify(v);
}

/**
 * The process's Logger on winston: readable (or JSON) lines on stderr unless `console` is false, and JSON
 * lines in `logDir` when given, rotated by winston-daily-rotate-file at `maxFileBytes` (default 50 MiB) and
 * each day, `maxFiles` kept (default 10), `<fileName>` a symlink to the current one. Creates `logDir`; throws
 * its system error (EACCES...) when it cannot. Flush with closeLogger before exit.
 */
export function createLogger(options: LoggerOptions = {}): ProcessLogger {
  const winston = winstonModule();
  const level = options.level ?? (process.env.DEBUG === '1' ? 'debug' : 'info');
  const transports: Winston.transport[] = [];
  let fileTransport: Winston.transport | undefined;
  if (options.console !== false) {
    // Colours only for a person at a terminal: a journal, a file or a pipe gets plain text.
    const colours = process.stderr.isTTY === true && !process.env.NO_COLOR;
    transports.push(
      new winston.transports.Console({
        level: options.consoleLevel ?? level,
        stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'],
        format:
          options.consoleFormat === 'json'
            ? winston.format.combine(winston.format.timestamp(), winston.format.json())
            : winston.format.combine(
                winston.format.timestamp({ format: 'YYYY-MM-DD HH:mm:ss' }),
                ...(colours ? [winston.format.colorize({ all: false })] : []),
                consoleFormat(winston),
              ),
      }),
    );
  }
  if (options.logDir) {
    mkdirRecursiveSync(options.logDir);
    // Rotation by size (and by day) with winston-daily-rotate-file: winston's own File transport
    // with maxsize lost every line after its first rotation under a burst (winston 3.19).
    // Files: dicom-deid-YYYY-MM-DD.log, .1, .2...; `dicom-deid.log` links to the current one.
    const DailyRotateFile = dailyRotateFileModule();
    const base = (options.fileName ?? 'dicom-deid.log').replace(/\.log$/, '');
    fileTransport = new DailyRotateFile({
      dirname: options.logDir,
      filename: `${base}-%DATE%.log`,
      datePattern: 'YYYY-MM-DD',
      maxSize: options.maxFileBytes ?? 50 * 1024 * 1024,
      maxFiles: options.maxFiles ?? 10,
      createSymlink: true,
      symlinkName: `${base}.log`,
      auditFile: path.join(options.logDir, `.${base}-log-audit.json`),
      format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    });
    transports.push(fileTransport);
  }
  if (transports.length === 0) transports.push(new winston.transports.Console({ silent: true }));
  const logger = winston.createLogger({ level, transports });
  // A log file that cannot be written (a full disk) is one warning, and the log goes on on the
  // console: unheard, the rotator's stream 'error' would end the process with a stack trace.
  const stream = (fileTransport as unknown as { logStream?: NodeJS.EventEmitter } | undefined)?.logStream;
  stream?.on('error', (e: unknown) => {
    if (!transports.includes(fileTransport!)) return;
    transports.splice(transports.indexOf(fileTransport!), 1);
    logger.remove(fileTransport!);
    process.stderr.write(
      `dicom-deid: warning: cannot write the log in ${escapeControlCharacters(options.logDir!)}: ` +
        `${describeSystemError(e)}; logging on the console only\n`,
    );
  });
  return logger;
}

/** Flushes file transports before exit (winston writes asynchronously). */
export function closeLogger(logger: ProcessLogger): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        resolve();
      }
    };
    logger.on('finish', finish);
    // A line logged after this (a socket closing late, a last signal) is dropped: winston would
    // emit 'error' (write after end), and unhandled that ends the process with status 1.
    logger.on('error', () => {});
    logger.end();
    setTimeout(finish, 2000).unref();
  });
}
