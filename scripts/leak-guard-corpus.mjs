#!/usr/bin/env node
// The leak guard's false-positive measure: every DICOM file below the given folders goes through
// `dicom-deid batch` (the built CLI) with a mapping CSV made from the files' own PatientIDs (or
// AccessionNumbers when a file has no PatientID), and every file the guard held is listed with
// where and what it found. The files are copied into a patient/session tree (one patient folder
// per research ID, the file's path below its corpus folder kept below the session folder). A
// file with neither (no row could match it) is given PatientID NOID<n> (one per study) by pydicom
// first, so that it is guarded too (`/usr/bin/python3` with pydicom; without it such files stay unmatched).
//   usage: node scripts/leak-guard-corpus.mjs WORKDIR DIR [DIR...]   (npm run build first)
// Prints the counts per audit status and a Markdown table of the holds (docs/leak-guard.md).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readInstanceKeys } from '../dist/core/deidentify.js';

const repo = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const [work, ...dirs] = process.argv.slice(2);
if (!work || dirs.length === 0) {
  console.error('usage: node scripts/leak-guard-corpus.mjs WORKDIR DIR [DIR...]');
  process.exit(2);
}
fs.rmSync(work, { recursive: true, force: true });
const tree = path.join(work, 'tree');

function* walk(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (e.isFile()) yield p;
  }
}

const csvField = (v) => (/[",;\t\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
const idOf = new Map(); // 'mrn\0value' or 'acc\0value' -> research ID
const rows = ['MRN,Accession,New_Patient_ID,Surgery_Date,Anchor_Date,Notes'];
const origin = new Map(); // tree-relative path -> corpus path
let unread = 0;
let noId = 0;
const noIdOfStudy = new Map();
const SET_ID = [
  'import sys, pydicom',
  'ds = pydicom.dcmread(sys.argv[1], force=True)',
  'ds.PatientID = sys.argv[3]',
  'ds.save_as(sys.argv[2], write_like_original=True)',
].join('\n');
for (const [n, dir] of dirs.entries()) {
  // Folders in the tree are named c1, c2... (a corpus folder's own name could be a word of a
  // patient's name: make_leak_samples.py's physician is 'Sato^Leak'); the table shows the names.
  const label = path.basename(path.resolve(dir));
  const folder = `c${n + 1}`;
  for (const file of walk(dir)) {
    const bytes = fs.readFileSync(file);
    let keys;
    try {
      keys = readInstanceKeys(bytes);
    } catch {
      unread++; // not DICOM, or not readable: batch reports it too
    }
    let mrn = keys?.patientId.trim() ?? '';
    const acc = keys?.accessionNumber.trim() ?? '';
    let copy = file;
    if (keys && !mrn && !acc) {
      // No key to match: a copy with a made-up PatientID (written like the original), one per
      // study (a study belongs to one patient: batch holds a study two research IDs claim).
      const study = keys.studyInstanceUid || file;
      if (!noIdOfStudy.has(study)) noIdOfStudy.set(study, `NOID${String(noIdOfStudy.size + 1).padStart(4, '0')}`);
      mrn = noIdOfStudy.get(study);
      noId++;
      copy = path.join(work, 'noid', `${noId}.dcm`);
      fs.mkdirSync(path.dirname(copy), { recursive: true });
      const py = spawnSync('/usr/bin/python3', ['-c', SET_ID, file, copy, mrn], { encoding: 'utf8' });
      if (py.status !== 0) {
        console.error(
          `${file}: pydicom could not set a PatientID, left unmatched: ${py.stderr.trim().split('\n').pop()}`,
        );
        mrn = '';
        copy = file;
      }
    }
    const key = mrn ? `mrn\0${mrn}` : acc ? `acc\0${acc}` : null;
    let rid = 'UNMATCHED';
    if (key) {
      rid = idOf.get(key);
      if (!rid) {
        rid = `C${String(idOf.size + 1).padStart(4, '0')}`;
        idOf.set(key, rid);
        rows.push(`${mrn ? csvField(mrn) : ''},${mrn ? '' : csvField(acc)},${rid},2022-09-01,2024-06-15,`);
      }
    }
    const rel = path.join(rid, 'session', folder, path.relative(dir, file));
    fs.mkdirSync(path.dirname(path.join(tree, rel)), { recursive: true });
    fs.copyFileSync(copy, path.join(tree, rel));
    origin.set(rel.split(path.sep).join('/'), `${label}/${path.relative(dir, file)}`);
  }
}
fs.writeFileSync(path.join(work, 'mapping.csv'), rows.join('\n') + '\n');

const logDir = path.join(work, 'logs');
const r = spawnSync(
  process.execPath,
  [
    path.join(repo, 'dist', 'cli.js'),
    'batch',
    '--csv',
    path.join(work, 'mapping.csv'),
    '--input',
    tree,
    '--output',
    path.join(work, 'out'),
    '--db',
    path.join(work, 'state.sqlite'),
    '--log-dir',
    logDir,
    '--quiet',
  ],
  { encoding: 'utf8' },
);
if (r.status === 2) {
  console.error(r.stderr);
  process.exit(2);
}
const auditFile = fs.readdirSync(logDir).find((f) => f.startsWith('deid_log_'));
const lines = fs
  .readFileSync(path.join(logDir, auditFile), 'utf8')
  .replace(/^\uFEFF/, '')
  .split(/\r\n/);
// The audit log's fields: source_path,status,...,message (the message is the last field, quoted when it has commas).
const counts = {};
const holds = [];
for (const line of lines.slice(1)) {
  if (!line) continue;
  const m = /^("(?:[^"]|"")*"|[^,]*),([^,]*),(?:[^,]*,){5}(.*)$/.exec(line);
  if (!m) continue;
  const unq = (s) => (s.startsWith('"') ? s.slice(1, -1).replace(/""/g, '"') : s);
  const source = unq(m[1]);
  counts[m[2]] = (counts[m[2]] ?? 0) + 1;
  if (m[2] === 'leak-guard') holds.push({ file: origin.get(source) ?? source, message: unq(m[3]) });
  else if (m[3].includes('leak guard warning')) holds.push({ file: origin.get(source) ?? source, message: unq(m[3]) });
}
console.log(
  `files: ${origin.size} (${unread} not readable as DICOM by the core, ${noId} given a PatientID); ` +
    `mapping rows: ${rows.length - 1}`,
);
console.log('audit status counts:', JSON.stringify(counts));
console.log(`held by the leak guard: ${counts['leak-guard'] ?? 0}\n`);
if (holds.length > 0) {
  console.log('| file | what the guard found |');
  console.log('| --- | --- |');
  for (const h of holds.sort((a, b) => (a.file < b.file ? -1 : 1))) console.log(`| ${h.file} | ${h.message} |`);
}
const log = fs.readFileSync(path.join(logDir, 'dicom-deid.log'), 'utf8').trim().split('\n');
const finished = log.map((l) => JSON.parse(l)).find((e) => e.message === 'batch finished');
if (finished) {
  console.log(
    `\nleak guard time: ${finished.leakGuardMs} ms of ${finished.workerMs} ms of worker time ` +
      `(${((100 * finished.leakGuardMs) / finished.workerMs).toFixed(1)}%)`,
  );
}
