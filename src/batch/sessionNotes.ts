// `notes.txt` in each session folder whose mapping rows have Notes (the free text of the CSV's
// Notes column, e.g. "Left side, revision"), one line per distinct note.
import path from 'node:path';
import { describeSystemError } from '../errors.js';
import { writeFileAtomicSync } from '../io/durableWrite.js';

/** A file of the output the run could not write: its path relative to the output ('/'-separated) and why, in words. */
export interface WriteFailure {
  outputPath: string;
  why: string;
}

/**
 * Writes `<output>/<researchId>/<session>/notes.txt` for each entry of `notesBySession`
 * (`researchId/session` -> notes), atomically. A notes.txt that cannot be written (a full disk)
 * does not stop the others: returns one WriteFailure each ("the disk is full"); never throws.
 */
export function writeSessionNotes(
  outputDir: string,
  notesBySession: ReadonlyMap<string, ReadonlySet<string>>,
): WriteFailure[] {
  const failures: WriteFailure[] = [];
  for (const [sessionRel, notes] of notesBySession) {
    const outputPath = `${sessionRel}/notes.txt`;
    try {
      writeFileAtomicSync(path.join(outputDir, ...outputPath.split('/')), [...notes].join('\n') + '\n');
    } catch (err) {
      failures.push({ outputPath, why: describeSystemError(err) });
    }
  }
  return failures;
}
