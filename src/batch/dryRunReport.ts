// The plan `batch --dry-run` prints: per research patient, each source session folder with the
// session it becomes (`{New_Patient_ID}_{N}`, new or already in the state), the rules its files
// matched by and its files per status; then every file a run would leave out, and why. It shows
// source paths: it is for the researcher who holds the key (like check-csv), never to be shared.
import { zeroFileCounts, type FileStatus } from '../audit/auditLog.js';
import type { MatchedBy } from '../core/types.js';
import { sourceLayout } from './layout.js';
import { plural } from '../words.js';
import { exitCodeOf, sessionOrder } from './summary.js';

/** What a run would do with one file. */
export interface PlannedFile {
  /** Relative source path ('/'-separated); a folder the walk could not read, for an error. */
  rel: string;
  status: FileStatus;
  /** Why it would not be de-identified (or, not DICOM, left out). */
  message?: string;
  researchId?: string;
  matchedBy?: MatchedBy;
  /** `{New_Patient_ID}_{N}`, and whether N is new (not in the state yet). */
  session?: string;
  newSession?: boolean;
  /** A name below the session folder changes (it holds an identifier, or a date that moves). */
  renamed?: boolean;
  /** Not DICOM, copied there (relative to the output) with --copy-other-files. */
  copiedTo?: string;
}

/** At most this many files are listed in "Left out, and why" (a run's audit log has them all). */
const LIST_LIMIT = 200;

/** A group of source files: a session folder, a patient folder's other files, or the top level. */
function unitOf(rel: string): string {
  const l = sourceLayout(rel);
  if (l.patientFolder === null) return '(top level of the input)';
  if (l.sessionFolder === null) return `${l.patientFolder} (outside session folders)`;
  return `${l.patientFolder}/${l.sessionFolder}`;
}

function countBy<T>(items: readonly T[], key: (t: T) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of items) m.set(key(t), (m.get(key(t)) ?? 0) + 1);
  return m;
}

/** "6 files: 4 to de-identify (matched by mrn), 1 unreadable, 1 not DICOM (copied)" */
function unitDetail(files: readonly PlannedFile[], researchId: string | null): string {
  const ok = files.filter((f) => f.status === 'ok' && (researchId === null || f.researchId === researchId));
  const parts: string[] = [];
  if (ok.length > 0) {
    const rules = [...countBy(ok, (f) => f.matchedBy ?? '')];
    const by = rules.length === 1 ? rules[0]![0] : rules.map(([r, n]) => `${r} ${n}`).join(', ');
    const renamed = ok.filter((f) => f.renamed).length;
    parts.push(`${ok.length} to de-identify (matched by ${by}${renamed ? `; ${renamed} with a name changed` : ''})`);
  }
  const noRow = files.filter((f) => f.status === 'no-mapping').length;
  if (noRow) parts.push(`${noRow} without a mapping row`);
  const bad = files.filter((f) => f.status === 'error').length;
  if (bad) parts.push(`${bad} unreadable`);
  const held = files.filter((f) => f.status === 'held').length;
  if (held) parts.push(`${held} held (burned-in annotation)`);
  const conflict = files.filter((f) => f.status === 'conflict').length;
  if (conflict) parts.push(`${conflict} held (study of another research patient)`);
  const dicomdir = files.filter((f) => f.status === 'dicomdir').length;
  if (dicomdir) parts.push(`${dicomdir} DICOMDIR (left out)`);
  const copied = files.filter((f) => f.status === 'not-dicom' && f.copiedTo).length;
  const leftOut = files.filter((f) => f.status === 'not-dicom' && !f.copiedTo).length;
  if (copied) parts.push(`${copied} not DICOM (copied)`);
  if (leftOut) parts.push(`${leftOut} not DICOM (left out)`);
  return `${plural(files.length, 'file')}: ${parts.join(', ')}`;
}

/**
 * Prints the plan of `files` through `say`; returns the exit status a run would have: 1 when
 * some DICOM file would not be de-identified, or none would.
 */
