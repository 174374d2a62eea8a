// Reads the researcher's mapping CSV from disk and validates it (core/mapping/mappingCsv.ts).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { describeSystemError } from '../errors.js';
import { formatProblems } from '../core/mapping/csvProblem.js';
import { checkMappingCsv, rowsOrThrow, type MappingCsv } from '../core/mapping/mappingCsv.js';
import { MappingError, type MappingRow } from '../core/types.js';

/** A checked mapping CSV and the name its problems are reported under (the file's base name). */
export interface MappingFile extends MappingCsv {
  source: string;
}

/**
 * Reads `file` and checks it: every problem, none thrown. When it cannot be read, throws the
 * error made by `unreadable` (MappingError by default) with a message naming the file and the
 * reason in words ("not found", "is a folder", "permission denied").
 */
export function checkMappingFile(
  file: string,
  unreadable: (message: string) => Error = (message) => new MappingError(message),
): MappingFile {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw unreadable(`cannot read the mapping CSV ${file}: ${describeSystemError(e)}`);
  }
  return { ...checkMappingCsv(bytes), source: basename(file) };
}

/**
 * The validated rows of the mapping CSV `file`. Throws MappingError when it does not validate
 * (one line per problem, each naming the file, the line, the column and the value); when it
 * cannot be read, the error made by `unreadable` (see checkMappingFile). Warnings (an encoding
 * that was guessed, rows of one patient with different day offsets) go to `warn`, one line each,
 * with their values (for logs, use checkMappingFile and the problems' `redacted` words).
 */
export function readMappingFile(
  file: string,
  unreadable?: (message: string) => Error,
  warn: (line: string) => void = () => undefined,
): MappingRow[] {
  const csv = checkMappingFile(file, unreadable);
  const rows = rowsOrThrow(csv, csv.source);
  for (const line of formatProblems(csv.problems, 'warning', csv.source)) warn(line);
  return rows;
}
