// The identifiers of a run's other patients (src/core/identifiers/cohortMatcher.ts), and the leak
// guard holding an output that names another patient of the mapping CSV or of the tree (found by
// a new-user trial: 'prior of ROE JANE 7654321' in a SeriesDescription reached the research PACS,
// the guard looking only for the file's own patient). Made-up patients only.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deidentifySource } from '../../src/core/deidentify.js';
import { CohortMatcher } from '../../src/core/identifiers/index.js';
import { describeLeakHits, scanOutput } from '../../src/core/leakGuard/index.js';
import { MappingTable } from '../../src/core/mapping/mappingTable.js';
import type { DeidPlan, MappingRow } from '../../src/core/types.js';

function row(line: number, mrn: string, accession: string, researchId: string): MappingRow {
  return {
    line,
    mrn,
    accession,
    researchId,
    surgeryDate: '2025-01-01',
    anchorDate: '2024-06-15',
    dayOffset: -200,
    notes: '',
  };
}

describe('cohort matcher', () => {
  const cohort = new CohortMatcher();
  cohort.addId('mrn', '7654321', 'RS_2');
  cohort.addId('csv-accession', 'ACC-3003A', 'RS_3');
  cohort.addId('mrn', '0042517', 'RS_4');
  cohort.addId('mrn', '2024', 'RS_5'); // too short to hold anything on: a year
  cohort.addName('patient-name', 'ROE^JANE', 'RS_2');
  cohort.addName('patient-name', 'HEAD^TOM', 'RS_6');
  cohort.addName('patient-name', '山田^太郎', 'RS_7');

  it('finds an ID as a word, joined across punctuation, or as a number not touching other digits', () => {
    expect(cohort.find('prior of 7654321', 'RS_1')).toEqual(['mrn']);
    expect(cohort.find('IM_7654321.dcm', 'RS_1')).toEqual(['mrn']);
    expect(cohort.find('compare acc 3003a', 'RS_1')).toEqual(['csv-accession']);
    expect(cohort.find('ACC-3003A', 'RS_1')).toEqual(['csv-accession']);
    expect(cohort.find('MRN 42517', 'RS_1')).toEqual(['mrn']); // leading zeros aside
    expect(cohort.find('slice 27654321', 'RS_1')).toEqual([]);
    expect(cohort.find('CT 2024 follow-up', 'RS_1')).toEqual([]);
    // Written in pieces shorter than 5 (a second new-user trial: 'see CX-55-1234' was filed).
    const dashed = new CohortMatcher();
    dashed.addId('mrn', 'CX-55-1234', 'RS_8');
    dashed.addId('mrn', '123-45-6789', 'RS_8');
    dashed.addId('csv-accession', 'AB-12-345', 'RS_8');
    dashed.addId('patient-id', 'WATER', 'RS_8'); // letters only: a word (a phantom's ID)
    expect(dashed.find('see CX-55-1234', 'RS_1')).toEqual(['mrn']);
    expect(dashed.find('ref 123 45 6789', 'RS_1')).toEqual(['mrn']);
    expect(dashed.find('ref AB-12-345', 'RS_1')).toEqual(['csv-accession']);
    expect(dashed.find('T1 DIXON WATER', 'RS_1')).toEqual([]);
    expect(dashed.find('slice 12 45 6789', 'RS_1')).toEqual([]);
    // Not inside a UID: an MRN 10008 is in no SOP Class UID the output keeps.
    const uidRoot = new CohortMatcher();
    uidRoot.addId('mrn', '10008', 'RS_9');
    expect(uidRoot.find('1.2.840.10008.5.1.4.1.1.2', 'RS_1')).toEqual([]);
    expect(uidRoot.find('MRN 10008', 'RS_1')).toEqual(['mrn']);
  });

  it('finds a name only when its family and a given name are both there, as words', () => {
    expect(cohort.find('compare with Roe Jane', 'RS_1')).toEqual(['patient-name']);
    expect(cohort.find('JANE ROE prior', 'RS_1')).toEqual(['patient-name']);
    expect(cohort.find('RoeJane_scout', 'RS_1')).toEqual(['patient-name']);
    expect(cohort.find('HEAD W/O CONTRAST', 'RS_1')).toEqual([]); // a family name alone is a word
    expect(cohort.find('Roebuck Janet', 'RS_1')).toEqual([]);
    expect(cohort.find('比較 山田太郎', 'RS_1')).toEqual(['patient-name']);
  });

  it("leaves out the scanned patient's own identifiers (the source matcher's to find)", () => {
    expect(cohort.find('prior of ROE JANE 7654321', 'RS_2')).toEqual([]);
    expect(cohort.find('prior of ROE JANE 7654321', 'RS_1').sort()).toEqual(['mrn', 'patient-name']);
  });

  it("the mapping table's cohort holds every row's MRN and Accession", () => {
    const table = new MappingTable([row(2, 'MRN1001', 'ACC1001', 'RS_1'), row(3, '7654321', 'ACC2002', 'RS_2')]);
    expect(table.cohort().find('ref 7654321', 'RS_1')).toEqual(['mrn']);
    expect(table.cohort().find('acc2002', 'RS_1')).toEqual(['csv-accession']);
    expect(table.cohort().find('MRN1001', 'RS_1')).toEqual([]);
    expect(table.cohort()).toBe(table.cohort()); // built once
  });
});

