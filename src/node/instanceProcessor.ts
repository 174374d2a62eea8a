// One received instance, from the spool (or the quarantine, on replay) to the output tree, in
// three steps that can each run for many instances at once:
//   stage:  match -> session index -> de-identify -> atomic write of the output (not yet fsync'd)
//   commit: one transaction of the state (filing records + forward enqueues) -> audit rows
//   retire: fsync the outputs and their folders -> only then delete the source files
// Unmatched or undecodable instances go to quarantine at once, and so does an instance the leak
// guard (core/leakGuard) holds: an identifier of its source found in its output or path. The
// source (a spooled instance, spool/spoolRef.ts: a journal record or a file) is read up to its
// pixel data and after it, and its pixel data copied by range into the output
// (spool/spoolReader.ts), so memory stays bounded whatever the size of an instance. It outlives
// every step until its output is durable, so a crash anywhere means processing it again; that is
// idempotent: the output path and bytes depend only on the instance and the state.
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { newAccessionNumber, sessionFolderName, studySessionKey } from '../core/accession.js';
import { shiftDA } from '../core/dates.js';
import { burnedInVerdict } from '../core/burnedIn.js';
import { deidentifySource, readInstanceKeys, type DeidOptions } from '../core/deidentify.js';
import { describeLeakHits, scanOutput } from '../core/leakGuard/index.js';
import { remapUid } from '../core/uidRemap.js';
import type { MappingTable } from '../core/mapping/mappingTable.js';
import {
  DicomFormatError,
  type DeidInstanceInfo,
  type InstanceKeys,
  type Match,
  type RangedDeidResult,
} from '../core/types.js';
import type { AuditRow, FileStatus } from '../audit/auditLog.js';
import { fsyncPathSync, writeFileAtomicSync, writeFileDurableSync } from '../io/durableWrite.js';
import { SpoolItemReader, type OpenedSpoolItem } from './spool/spoolReader.js';
import { spoolRefName, type SpoolRef } from './spool/spoolRef.js';
import type { StateStore } from '../state/stateStore.js';
import { quarantineFile, type QuarantineReason } from './quarantine.js';

export interface ProcessorDeps {
  state: StateStore;
  mapping: () => MappingTable;
  outputDir: string;
  quarantineDir: string;
  /** Forward destinations ("AET@host:port") every filed instance is queued for. */
  forwardTo: string[];
  audit: (row: AuditRow) => void;
  /** (researchId, study key) -> session number already given. */
  sessionCache?: Map<string, number>;
  /** De-identified Study Instance UID -> the research ID that owns it (owners never change). */
  studyOwnerCache?: Map<string, string>;
  /** File instances whose Burned In Annotation is YES (config allowBurnedIn) instead of quarantining them. */
  allowBurnedIn?: boolean;
  /** Attributes (tags) whose leak guard hits are warnings only (config leakGuardWarnOnly). */
  leakGuardWarnOnly?: ReadonlySet<number>;
  /** Tests only: a broken profile (DeidOptions.testOnlyKeep). */
  deidOptions?: DeidOptions;
}

export interface Source {
  callingAet: string;
  receivedAt: Date;
}

export type Outcome =
  | {
      status: 'filed';
      outputPath: string;
      researchId: string;
      accession: string;
      newSopUid: string;
      /** Its pixels may hold burned-in text: the kind of image that makes it likely (burnedIn.ts). */
      review?: string;
      /** Leak guard hits in warn-only attributes (written to the audit row). */
      leakGuardWarnings?: number;
    }
  | { status: 'quarantined'; reason: QuarantineReason; message: string; file: string }
  /** Replay: still not filed (no mapping row, or held for its reason), left where it was. */
  | { status: 'unmatched'; reason: QuarantineReason; message: string };

/**
 * Instances are staged one at a time per thread (each caller awaits one stageInstance before
 * the next), so one reader (and its buffer for small instances) serves them all; `staging`
 * guards that.
 */
const reader = new SpoolItemReader();
let staging = false;

