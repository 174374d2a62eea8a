// Session numbers N of `{New_Patient_ID}_{N}` during a batch run (README "The output tree").
// The main thread is the only user of the state: workers ask it (protocol.ts SessionRequest).
//
// The first time a research patient's patient folder is asked about, all its session folders
// are numbered at once, in code point order, so a rerun and a folder added later agree; a folder
// not numbered yet whose study the node numbered first takes that number. Files outside any
// session folder are numbered by study, in order of arrival (the pool sends them last).
import fs from 'node:fs';
import path from 'node:path';
import { studySessionKey } from '../core/accession.js';
import { readInstanceKeys } from '../core/deidentify.js';
import { FileByteSource } from '../io/fileByteSource.js';
import type { StateStore } from '../state/stateStore.js';
import type { TreeInventory } from './inventory.js';
import { folderSessionKey } from './layout.js';

/** What the numbering needs of the state: the StateStore, or a preview that assigns nothing. */
export type SessionNumberSource = Pick<StateStore, 'sessionIndices' | 'knownSessionIndex'>;

/** One question: the number of session `key` (folder or study key) of `researchId`. */
export interface SessionQuestion {
  researchId: string;
  /** The patient folder the asking file is in (null: a file at the top of the input). */
  patientFolder: string | null;
  key: string;
}

/** How many files of a session folder are tried to find the study in it. */
const STUDY_PROBE_FILES = 5;

/**
 * Session numbers for a batch run (see above), asked of `source` (the StateStore, or a SessionPreview for
 * --dry-run) one question at a time and cached for the run.
 */
export class SessionNumbers {
  /** `researchId \0 key` -> N. */
  private readonly cache = new Map<string, number>();
  /** `researchId \0 patientFolder` whose session folders are numbered. */
  private readonly numberedFolders = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();

  /**
   * `source`: where numbers are assigned; `inputDir`: the input tree's root (files are read from it to find
   * the study of a session folder); `inventory`: the walked tree.
   */
  constructor(
    private readonly source: SessionNumberSource,
    private readonly inputDir: string,
    private readonly inventory: TreeInventory,
  ) {}

  /**
   * The session number for `q`, assigned in the state when new. Questions are answered one at a
   * time, in the order asked: a patient folder's numbers are all assigned (in folder order)
   * before any other question of that patient is looked at. Rejects with the state's error.
   */
  index(q: SessionQuestion): Promise<number> {
    const n = this.queue.then(() => this.assign(q));
    this.queue = n.catch(() => undefined);
    return n;
  }

  /** A number this run already knows, without asking the state. */
  known(researchId: string, key: string): number | undefined {
    return this.cache.get(researchId + '\0' + key);
  }

  private async assign(q: SessionQuestion): Promise<number> {
    const ck = (k: string) => q.researchId + '\0' + k;
    if (q.patientFolder !== null) await this.numberFolders(q.researchId, q.patientFolder);
    let n = this.cache.get(ck(q.key));
    if (n === undefined) {
      n = (await this.source.sessionIndices(q.researchId, [q.key])).get(q.key);
      if (n === undefined) throw new Error('state database returned no session index');
      this.cache.set(ck(q.key), n);
    }
    return n;
  }

  /** Numbers every session folder of `patientFolder` for `researchId`, once. */
  private async numberFolders(researchId: string, patientFolder: string): Promise<void> {
    const pk = researchId + '\0' + patientFolder;
    if (this.numberedFolders.has(pk)) return;
    this.numberedFolders.add(pk);
    const folders = this.inventory.sessionFolders.get(patientFolder) ?? [];
    if (folders.length === 0) return;
    const keys = folders.map((s) => folderSessionKey(patientFolder, s));
    // A folder not numbered yet may hold a study the node numbered first: it takes that number.
    const sameAs = new Map<string, string>();
    for (const [i, s] of folders.entries()) {
      if ((await this.source.knownSessionIndex(researchId, keys[i]!)) !== undefined) continue;
      const study = this.studyKeyOfSession(patientFolder, s);
      if (study !== undefined) sameAs.set(keys[i]!, study);
    }
    for (const [k, n] of await this.source.sessionIndices(researchId, keys, sameAs)) {
      this.cache.set(researchId + '\0' + k, n);
    }
  }

  /** The session key of the study in a session folder: that of its first readable DICOM file. */
  private studyKeyOfSession(patientFolder: string, sessionFolder: string): string | undefined {
    const files = this.inventory.filesOfSession.get(`${patientFolder}/${sessionFolder}`) ?? [];
    for (const rel of files.slice(0, STUDY_PROBE_FILES)) {
      let fd: number | undefined;
      try {
        fd = fs.openSync(path.join(this.inputDir, ...rel.split('/')), 'r');
        const source = new FileByteSource(fd); // read up to the pixel data and after it only
        if (!source.isDicom()) continue;
        const keys = readInstanceKeys(source);
        return studySessionKey(keys.accessionNumber, keys.studyInstanceUid);
      } catch {
        // unreadable or not de-identifiable: its worker reports it; try the next file
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
    }
    return undefined;
  }
}
