// The leak guard in the core (src/core/leakGuard): the profile broken on purpose three ways (a
// rule wrongly keeping an attribute, a name in an unlisted public LO element, a kept
// SeriesDescription holding the surname), each caught with the attribute named and never the
// value; what the researcher supplied is not judged; the ordinary instance passes.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deidentifySource, type DeidOptions } from '../../src/core/deidentify.js';
import {
  describeLeakHits,
  parseAttributeList,
  scanOutput,
  splitAttributeList,
  NOTES_WHERE,
  type LeakHit,
} from '../../src/core/leakGuard/index.js';
import type { DeidPlan } from '../../src/core/types.js';

const PY = '/usr/bin/python3';
let dir: string;
const plan: DeidPlan = {
  researchId: 'R001',
  accessionNumber: 'R001_1',
  dayOffset: 472, // 2023-03-01 -> 2024-06-15
  notes: 'left knee',
  uidSecret: Buffer.alloc(32, 7),
};
/** Every identifying value of the samples (make_leak_guard_samples.py): no hit may carry one. */
const VALUES = ['Quill', 'QUILL', 'Ada', 'QX4417', 'QX-ALT-5521', 'ACQ7781', '20230301', '01.03.2023', '山田', 'Varga'];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'leak-guard-'));
  execFileSync(PY, [join(__dirname, '..', 'fixtures', 'make_leak_guard_samples.py'), dir]);
});

function scan(
  name: string,
  opts: { plan?: DeidPlan; deid?: DeidOptions; path?: string; warnOnly?: string[]; notesText?: string } = {},
): LeakHit[] {
  const p = opts.plan ?? plan;
  const r = deidentifySource(readFileSync(join(dir, `${name}.dcm`)), p, opts.deid);
  const hits = scanOutput({
    head: r.head,
    pixelData: r.pixelData,
    tail: r.tail,
    path: opts.path ?? `${p.researchId}/${p.accessionNumber}/CT_S2/${r.sopInstanceUid}.dcm`,
    sidecars:
      opts.notesText !== undefined
        ? [{ path: `${p.researchId}/${p.accessionNumber}/notes.txt`, text: opts.notesText }]
        : [],
    source: r.sourceValues,
    supplied: p,
    warnOnly: opts.warnOnly ? parseAttributeList(opts.warnOnly).tags : undefined,
  });
  const text = JSON.stringify(hits) + describeLeakHits(hits);
  for (const v of VALUES) expect(text, `a hit carries the value ${v}`).not.toContain(v);
  return hits;
}