/** Series folder from de-identified values only: modality, series number, new series UID hash. */
export function seriesFolderName(r: DeidInstanceInfo, consonants = false): string {
  const clean = (s: string) => s.replace(/[^A-Za-z0-9]+/g, '').slice(0, 16);
  const hex = createHash('sha256')
    .update(r.seriesInstanceUid || r.sopInstanceUid)
    .digest('hex')
    .slice(0, 8);
  // The same hash in 16 consonants: no digits (a date, an ID's number) and no word of a name.
  const hash = consonants ? [...hex].map((c) => CONSONANTS[parseInt(c, 16)]).join('') : hex;
  return `${clean(r.modality) || 'OT'}_S${clean(r.seriesNumber) || '0'}_${hash}`;
}

/** The alphabet of seriesFolderName's fallback hash. */
const CONSONANTS = 'bcdfghjklmnpqrst';

/** An instance written to the output tree whose filing is not committed yet. */
export interface Staged {
  /** The spooled instance it came from. */
  ref: SpoolRef;
  outputPath: string;
  rel: string;
  researchId: string;
  sessionN: number;
  accession: string;
  newSopUid: string;
  originalSopUid: string;
  /** StudyInstanceUID as received (a retrieve job counts arrivals per study). */
  originalStudyUid: string;
  callingAet: string;
  /** De-identified values for the status page: the shifted StudyDate (YYYYMMDD or ''), the Modality. */
  studyDate: string;
  modality: string;
  audit: AuditRow;
  /** Listed for review (burned-in text): the kind of image. */
  review?: string;
  /** Leak guard hits in warn-only attributes. */
  leakGuardWarnings: number;
}

/**
 * First step of filing one Part 10 file: match, session number, de-identify, write the output
 * file atomically (made durable by retireStaged). Unmatched or undecodable instances are
 * quarantined at once (or, with `leaveUnmatched` for a quarantine replay, left where they are).
 * One at a time per thread: throws if called while another call has not finished.
 */
export async function stageInstance(
  deps: ProcessorDeps,
  ref: SpoolRef,
  source: Source,
  leaveUnmatched = false,
): Promise<Staged | Outcome> {
  if (staging) throw new Error('stageInstance: one instance at a time per thread');
  staging = true;
  let item: OpenedSpoolItem | undefined;
  try {
    item = reader.open(ref);
    return await stageOne(deps, ref, item, source, leaveUnmatched);
  } finally {
    item?.close();
    staging = false;
  }
}

