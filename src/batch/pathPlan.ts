// The names below the session folder in the output tree (README "The output tree"). Pure: the
// survey (survey.ts) feeds it every input file's identifying values first, then it decides.
//
// A folder or file name that holds an identifier of a patient whose files it holds is replaced:
// a folder by `folder_<hmac>` (layout.hashedFolderName), a DICOM file by `<new SOP UID>.dcm`; a
// non-DICOM file is left out. A folder is judged against every patient with a file anywhere
// below it (so one decision holds for all of them), and against the values of files no row
// matched too (not written, but the folder may hold others that are). A file is judged against
// its patient. A patient's identifiers are those of all its files and rows: PatientName parts,
// PatientID, Other Patient IDs, AccessionNumber, birth date, the MRNs and accessions of its CSV
// rows, the names of the patient folders holding its files; and any source UID of the tree.
// A date in a kept name is moved by the day offset of the files below it (a file: its own);
// when they have several offsets, or the date's day and month cannot be told apart, the name is
// replaced instead.
import {
  CohortMatcher,
  IdentifierMatcher,
  findDates,
  identifiersOf,
  shiftDatesInName,
  type CohortEntry,
  type Identifier,
  type IdentifierKind,
  type IdentifyingValues,
} from '../core/identifiers/index.js';
import type { MappingRow } from '../core/types.js';
import { hashedFolderName, sourceLayout } from './layout.js';

/** The identifier kinds that make a path name identifying. */
const PATH_KINDS: ReadonlySet<IdentifierKind> = new Set([
  'patient-name',
  'patient-id',
  'other-patient-id',
  'accession-number',
  'birth-date',
]);

/** What the survey found in one DICOM file. */
export interface SurveyedFile {
  /** Relative source path, '/' separated. */
  rel: string;
  /** Research ID and day offset of the row it matched; null when no row matches. */
  researchId: string | null;
  dayOffset: number | null;
  values: IdentifyingValues;
}

/** Where a file goes below its session folder. */
export interface PlannedPath {
  /** The research ID the plan assumed (the row the survey matched, or the patient folder's). */
  researchId: string;
  /** Output folder names below the session folder. */
  dirs: string[];
  /** The output file name; null: a DICOM file is named `<new SOP UID>.dcm`, another file is left out. */
  fileName: string | null;
}

interface Patient {
  keys: Set<string>;
  identifiers: Identifier[];
  offsets: Set<number>;
  matcher: IdentifierMatcher | null;
}

interface Folder {
  patients: Set<string>;
  offsets: Set<number>;
  /** Identifiers of files no row matched. */
  strays: Identifier[];
  strayKeys: Set<string>;
}

/**
 * Every file's identifiers (addFile), then the names below each session folder (dicomPath,
 * otherPath). Folder decisions are cached, so each folder gets one name whoever asks.
 */
export class PathPlan {
  private readonly patients = new Map<string, Patient>();
  private readonly folders = new Map<string, Folder>();
  private readonly files = new Map<string, { researchId: string | null; dayOffset: number | null }>();
  /** Research IDs with files in each patient folder. */
  private readonly ofPatientFolder = new Map<string, Set<string>>();
  private readonly uids = new IdentifierMatcher();
  private readonly folderNames = new Map<string, string>();

  /**
   * The identifiers of every patient of the run, each owned by its research ID (a file no row
   * matched: by STRAY): the CSV's MRNs and Accessions, and the names and IDs of every file read.
   * A name holding one of another patient's is replaced too, and the leak guard of every written
   * file looks for them (the workers get `cohortEntries`).
   */
  readonly cohortEntries: CohortEntry[] = [];
  private readonly cohortKeys = new Set<string>();
  private cohortMatcher: CohortMatcher | undefined;

  /** `secret`: the project secret that keys the folder HMAC. */
  constructor(
    rows: readonly MappingRow[],
    private readonly secret: Buffer,
  ) {
    for (const row of rows) {
      const p = this.patient(row.researchId);
      if (row.mrn) this.addTo(p, { kind: 'mrn', value: row.mrn });
      if (row.accession) this.addTo(p, { kind: 'csv-accession', value: row.accession });
      p.offsets.add(row.dayOffset);
      if (row.mrn) this.addToCohort({ kind: 'mrn', value: row.mrn, owner: row.researchId });
      if (row.accession) this.addToCohort({ kind: 'csv-accession', value: row.accession, owner: row.researchId });
    }
  }

