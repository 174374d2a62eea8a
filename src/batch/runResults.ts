// What a batch run found, file by file: counts per status, the sessions written per research
// patient, the notes of each session, the studies seen in each session folder, and the audit
// row of each file. Pure bookkeeping: the run writes the rows and the files.
import { zeroFileCounts, type AuditRow, type FileStatus } from '../audit/auditLog.js';
import type { MappingRow } from '../core/types.js';
import type { Logger } from '../log.js';
import { sourceLayout } from './layout.js';
import type { FileOutcome } from './protocol.js';

/**
 * A batch run's tallies (see above), filled by record() as the pool reports each file. In memory only; throws
 * nothing.
 */
export class RunResults {
  readonly counts: Record<FileStatus, number> = zeroFileCounts();
  /** Written files whose pixels may hold burned-in text: output path (relative) and why. */
  readonly review: { outputPath: string; reason: string }[] = [];
  /** Files written with a leak guard warning (warn-only attributes, identifiers in the Notes). */
  leakGuardWarned = 0;
  /** Why non-DICOM files were left out (with --copy-other-files): reason -> count. */
  readonly otherFilesLeftOutBy = new Map<string, number>();
  /** researchId -> session folder name -> number of files written. */
  readonly sessions = new Map<string, Map<string, number>>();
  /** `researchId/sessionName` -> the Notes of the rows its files matched. */
  readonly notesBySession = new Map<string, Set<string>>();
  /** Patient folder -> the research IDs of its de-identified files. */
  readonly researchIdsOfPatientFolder = new Map<string, Set<string>>();
  /** Output path (relative) -> the source path written there. */
  readonly outputs = new Map<string, string>();
  /** Files that are not DICOM, in the order found; their rows come from the copy decision. */
  readonly notDicom: string[] = [];
  /** researchId -> study session key -> the number of the session folder it was found in. */
  readonly studyLinks = new Map<string, Map<string, number>>();
  /** Unmatched files whose PatientID/AccessionNumber is a CSV value with leading zeros added. */
  readonly lostLeadingZeros = { files: 0, csvLines: new Set<number>() };
  /** The leak guard's time and the workers' time per file, summed (ms). */
  readonly timing = { guardMs: 0, jobMs: 0 };
  /** Non-DICOM files copied (--copy-other-files). */
  otherCopied = 0;
  private readonly rowsByLine: Map<number, MappingRow>;

  /**
   * `rows`: the mapping CSV's rows (a file's notes are found by its row's line); `log`: where warnings go, if
   * anywhere.
   */
  constructor(
    rows: readonly MappingRow[],
    private readonly log?: Logger,
  ) {
    this.rowsByLine = new Map(rows.map((r) => [r.line, r]));
  }

  /**
   * Records the outcome of one file the pool processed. Returns its audit row, or null for a
   * file that is not DICOM (kept in `notDicom`: its row comes after the copy decision).
   */
  record(rel: string, r: FileOutcome): AuditRow | null {
    if (r.note?.kind === 'lost-leading-zeros') {
      this.lostLeadingZeros.files++;
      for (const line of r.note.lines) this.lostLeadingZeros.csvLines.add(line);
    }
    if (r.status === 'not-dicom') {
      this.notDicom.push(rel);
      return null;
    }
    this.counts[r.status]++;
    this.timing.guardMs += r.guardMs ?? 0;
    this.timing.jobMs += r.jobMs ?? 0;
    let message = r.message;
    if (r.status === 'ok' && r.researchId && r.studyKey && r.sessionN !== undefined) {
      // The node later gives a re-sent study of this folder the same session number.
      const links = this.studyLinks.get(r.researchId) ?? new Map<string, number>();
      if (!links.has(r.studyKey)) links.set(r.studyKey, r.sessionN);
      this.studyLinks.set(r.researchId, links);
    }
    if (r.status === 'ok' && r.outRel && r.review) this.review.push({ outputPath: r.outRel, reason: r.review });
    if (r.status === 'ok' && r.leakGuardWarned) this.leakGuardWarned++;
    if (r.status === 'ok' && r.outRel && r.researchId && r.sessionName) {
      const previous = this.outputs.get(r.outRel);
      if (previous !== undefined && previous !== rel) {
        message = [`same output path as ${previous}: one of them was overwritten`, message].filter(Boolean).join('; ');
        this.log?.warn('two input files were written to the same output path');
      }
      this.outputs.set(r.outRel, rel);
      const s = this.sessions.get(r.researchId) ?? new Map<string, number>();
      s.set(r.sessionName, (s.get(r.sessionName) ?? 0) + 1);
      this.sessions.set(r.researchId, s);
      const notes = r.rowLine !== undefined ? (this.rowsByLine.get(r.rowLine)?.notes ?? '') : '';
      if (notes.trim() !== '') {
        const sessionRel = `${r.researchId}/${r.sessionName}`;
        const set = this.notesBySession.get(sessionRel) ?? new Set<string>();
        set.add(notes.trim());
        this.notesBySession.set(sessionRel, set);
      }
      const pf = sourceLayout(rel).patientFolder;
      if (pf !== null) {
        const set = this.researchIdsOfPatientFolder.get(pf) ?? new Set<string>();
        set.add(r.researchId);
        this.researchIdsOfPatientFolder.set(pf, set);
      }
    }
    return {
      sourcePath: rel,
      status: r.status,
      matchedBy: r.matchedBy,
      researchId: r.researchId,
      newAccession: r.accessionNumber,
      dayOffset: r.dayOffset,
      outputPath: r.status === 'ok' ? r.outRel : undefined,
      message,
    };
  }

  /** Records the final row of a file that is not DICOM (left out, for `leftOutReason`, or copied). */
  recordOther(row: AuditRow, leftOutReason?: string): void {
    this.counts['not-dicom']++;
    if (row.outputPath !== undefined) this.otherCopied++;
    if (leftOutReason !== undefined) {
      this.otherFilesLeftOutBy.set(leftOutReason, (this.otherFilesLeftOutBy.get(leftOutReason) ?? 0) + 1);
    }
  }

  /** Records a folder the walk could not read. */
  recordWalkError(): void {
    this.counts.error++;
  }
}