async function stageOne(
  deps: ProcessorDeps,
  ref: SpoolRef,
  item: OpenedSpoolItem,
  source: Source,
  leaveUnmatched: boolean,
): Promise<Staged | Outcome> {
  const sourceLabel = `${source.callingAet}:${spoolRefName(ref)}`;
  let keys: InstanceKeys;
  try {
    keys = readInstanceKeys(item.source);
  } catch (e) {
    if (!(e instanceof DicomFormatError)) throw e;
    return quarantine(deps, ref, source, 'unreadable', e.message, {}, sourceLabel, leaveUnmatched);
  }
  // The receiver writes the C-STORE request's Affected SOP Class and Instance UIDs in the spooled
  // file's meta, and never parses the data set: here the two are compared. Filed under either,
  // a disagreement would be silent (the sender thinks it stored one instance, we filed another).
  const mismatch = requestMismatch(keys);
  if (mismatch !== null) {
    return quarantine(deps, ref, source, 'uid-mismatch', mismatch, keys, sourceLabel, leaveUnmatched);
  }
  const mapping = deps.mapping();
  const match: Match | null = mapping.match({ patientId: keys.patientId, accessionNumber: keys.accessionNumber });
  if (!match) {
    const note = mapping.unmatchedNote({ patientId: keys.patientId, accessionNumber: keys.accessionNumber });
    return quarantine(
      deps,
      ref,
      source,
      'no-mapping',
      'no mapping row for this patient or accession' + (note ? `; ${note.text}` : ''),
      keys,
      sourceLabel,
      leaveUnmatched,
    );
  }
  const { row } = match;
  const secret = await uidSecretOf(deps.state);
  if (keys.studyInstanceUid !== '') {
    // A study belongs to one patient (PS3.3 C.7.2.1), so to one research patient.
    const owner = await studyOwner(deps, remapUid(keys.studyInstanceUid, secret), row.researchId);
    if (owner !== row.researchId) {
      const why =
        `its study belongs to research patient ${owner}, but this instance matched ${row.researchId} ` +
        `(CSV line ${row.line}); a study belongs to one patient`;
      return quarantine(deps, ref, source, 'study-patient-conflict', why, keys, sourceLabel, leaveUnmatched);
    }
  }
  const burnedIn = burnedInVerdict(keys);
  if (burnedIn?.kind === 'declared' && !deps.allowBurnedIn) {
    const why = `${burnedIn.reason}, so its pixels may show who the patient is (config allowBurnedIn files such instances)`;
    return quarantine(deps, ref, source, 'burned-in', why, keys, sourceLabel, leaveUnmatched);
  }
  const review =
    burnedIn === null
      ? undefined
      : burnedIn.kind === 'review'
        ? { kind: burnedIn.imageKind, reason: burnedIn.reason }
        : { kind: 'Burned In Annotation YES', reason: `${burnedIn.reason} (allowBurnedIn)` };
  const n = await sessionIndex(deps, row.researchId, studySessionKey(keys.accessionNumber, keys.studyInstanceUid));
  const accession = newAccessionNumber(row.researchId, n);
  const supplied = {
    researchId: row.researchId,
    accessionNumber: accession,
    dayOffset: row.dayOffset,
    notes: row.notes,
  };
  let result: RangedDeidResult;
  try {
    result = deidentifySource(item.source, { ...supplied, uidSecret: secret }, deps.deidOptions);
  } catch (e) {
    if (!(e instanceof DicomFormatError)) throw e;
    return quarantine(deps, ref, source, 'not-deidentifiable', e.message, keys, sourceLabel, leaveUnmatched);
  }
  const sessionName = sessionFolderName(row.researchId, n);
  const sessionDir = join(deps.outputDir, row.researchId, sessionName);
  // The leak guard reads what would be filed (and so forwarded: the filed file is what is sent)
  // before it is written, and the notes.txt its row adds to its session folder.
  const scan = (path: string) =>
    scanOutput({
      head: result.head,
      pixelData: result.pixelData,
      tail: result.tail,
      path,
      sidecars:
        row.notes.trim() !== '' ? [{ path: `${row.researchId}/${sessionName}/notes.txt`, text: row.notes.trim() }] : [],
      source: result.sourceValues,
      supplied,
      warnOnly: deps.leakGuardWarnOnly,
      cohort: mapping.cohort(),
    });
  const relOf = (series: string) => [row.researchId, sessionName, series, `${result.sopInstanceUid}.dcm`].join('/');
  let series = seriesFolderName(result);
  let hits = scan(relOf(series));
  if (hits.some((h) => h.where === 'output path')) {
    // The series folder's hex hash can spell a patient's number by chance ('CT_S1_0002a784' for
    // P0002: a false hold the suite met). The same hash in consonants, decided alike for every
    // instance of the series (the same patient's values): taken when it clears the path.
    const other = seriesFolderName(result, true);
    const otherHits = scan(relOf(other));
    if (!otherHits.some((h) => h.where === 'output path')) [series, hits] = [other, otherHits];
  }
  const outputPath = join(sessionDir, series, `${result.sopInstanceUid}.dcm`);
  const rel = relative(deps.outputDir, outputPath);
  const held = hits.filter((h) => h.action === 'hold');
  const warned = hits.filter((h) => h.action === 'warn');
  const warning = warned.length > 0 ? `leak guard warning: ${describeLeakHits(warned)}` : '';
  if (held.length > 0) {
    const message = [describeLeakHits(held), warning].filter(Boolean).join('; ');
    return quarantine(deps, ref, source, 'leak-guard', message, keys, sourceLabel, leaveUnmatched);
  }
  const pixels = result.pixelData ? [item.piece(result.pixelData)] : [];
  writeFileAtomicSync(outputPath, [...result.head, ...pixels, ...result.tail], 0o644);
  if (row.notes.trim() !== '') {
    const notesFile = join(sessionDir, 'notes.txt');
    const text = row.notes.trim() + '\n';
    let current: string | null = null;
    try {
      current = readFileSync(notesFile, 'utf8');
    } catch {
      current = null;
    }
    if (current !== text) writeFileDurableSync(notesFile, text);
  }
  return {
    ref,
    outputPath,
    rel,
    researchId: row.researchId,
    sessionN: n,
    accession,
    newSopUid: result.sopInstanceUid,
    originalSopUid: keys.sopInstanceUid,
    originalStudyUid: keys.studyInstanceUid,
    callingAet: source.callingAet,
    studyDate: keys.studyDate ? shiftDA(keys.studyDate, row.dayOffset) : '',
    modality: result.modality,
    review: review?.kind,
    leakGuardWarnings: warned.length,
    audit: {
      sourcePath: `${sourceLabel} (${keys.sopInstanceUid})`,
      status: 'ok',
      matchedBy: match.matchedBy,
      researchId: row.researchId,
      newAccession: accession,
      dayOffset: row.dayOffset,
      outputPath: rel,
      message: [warning, match.note?.text, review && `review: ${review.reason}`, ...result.notices]
        .filter(Boolean)
        .join('; '),
    },
  };
}

