// The batch survey's cost (src/batch/survey.ts: every file's header read before any is written),
// against reading every file whole once, in the same run, on a bench tree.
//   usage: node scripts/bench-survey.mjs TREE_DIR   (TREE_DIR from scripts/bench-batch-tree.py)
// Needs a built dist/ (npm run build).
import fs from 'node:fs';
import path from 'node:path';
import { surveyTree } from '../dist/batch/survey.js';
import { walkTree } from '../dist/batch/walk.js';
import { MappingTable } from '../dist/core/mapping/mappingTable.js';
import { readMappingFile } from '../dist/io/mappingFile.js';

const dir = process.argv[2];
const input = path.join(dir, 'Raw_Scans');
const rows = readMappingFile(path.join(dir, 'mapping.csv'), (m) => new Error(m));
const { files } = await walkTree(input);
const secret = Buffer.alloc(32, 7);
const time = async (f) => {
  const t0 = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t0) / 1e9;
};
// Warm the page cache so both read from memory.
for (const rel of files) fs.readFileSync(path.join(input, rel));
const rounds = [];
for (let r = 0; r < 3; r++) {
  const whole = await time(() => {
    for (const rel of files) fs.readFileSync(path.join(input, ...rel.split('/')));
  });
  const survey = await time(() => surveyTree(input, files, new MappingTable(rows), rows, secret));
  rounds.push({ whole, survey });
}
rounds.sort((a, b) => a.survey - b.survey);
const { whole, survey } = rounds[1];
const mb = files.reduce((n, rel) => n + fs.statSync(path.join(input, rel)).size, 0) / 1e6;
console.log(`files: ${files.length} (${mb.toFixed(0)} MB), median of 3 rounds (page cache warm, machine shared)`);
console.log(`read every file whole: ${whole.toFixed(3)} s`);
console.log(`survey (headers):      ${survey.toFixed(3)} s   ratio ${(survey / whole).toFixed(2)}`);