  private addToCohort(e: CohortEntry): void {
    const key = `${e.kind}\0${e.value}\0${e.owner}`;
    if (this.cohortKeys.has(key)) return;
    this.cohortKeys.add(key);
    this.cohortEntries.push(e);
    this.cohortMatcher = undefined;
  }

  /** The cohort's identifiers found in `text`, of patients other than `except` ('' for anyone's). */
  private cohortFind(text: string, except = ''): IdentifierKind[] {
    this.cohortMatcher ??= CohortMatcher.of(this.cohortEntries);
    return this.cohortMatcher.find(text, except);
  }

  private patient(researchId: string): Patient {
    let p = this.patients.get(researchId);
    if (!p)
      this.patients.set(researchId, (p = { keys: new Set(), identifiers: [], offsets: new Set(), matcher: null }));
    return p;
  }

  private addTo(p: Patient, id: Identifier): void {
    const key = `${id.kind}\0${id.value}`;
    if (p.keys.has(key)) return;
    p.keys.add(key);
    p.identifiers.push(id);
    p.matcher = null;
  }

  /** Records one DICOM file the survey read (call for every file before asking for paths). */
  addFile(f: SurveyedFile): void {
    const layout = sourceLayout(f.rel);
    this.files.set(f.rel, { researchId: f.researchId, dayOffset: f.dayOffset });
    for (const uid of f.values.uids) this.uids.add({ kind: 'uid', value: uid });
    const ids = identifiersOf(f.values, PATH_KINDS);
    for (const id of ids) {
      if (id.kind === 'birth-date') continue;
      // The names of files no row matches are most often phantoms and QA scans ('PHANTOM^HEAD',
      // 'QA^WATER'): words that every other study uses. Their IDs are looked for, not their names.
      if (f.researchId === null && id.kind === 'patient-name') continue;
      this.addToCohort({ ...id, owner: f.researchId ?? STRAY });
    }
    if (layout.patientFolder !== null) ids.push({ kind: 'patient-folder', value: layout.patientFolder });
    if (f.researchId !== null) {
      const p = this.patient(f.researchId);
      for (const id of ids) this.addTo(p, id);
      if (layout.patientFolder !== null) {
        const set = this.ofPatientFolder.get(layout.patientFolder) ?? new Set<string>();
        set.add(f.researchId);
        this.ofPatientFolder.set(layout.patientFolder, set);
      }
    }
    for (const dir of deeperDirPaths(f.rel)) {
      const folder = this.folder(dir);
      if (f.researchId !== null) folder.patients.add(f.researchId);
      if (f.dayOffset !== null) folder.offsets.add(f.dayOffset);
      if (f.researchId === null) {
        for (const id of ids) {
          const key = `${id.kind}\0${id.value}`;
          if (!folder.strayKeys.has(key)) {
            folder.strayKeys.add(key);
            folder.strays.push(id);
          }
        }
      }
    }
  }

  private folder(dir: string): Folder {
    let f = this.folders.get(dir);
    if (!f) this.folders.set(dir, (f = { patients: new Set(), offsets: new Set(), strays: [], strayKeys: new Set() }));
    return f;
  }

  private matcherOf(researchId: string): IdentifierMatcher {
    const p = this.patient(researchId);
    if (!p.matcher) p.matcher = new IdentifierMatcher(p.identifiers);
    return p.matcher;
  }

  /** True when `name` holds an identifier of one of `researchIds`, of `strays`, or a source UID. */
  private identifying(name: string, researchIds: Iterable<string>, strays: Identifier[] = []): boolean {
    if (this.uids.matches(name)) return true;
    if (this.cohortFind(name).length > 0) return true; // any patient's of the run, by the cohort's rules
    for (const id of researchIds) if (this.matcherOf(id).matches(name)) return true;
    return strays.length > 0 && new IdentifierMatcher(strays).matches(name);
  }

