// `queue retry` and `quarantine list` on a node's state and quarantine (the built CLI, dist/):
// what a fresh-user trial found. An unknown --destination "retried 0 items" and exit 0; a
// --quarantine folder that does not exist was "quarantine is empty"; the list showed PatientID,
// Accession and StudyDate with no word that it is key material.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileRef } from '../../src/node/spool/spoolRef.js';
import { quarantineFile } from '../../src/node/quarantine.js';
import { openStateStore } from '../../src/state/openStateStore.js';
import { rmrf, tempDir } from '../helpers/forward-helpers.js';
import { ensureBuilt, runCli } from '../helpers/serve-helpers.js';

let dir = '';
let db = '';
let quarantine = '';

beforeAll(async () => {
  ensureBuilt();
  dir = tempDir('admin');
  db = join(dir, 'state', 'state.sqlite');
  mkdirSync(join(dir, 'state'));
  const state = await openStateStore(db, { create: true });
  await state.enqueueForwards([{ filePath: join(dir, 'out', 'a.dcm'), destination: 'RESEARCH@127.0.0.1:11113' }]);
  await state.close();
  quarantine = join(dir, 'quarantine');
  mkdirSync(quarantine);
  const held = join(dir, 'held.dcm');
  writeFileSync(held, Buffer.alloc(256));
  quarantineFile(quarantine, fileRef(held), {
    reason: 'no-mapping',
    message: 'no row of the mapping CSV',
    receivedAt: '2026-11-30T10:00:00.000Z',
    callingAet: 'MODALITY',
    keys: {
      patientId: 'FAKE_PT_0042',
      accessionNumber: 'FAKEACC42',
      studyDate: '20240101',
      studyInstanceUid: '1.2.3.4',
    },
  });
});
afterAll(() => rmrf(dir));

describe('node admin commands', () => {
  it('queue retry --destination with a name the node does not know: exit 2 naming the known ones', () => {
    const r = runCli(['queue', 'retry', '--db', db, '--destination', 'NOPE']);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'dicom-deid: no destination "NOPE" in the node\'s config or its queue (known: RESEARCH@127.0.0.1:11113)\n',
    );
    const known = runCli(['queue', 'retry', '--db', db, '--destination', 'RESEARCH@127.0.0.1:11113']);
    expect(known.status, known.stderr).toBe(0);
    expect(known.stdout).toMatch(/^0 dead items are pending again/);
  });

  it('queue drop deletes the items of a destination no longer configured, without the HTTP token', async () => {
    const drop = join(dir, 'drop.sqlite');
    const state = await openStateStore(drop, { create: true });
    await state.enqueueForwards([
      { filePath: join(dir, 'out', 'b.dcm'), destination: 'OLDPACS@127.0.0.1:11114' },
      { filePath: join(dir, 'out', 'c.dcm'), destination: 'OLDPACS@127.0.0.1:11114' },
    ]);
    await state.close();
    const none = runCli(['queue', 'drop', '--db', drop]);
    expect(none.status).toBe(2);
    expect(none.stderr).toBe(
      'dicom-deid: queue drop needs --destination NAME: the removed destination whose items to drop\n',
    );
    const empty = runCli(['queue', 'drop', '--db', drop, '--destination', '']);
    expect(empty.status).toBe(2);
    expect(empty.stderr).toMatch(/queue drop needs --destination NAME/);
    // A --db that is no state database (a second new-user trial gave the CSV): exit 2, in words.
    const csv = join(dir, 'not-a-state.csv');
    writeFileSync(csv, 'MRN,Accession,New_Patient_ID,Surgery_Date\n');
    const notState = runCli(['queue', 'drop', '--db', csv, '--destination', 'X']);
    expect(notState.status, notState.stderr).toBe(2);
    expect(notState.stderr).toMatch(/not-a-state\.csv \(from --db\) is not the node's state database: /);
    const typo = runCli(['queue', 'drop', '--db', drop, '--destination', 'OLDPAC']);
    expect(typo.status).toBe(2);
    expect(typo.stderr).toMatch(
      /no destination "OLDPAC" in the node's config or its queue \(known: OLDPACS@127\.0\.0\.1:11114\)/,
    );
    const config = join(dir, 'drop-node.json');
    writeFileSync(config, JSON.stringify({ db: drop, forward: ['OLDPACS@127.0.0.1:11114'] }));
    const configured = runCli(['queue', 'drop', '--config', config, '--destination', 'OLDPACS@127.0.0.1:11114']);
    expect(configured.status, configured.stderr).toBe(2);
    expect(configured.stderr).toMatch(/is configured: only the items of a destination removed from the config/);
    const r = runCli(['queue', 'drop', '--db', drop, '--destination', 'OLDPACS@127.0.0.1:11114']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('2 items of OLDPACS@127.0.0.1:11114 dropped (they will not be sent)\n');
    expect(runCli(['queue', '--db', drop]).stdout).toBe('forward queue is empty\n');
  });

  it('quarantine list on a folder that does not exist: exit 2 saying where it looked, as queue does for a state', () => {
    for (const action of ['list', 'replay']) {
      const r = runCli(['quarantine', action, '--db', db, '--quarantine', join(dir, 'nonexistent', 'q')]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        `dicom-deid: no quarantine at ${join(dir, 'nonexistent', 'q')} (from --quarantine): pass --config with the node's config file, or --quarantine with its quarantine folder\n`,
      );
    }
  });

  it('quarantine list says its identifiers are for the key holder', () => {
    const r = runCli(['quarantine', 'list', '--db', db, '--quarantine', quarantine]);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe(`1 instance in 1 study in ${quarantine}`);
    expect(lines[1]).toBe(
      'This list shows PatientID, Accession and StudyDate: it is for the researcher who holds the key, never to be shared.',
    );
    expect(lines[2]).toMatch(/PatientID "FAKE_PT_0042", Accession "FAKEACC42", StudyDate 20240101; reason: no-mapping/);
  });
});