export function printDryRun(
  files: readonly PlannedFile[],
  where: { input: string; state: string | null; dbPath: string },
  say: (line: string) => void,
): 0 | 1 {
  say('Dry run: nothing is written, not even the state. This plan shows source paths: it is for the');
  say('researcher who holds the key, never to be shared.');
  say(`Input: ${where.input} (${plural(files.length, 'file')})`);
  say(
    where.state
      ? `Session numbers: "known" ones are in the state ${where.state}; "new" ones would be assigned`
      : `Session numbers: no state yet at ${where.dbPath}: every session would be new`,
  );

  const units = new Map<string, PlannedFile[]>();
  for (const f of files) {
    const u = unitOf(f.rel);
    const list = units.get(u);
    if (list) list.push(f);
    else units.set(u, [f]);
  }
  // Research patient -> unit -> the sessions its files go to.
  const patients = new Map<string, Map<string, Map<string, boolean>>>();
  const orphanUnits: string[] = [];
  for (const [unit, list] of units) {
    const ok = list.filter((f) => f.status === 'ok');
    if (ok.length === 0) orphanUnits.push(unit);
    for (const f of ok) {
      const byUnit = patients.get(f.researchId!) ?? new Map<string, Map<string, boolean>>();
      const sessions = byUnit.get(unit) ?? new Map<string, boolean>();
      sessions.set(f.session!, f.newSession === true);
      byUnit.set(unit, sessions);
      patients.set(f.researchId!, byUnit);
    }
  }
  for (const id of [...patients.keys()].sort()) {
    const byUnit = patients.get(id)!;
    const all = new Map<string, boolean>();
    for (const s of byUnit.values()) for (const [name, isNew] of s) all.set(name, isNew);
    const fileCount = files.filter((f) => f.status === 'ok' && f.researchId === id).length;
    say('');
    say(`${id}: ${plural(all.size, 'session')}, ${plural(fileCount, 'file')} to de-identify`);
    const lines = [...byUnit].map(([unit, sessions]) => {
      const names = [...sessions].sort(([a], [b]) => sessionOrder(a, b));
      const first = names[0]![0];
      const target = names.map(([n, isNew]) => `${n} (${isNew ? 'new' : 'known'})`).join(', ');
      return { first, text: `  ${unit} -> ${target}: ${unitDetail(units.get(unit)!, id)}` };
    });
    lines.sort((a, b) => sessionOrder(a.first, b.first));
    for (const l of lines) say(l.text);
  }
  if (orphanUnits.length > 0) {
    say('');
    say('Without a research patient (nothing de-identified):');
    for (const unit of orphanUnits) say(`  ${unit}: ${unitDetail(units.get(unit)!, null)}`);
  }

  const leftOut = files.filter((f) => f.status !== 'ok' && !f.copiedTo);
  if (leftOut.length > 0) {
    say('');
    say('Left out, and why:');
    for (const f of leftOut.slice(0, LIST_LIMIT)) say(`  ${f.rel}: ${f.message ?? 'not DICOM: left out'}`);
    if (leftOut.length > LIST_LIMIT) say(`  ... and ${leftOut.length - LIST_LIMIT} more`);
  }

  const counts: Record<FileStatus, number> = zeroFileCounts();
  for (const f of files) counts[f.status]++;
  const copied = files.filter((f) => f.copiedTo).length;
  const rare = [
    counts.held + counts.conflict > 0 ? `${counts.held + counts.conflict} held` : '',
    counts.dicomdir > 0 ? `${counts.dicomdir} DICOMDIR` : '',
  ].filter(Boolean);
  say('');
  say(
    `A run would de-identify ${counts.ok} of ${plural(files.length, 'file')}; ${counts['no-mapping']} without a mapping row, ` +
      `${counts.error} unreadable, ${rare.map((r) => r + ', ').join('')}${counts['not-dicom']} not DICOM ` +
      `(${copied} copied, ${counts['not-dicom'] - copied} left out).`,
  );
  // The leak guard judges each output as it is made: the dry run cannot say (a new-user trial
  // counted 25 predicted and 23 written, and did not know why).
  if (counts.ok > 0) say('The leak guard reads each file as it is written: a run may hold some of these (exit 1).');
  return exitCodeOf(counts);
}