  /** The day offset of a set of files, or null when there is none or several. */
  private static single(offsets: Set<number>): number | null {
    return offsets.size === 1 ? [...offsets][0]! : null;
  }

  /** The output name of a folder below a session folder (`dir`: its relative source path). */
  private folderName(dir: string): string {
    const cached = this.folderNames.get(dir);
    if (cached !== undefined) return cached;
    const name = dir.slice(dir.lastIndexOf('/') + 1);
    const f = this.folders.get(dir);
    let patients: Set<string> = f?.patients ?? new Set();
    let offsets: Set<number> = f?.offsets ?? new Set();
    if (patients.size === 0 && (f?.strays.length ?? 0) === 0) {
      // Only non-DICOM files below it: the patients of its patient folder.
      patients = this.ofPatientFolder.get(dir.slice(0, dir.indexOf('/'))) ?? new Set();
      offsets = new Set([...patients].flatMap((id) => [...this.patient(id).offsets]));
    }
    let out: string;
    if (this.identifying(name, patients, f?.strays)) out = hashedFolderName(this.secret, dir);
    else out = this.withDatesMoved(name, PathPlan.single(offsets)) ?? hashedFolderName(this.secret, dir);
    this.folderNames.set(dir, out);
    return out;
  }

  /** `name` with its dates moved by `offset`; null when it has a date that cannot be moved. */
  private withDatesMoved(name: string, offset: number | null): string | null {
    if (findDates(name.normalize('NFKC')).length === 0) return name;
    return offset === null ? null : shiftDatesInName(name, offset);
  }

  private dirs(rel: string): string[] {
    return deeperDirPaths(rel).map((d) => this.folderName(d));
  }

  /**
   * The output path below the session folder of a DICOM file the survey read, or null when the
   * survey had no row for it (it is then not written).
   */
  dicomPath(rel: string): PlannedPath | null {
    const f = this.files.get(rel);
    if (!f || f.researchId === null || f.dayOffset === null) return null;
    const name = rel.slice(rel.lastIndexOf('/') + 1);
    const fileName = this.identifying(name, [f.researchId]) ? null : this.withDatesMoved(name, f.dayOffset);
    return { researchId: f.researchId, dirs: this.dirs(rel), fileName };
  }

  /**
   * Why the text of a file of patient `researchId` must not be copied, or null when it may: it
   * holds one of the patient's identifiers (matched as in names: the kinds found are named, never
   * the value), a source UID of the tree, or a date (a copied file is not changed, so its dates
   * cannot be moved by the day offset).
   */
  textProblem(text: string, researchId: string): string | null {
    const kinds = new Set([...this.matcherOf(researchId).find(text), ...this.uids.find(text)]);
    if (kinds.size > 0) return `its text holds an identifier of the patient (${[...kinds].sort().join(', ')})`;
    const others = this.cohortFind(text, researchId);
    if (others.length > 0) return `its text holds an identifier of another patient (${others.sort().join(', ')})`;
    if (findDates(text.normalize('NFKC')).length > 0) return 'its text holds a date (dates are moved, a copy is not)';
    return null;
  }

  /** The output path below the session folder of a non-DICOM file of patient `researchId`. */
  otherPath(rel: string, researchId: string): PlannedPath {
    const name = rel.slice(rel.lastIndexOf('/') + 1);
    const fileName = this.identifying(name, [researchId])
      ? null
      : this.withDatesMoved(name, PathPlan.single(this.patient(researchId).offsets));
    return { researchId, dirs: this.dirs(rel), fileName };
  }
}

/** The owner of the identifiers of files no mapping row matched (never a research ID, never ''). */
const STRAY = '\u0000no mapping row';

/** The relative paths of the folders of `rel` below its session folder, outermost first. */
function deeperDirPaths(rel: string): string[] {
  const parts = rel.split('/');
  const out: string[] = [];
  for (let i = 3; i < parts.length; i++) out.push(parts.slice(0, i).join('/'));
  return out;
}
