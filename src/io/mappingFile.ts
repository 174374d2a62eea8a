// Reads the researcher's mapping CSV from disk and validates it (core/mapping/mappingCsv.ts).
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseMappingCsv } from '../core/mapping/mappingCsv.js';
import { MappingError, type MappingRow } from '../core/types.js';

/**
 * The validated rows of the mapping CSV `file`. Throws MappingError when it does not validate
 * (the message names the file, the line and the value); when it cannot be read, the error made by
 * `unreadable` (MappingError by default) with a message naming the file and the error code.
 */
export function readMappingFile(
  file: string,
  unreadable: (message: string) => Error = (message) => new MappingError(message),
): MappingRow[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw unreadable(
      `cannot read the mapping CSV ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  return parseMappingCsv(text, basename(file));
}
