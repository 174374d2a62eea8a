// Before any file is written: read the header of every input file (its first bytes, the whole
// file only when the header is longer) and feed its identifying values and mapping row to the
// path plan, so that each folder's name is decided once, knowing every patient it holds.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { readIdentifyingValues, type IdentifyingValues } from '../core/identifiers/index.js';
import type { MappingTable } from '../core/mapping/mappingTable.js';
import type { MappingRow } from '../core/types.js';
import { ReusableReader } from '../io/reusableReader.js';
import { PathPlan } from './pathPlan.js';

/** Bytes read first: headers are a few KB (vendor private headers, tens of KB); longer ones are read whole. */
const HEAD_BYTES = 64 * 1024;

/** The identifying values of a DICOM file; null for a file that is not DICOM or cannot be read. */
function surveyFile(abs: string, head: Buffer, whole: ReusableReader): IdentifyingValues | null {
  let fd: number;
  try {
    fd = openSync(abs, 'r');
  } catch {
    return null; // its worker reports it
  }
  let n: number;
  let size: number;
  try {
    size = fstatSync(fd).size;
    n = readSync(fd, head, 0, Math.min(HEAD_BYTES, size), 0);
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
  if (n < 132 || head.toString('latin1', 128, 132) !== 'DICM') return null;
  try {
    if (n < size) {
      const values = readIdentifyingValues(head.subarray(0, n), true);
      if (values) return values;
    }
    const bytes = n < size ? whole.read(abs, true) : head.subarray(0, n);
    return bytes === null ? null : readIdentifyingValues(bytes);
  } catch {
    return null; // not readable: its worker reports why, and it is not written
  }
}

/**
 * Reads every file of `files` (relative to `inputDir`) and returns the path plan. Files that
 * are not DICOM or not readable add nothing (they are not written, or are left out).
 */
export function surveyTree(
  inputDir: string,
  files: readonly string[],
  table: MappingTable,
  rows: readonly MappingRow[],
  secret: Buffer,
): PathPlan {
  const plan = new PathPlan(rows, secret);
  const head = Buffer.allocUnsafe(HEAD_BYTES);
  const whole = new ReusableReader();
  for (const rel of files) {
    const values = surveyFile(path.join(inputDir, ...rel.split('/')), head, whole);
    if (values === null) continue;
    const match = table.match({
      patientId: values.patientIds[0] ?? '',
      accessionNumber: values.accessionNumbers[0] ?? '',
    });
    plan.addFile({ rel, researchId: match?.row.researchId ?? null, dayOffset: match?.row.dayOffset ?? null, values });
  }
  return plan;
}