describe('leak guard with the cohort', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'cohort-guard-'));
    const py = `
import sys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
def make(path, desc):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.7'
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(); ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = 'DOE^JOHN'; ds.PatientID = 'MRN1001'; ds.AccessionNumber = 'ACC1001'
    ds.StudyDate = '20250101'; ds.Modality = 'OT'; ds.SeriesDescription = desc
    ds.is_little_endian = True; ds.is_implicit_VR = False
    ds.save_as(path, write_like_original=False)
make(sys.argv[1] + '/other.dcm', 'prior of ROE JANE 7654321')
make(sys.argv[1] + '/own.dcm', 'knee left')
`;
    execFileSync('/usr/bin/python3', ['-c', py, dir]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const plan: DeidPlan = {
    researchId: 'RS_1',
    accessionNumber: 'RS_1_1',
    dayOffset: -200,
    notes: '',
    uidSecret: Buffer.alloc(32, 3),
  };
  const table = new MappingTable([row(2, 'MRN1001', 'ACC1001', 'RS_1'), row(3, '7654321', 'ACC2002', 'RS_2')]);

  function scan(name: string, path = 'RS_1/RS_1_1/OT_1/x.dcm', cohort = table.cohort()) {
    const r = deidentifySource(readFileSync(join(dir, name)), plan);
    return scanOutput({
      head: r.head,
      pixelData: r.pixelData,
      tail: r.tail,
      path,
      source: r.sourceValues,
      supplied: plan,
      cohort,
    });
  }

  it("holds a kept SeriesDescription naming another patient's MRN, without the value", () => {
    const hits = scan('other.dcm');
    expect(hits).toEqual([{ where: '(0008,103E) SeriesDescription', kind: 'mrn', action: 'hold', otherPatient: true }]);
    expect(describeLeakHits(hits)).toBe('mrn of another patient in (0008,103E) SeriesDescription');
    // Without the cohort (as before the fix) the guard saw nothing.
    expect(scan('other.dcm', undefined, new CohortMatcher())).toEqual([]);
  });

  it("holds another patient's name from the tree, and another's ID in the output path", () => {
    const tree = new CohortMatcher();
    tree.addName('patient-name', 'ROE^JANE', 'RS_2');
    expect(scan('other.dcm', undefined, tree)).toEqual([
      { where: '(0008,103E) SeriesDescription', kind: 'patient-name', action: 'hold', otherPatient: true },
    ]);
    expect(scan('own.dcm', 'RS_1/RS_1_1/compare 7654321/x.dcm')).toEqual([
      { where: 'output path', kind: 'mrn', action: 'hold', otherPatient: true },
    ]);
    expect(scan('own.dcm')).toEqual([]);
  });
});