/**
 * Second step, for any number of staged instances at once (group commit): record every filing
 * and its forward enqueues in one transaction of the state, and write the audit rows. The
 * source files stay until retireStaged.
 */
export async function commitStaged(deps: ProcessorDeps, staged: Staged[]): Promise<Outcome[]> {
  if (staged.length === 0) return [];
  await deps.state.fileInstances(
    staged.map((s) => ({
      newSopUid: s.newSopUid,
      originalSopUid: s.originalSopUid,
      originalStudyUid: s.originalStudyUid || null,
      researchId: s.researchId,
      sessionN: s.sessionN,
      outputPath: s.rel,
      callingAet: s.callingAet,
      forwardFile: s.outputPath,
      studyDate: s.studyDate,
      modality: s.modality,
    })),
    deps.forwardTo,
  );
  for (const s of staged) deps.audit(s.audit);
  return staged.map((s) => ({
    status: 'filed',
    outputPath: s.rel,
    researchId: s.researchId,
    accession: s.accession,
    newSopUid: s.newSopUid,
    ...(s.review !== undefined ? { review: s.review } : {}),
    ...(s.leakGuardWarnings > 0 ? { leakGuardWarnings: s.leakGuardWarnings } : {}),
  }));
}

/**
 * Narrows a processing result: true for a Staged instance (written, to be filed), false for a final Outcome
 * (quarantined, failed...).
 */
export function isStaged(x: Staged | Outcome): x is Staged {
  return (x as Staged).outputPath !== undefined && (x as Outcome).status === undefined;
}

/**
 * Last step, for committed instances (a checkpoint): fsync each output file and each output
 * folder once, then delete the source files (a spool journal record is released by the node's
 * main thread, which owns the journal). Throws on an I/O error before deleting anything.
 */
export function retireStaged(staged: Pick<Staged, 'ref' | 'outputPath'>[]): void {
  for (const s of staged) fsyncPathSync(s.outputPath);
  for (const dir of new Set(staged.map((s) => dirname(s.outputPath)))) fsyncPathSync(dir);
  for (const { ref } of staged) if (ref.kind === 'file') rmSync(ref.path, { force: true });
}

/** Files one Part 10 file completely (stage + commit + retire). */
export async function processInstance(
  deps: ProcessorDeps,
  ref: SpoolRef,
  source: Source,
  leaveUnmatched = false,
): Promise<Outcome> {
  const staged = await stageInstance(deps, ref, source, leaveUnmatched);
  if (!isStaged(staged)) return staged;
  const outcome = (await commitStaged(deps, [staged]))[0]!;
  retireStaged([staged]);
  return outcome;
}

