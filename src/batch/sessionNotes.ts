// `notes.txt` in each session folder whose mapping rows have Notes (the free text of the CSV's
// Notes column, e.g. "Left side, revision"), one line per distinct note.
import path from 'node:path';
import { writeFileAtomicSync } from '../io/durableWrite.js';

/**
 * Writes `<output>/<researchId>/<session>/notes.txt` for each entry of `notesBySession`
 * (`researchId/session` -> notes), atomically; throws the system error of a failed write.
 */
export function writeSessionNotes(outputDir: string, notesBySession: ReadonlyMap<string, ReadonlySet<string>>): void {
  for (const [sessionRel, notes] of notesBySession) {
    writeFileAtomicSync(path.join(outputDir, ...sessionRel.split('/'), 'notes.txt'), [...notes].join('\n') + '\n');
  }
}