describe('leak guard', () => {
  it('finds nothing in an ordinary instance, its path and its notes', () => {
    const r = deidentifySource(readFileSync(join(dir, 'clean.dcm')), plan);
    // The source has identifiers of every kind: the guard had something to look for.
    expect(r.sourceValues.patientNames).toEqual(['Quill^Ada']);
    expect(r.sourceValues.institutionNames).toEqual(['Northwind Clinic']);
    expect(r.sourceValues.dates).toContain('20230301');
    expect(scan('clean', { notesText: 'left knee\n' })).toEqual([]);
  });

  it('holds an attribute a broken rule table kept, and names it', () => {
    expect(scan('other_ids')).toEqual([]); // the real rules remove Other Patient IDs
    const hits = scan('other_ids', { deid: { testOnlyKeep: new Set([0x00101000]) } });
    expect(hits).toEqual([{ where: '(0010,1000) OtherPatientIDs', kind: 'other-patient-id', action: 'hold' }]);
    // A broken rule for a name and a date: both caught, by kind.
    const more = scan('clean', { deid: { testOnlyKeep: new Set([0x00080020, 0x00080090]) } });
    expect(more).toEqual([
      { where: '(0008,0020) StudyDate', kind: 'date', action: 'hold' },
      { where: '(0008,0090) ReferringPhysicianName', kind: 'physician', action: 'hold' },
    ]);
  });

  it('holds a name in an unlisted public LO element, at the top level and nested', () => {
    expect(scan('unlisted_lo')).toEqual([{ where: '(0018,99A1)', kind: 'patient-name', action: 'hold' }]);
    expect(scan('nested_lo')).toEqual([{ where: '(0008,1140)[0]/(0018,99A1)', kind: 'patient-name', action: 'hold' }]);
  });

  it('holds a kept SeriesDescription holding the surname; a warning only when the setting lists it', () => {
    expect(scan('series_surname')).toEqual([
      { where: '(0008,103E) SeriesDescription', kind: 'patient-name', action: 'hold' },
    ]);
    expect(scan('series_surname', { warnOnly: ['seriesdescription'] })).toEqual([
      { where: '(0008,103E) SeriesDescription', kind: 'patient-name', action: 'warn' },
    ]);
    expect(scan('series_surname', { warnOnly: ['(0008,103E)'] })[0]!.action).toBe('warn');
  });

  it('reads the output in every encoding: deflated, big endian, implicit VR', () => {
    for (const name of ['series_surname_deflated', 'series_surname_big_endian', 'series_surname_implicit']) {
      expect({ name, hits: scan(name) }).toEqual({
        name,
        hits: [{ where: '(0008,103E) SeriesDescription', kind: 'patient-name', action: 'hold' }],
      });
    }
  });

  it('reads an output whose pixel data header the core rewrote (an odd length padded)', () => {
    const r = deidentifySource(readFileSync(join(dir, 'odd_pixels.dcm')), plan);
    expect(r.notices.join(' ')).toContain('padded'); // the header was rewritten: it ends the head
    expect(scan('odd_pixels')).toEqual([]);
    // The element after the pixel data is read too, from its first byte (after the padding).
    expect(scan('odd_pixels_surname')).toEqual([
      { where: '(0008,103E) SeriesDescription', kind: 'patient-name', action: 'hold' },
      { where: '(7FF0,0010)', kind: 'patient-name', action: 'hold' },
    ]);
  });

  it('finds a date in another written form, and a name under ISO 2022 in Unicode', () => {
    expect(scan('date_text')).toEqual([{ where: '(0008,103E) SeriesDescription', kind: 'date', action: 'hold' }]);
    expect(scan('japanese')).toEqual([
      { where: '(0008,1090) ManufacturerModelName', kind: 'patient-name', action: 'hold' },
    ]);
  });

  it('checks the output path: identifiers hold, institution and physician names only warn', () => {
    expect(scan('clean', { path: 'R001/R001_1/Quill_scans/IM1.dcm' })).toEqual([
      { where: 'output path', kind: 'patient-name', action: 'hold' },
    ]);
    expect(scan('clean', { path: 'R001/R001_1/2023-03-01/IM1.dcm' })).toEqual([
      { where: 'output path', kind: 'date', action: 'hold' },
    ]);
    expect(scan('clean', { path: 'R001/R001_1/northwind/IM1.dcm' })).toEqual([
      { where: 'output path', kind: 'institution', action: 'warn' },
    ]);
  });

  it('checks sidecar texts, leaving out the notes the researcher wrote', () => {
    expect(scan('clean', { notesText: 'left knee\nQuill\n' })).toEqual([
      { where: 'R001/R001_1/notes.txt', kind: 'patient-name', action: 'hold' },
    ]);
  });

  it('does not judge what the researcher supplied: research ID, notes, dates the anchor made', () => {
    // A research ID holding the MRN's number, notes naming the patient: the researcher's choice.
    const own: DeidPlan = {
      ...plan,
      researchId: 'QX4417',
      accessionNumber: 'QX4417_1',
      notes: 'Ada Quill, QX4417, left knee',
    };
    // Kept as written, but the researcher is told (found by a new-user trial: a surname typed
    // into Notes reached the shared tree without a word).
    const told = { where: NOTES_WHERE, kind: 'patient-name', action: 'warn' };
    expect(scan('clean', { plan: own, notesText: 'Ada Quill, QX4417, left knee\n' })).toEqual([told]);
    // Notes with a character the data set's character set lacks, written '?' (it cannot move to
    // UTF-8: an item has a character set of its own): still the researcher's.
    const arrow: DeidPlan = { ...plan, notes: 'Quill → knee' };
    const r = deidentifySource(readFileSync(join(dir, 'item_charset.dcm')), arrow);
    expect(r.notices.join(' ')).toContain("written as '?'");
    expect(scan('item_charset', { plan: arrow, notesText: 'Quill → knee\n' })).toEqual([told]);
    // A day offset of 0 keeps every date as it was: the researcher's anchor, not a leak.
    expect(scan('date_text', { plan: { ...plan, dayOffset: 0 } })).toEqual([]);
    // ...but a research ID is left out only as a whole word.
    const partial: DeidPlan = { ...plan, researchId: 'X4', accessionNumber: 'X4_1' };
    expect(scan('other_ids', { plan: partial, deid: { testOnlyKeep: new Set([0x00101000]) } })).toHaveLength(1);
  });

  it('does not take a code in a name for a name, nor the maker for the site (the pydicom corpus)', () => {
    // PatientName 'Probe^CT1': 'CT' is not a name (it is the Modality); the code CT1 would be.
    expect(scan('code_name')).toEqual([]);
    // InstitutionName 'ACME MEDICAL' when the kept Manufacturer is 'ACME Medical': the maker.
    expect(scan('maker_site')).toEqual([]);
  });

  it("searches a value again for the instance's own UIDs even when an earlier instance found it clean", () => {
    // Every sample references the instance self_ref; a broken rule keeps the reference's UID.
    const keep = { testOnlyKeep: new Set([0x00081155]) };
    expect(scan('clean', { deid: keep })).toEqual([]); // another instance's UID: not this source's
    expect(scan('clean', { deid: keep })).toEqual([]); // (now from the values found clean)
    expect(scan('self_ref', { deid: keep })).toEqual([
      { where: '(0008,1140)[0]/(0008,1155) ReferencedSOPInstanceUID', kind: 'uid', action: 'hold' },
    ]);
    // The values of a series found clean are not searched again, and the answer is the same.
    expect(scan('series_surname')).toHaveLength(1);
    expect(scan('series_surname')).toHaveLength(1);
  });

  it('reads the warn-only list as keywords or tags and names what it does not know', () => {
    expect(splitAttributeList('StudyDescription, 0008,103E,(0018,99A1),00081090,0008,10')).toEqual([
      'StudyDescription',
      '0008,103E',
      '(0018,99A1)',
      '00081090',
      '0008',
      '10',
    ]);
    expect(
      parseAttributeList(['StudyDescription', '(0008,103E)', '0018,99A1', '00081090', ' ', 'NoSuchThing']),
    ).toEqual({
      tags: new Set([0x00081030, 0x0008103e, 0x001899a1, 0x00081090]),
      unknown: ['NoSuchThing'],
    });
  });
});

// What the tests wrote under the temp folder is never left behind (a full disk fails other suites).
afterAll(() => rmSync(dir, { recursive: true, force: true }));