/**
 * The state's UID secret, one Buffer per state: StateStore.uidSecret() returns a new copy on
 * every call, and deidentify keeps its UID remapping cache per secret Buffer.
 */
const uidSecrets = new WeakMap<StateStore, Buffer>();
async function uidSecretOf(state: StateStore): Promise<Buffer> {
  let secret = uidSecrets.get(state);
  if (secret === undefined) {
    secret = await state.uidSecret();
    uidSecrets.set(state, secret);
  }
  return secret;
}

/**
 * Why the C-STORE request and its data set disagree on the instance (both UIDs named: this goes
 * to the audit log and the quarantine, never the application log), or null when they agree or
 * the file has no meta to compare with.
 */
function requestMismatch(keys: InstanceKeys): string | null {
  const parts: string[] = [];
  for (const [what, request, dataSet] of [
    ['SOP Instance UID', keys.metaSopInstanceUid, keys.sopInstanceUid],
    ['SOP Class UID', keys.metaSopClassUid, keys.sopClassUid],
  ] as const) {
    if (request !== '' && request !== dataSet) {
      parts.push(`the C-STORE request's Affected ${what} is ${request}, the data set's ${what} ${dataSet}`);
    }
  }
  return parts.length === 0 ? null : `${parts.join('; ')}: filed under neither`;
}

/** Claims the study for `researchId` (StateStore.claimStudies), or gives its owner; cached per processor. */
async function studyOwner(deps: ProcessorDeps, studyUid: string, researchId: string): Promise<string> {
  let owner = deps.studyOwnerCache?.get(studyUid);
  if (owner === undefined) {
    owner = (await deps.state.claimStudies([{ studyUid, researchId }]))[0]!;
    deps.studyOwnerCache?.set(studyUid, owner);
  }
  return owner;
}

/** Session numbers never change once given, so they are cached per processor. */
async function sessionIndex(deps: ProcessorDeps, researchId: string, key: string): Promise<number> {
  const cacheKey = `${researchId}\0${key}`;
  let n = deps.sessionCache?.get(cacheKey);
  if (n === undefined) {
    n = await deps.state.sessionIndex(researchId, key);
    deps.sessionCache?.set(cacheKey, n);
  }
  return n;
}

/** The audit status of a quarantined instance, by reason (otherwise `error`). */
const AUDIT_STATUS: Partial<Record<QuarantineReason, FileStatus>> = {
  'no-mapping': 'no-mapping',
  'study-patient-conflict': 'conflict',
  'burned-in': 'held',
  'leak-guard': 'leak-guard',
};

function quarantine(
  deps: ProcessorDeps,
  ref: SpoolRef,
  source: Source,
  reason: QuarantineReason,
  message: string,
  keys: Partial<InstanceKeys>,
  sourceLabel: string,
  leave: boolean,
): Outcome {
  if (leave) {
    if (reason === 'leak-guard') {
      // A replay that now matches, but whose output the guard holds: say so in the audit log.
      deps.audit({
        sourcePath: `${sourceLabel}${keys.sopInstanceUid ? ` (${keys.sopInstanceUid})` : ''}`,
        status: reason,
        outputPath: '',
        message: `left in quarantine (leak-guard): ${message}`,
      });
    }
    return { status: 'unmatched', reason, message };
  }
  const dest = quarantineFile(deps.quarantineDir, ref, {
    reason,
    message,
    receivedAt: source.receivedAt.toISOString(),
    callingAet: source.callingAet,
    keys: {
      patientId: keys.patientId,
      accessionNumber: keys.accessionNumber,
      studyInstanceUid: keys.studyInstanceUid,
      sopInstanceUid: keys.sopInstanceUid,
      studyDate: keys.studyDate,
    },
  });
  deps.audit({
    sourcePath: `${sourceLabel}${keys.sopInstanceUid ? ` (${keys.sopInstanceUid})` : ''}`,
    status: AUDIT_STATUS[reason] ?? 'error',
    outputPath: '',
    message: `quarantined (${reason}): ${message} -> ${dest}`,
  });
  return { status: 'quarantined', reason, message, file: dest };
}
