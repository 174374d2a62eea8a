// The node's audit rows carry the mapping lookup's notes: which of a patient's disagreeing rows
// gave the day offset, and a PatientID whose CSV MRN looks like it lost its leading zeros.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AuditRow } from '../../src/audit/auditLog.js';
import { parseMappingCsv } from '../../src/core/mapping/mappingCsv.js';
import { MappingTable } from '../../src/core/mapping/mappingTable.js';
import { processInstance, type Outcome, type ProcessorDeps } from '../../src/node/instanceProcessor.js';
import { fileRef } from '../../src/node/spool/spoolRef.js';
import { openStateStore } from '../../src/state/openStateStore.js';
import type { StateStore } from '../../src/state/stateStore.js';
import { tempDir } from '../helpers/forward-helpers.js';
import { makeSamples } from '../helpers/serve-helpers.js';

const open: StateStore[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

const CSV = [
  'MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date',
  '2002,B1,RS_03,2023-03-10,2024-06-15', // line 2: 463 days
  '2002,B2,RS_03,2023-08-08,2024-06-15', // line 3: 312 days
  '12345,A12345,RS_02,2023-01-01,',
].join('\n');

async function processOne(patientId: string, accession: string): Promise<{ outcome: Outcome; audit: AuditRow[] }> {
  const dir = tempDir('notes-');
  const sample = makeSamples(join(dir, 'in'), patientId, accession, '1.2.826.0.1.3680043.8.498.77', 'n')[0]!;
  mkdirSync(join(dir, 'spool'));
  const spooled = join(dir, 'spool', '1.dcm');
  copyFileSync(sample, spooled);
  const state = await openStateStore(join(dir, 'state.sqlite'), { create: true });
  open.push(state);
  const table = new MappingTable(parseMappingCsv(CSV));
  const audit: AuditRow[] = [];
  const deps: ProcessorDeps = {
    state,
    mapping: () => table,
    outputDir: join(dir, 'output'),
    quarantineDir: join(dir, 'quarantine'),
    forwardTo: [],
    audit: (row) => audit.push(row),
  };
  const outcome = await processInstance(deps, fileRef(spooled), { callingAet: 'TEST', receivedAt: new Date() });
  return { outcome, audit };
}

describe('node audit rows with mapping notes', () => {
  it('a study matched by MRN alone among disagreeing rows: the audit row names the row used', async () => {
    const { outcome, audit } = await processOne('2002', 'NOTINCSV');
    expect(outcome.status).toBe('filed');
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ status: 'ok', matchedBy: 'mrn', dayOffset: 463 });
    expect(audit[0]!.message).toBe(
      "matched by PatientID in the MRN column alone; those rows give different day offsets (line 2: 463 days, line 3: 312 days): used line 2's, the first in the file",
    );
  });

  it('a PatientID with leading zeros the CSV lost: quarantined, and the audit row says why it was close', async () => {
    const { outcome, audit } = await processOne('0012345', 'ACC999');
    expect(outcome.status).toBe('quarantined');
    expect(audit).toHaveLength(1);
    expect(audit[0]!.status).toBe('no-mapping');
    expect(audit[0]!.message).toMatch(
      /^quarantined \(no-mapping\): no mapping row for this patient or accession; not matched, but the CSV's MRN on line 4 looks like this PatientID without its leading zeros/,
    );
  });
});
