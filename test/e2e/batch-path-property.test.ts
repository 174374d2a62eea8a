// Property: random patient names (Latin with accents, Cyrillic, Greek, Japanese, Chinese,
// Korean, Vietnamese in UTF-8), MRNs, accessions and study dates spliced into folder and file
// names at random depths, in random spellings (case, accents dropped, katakana or half-width
// for a hiragana reading, romaji, date forms). Through the real CLI, nothing of them may appear
// in any output path; names holding none of them must be kept. The seed is fixed; a failure
// prints each counterexample (source path, output path, the value and where it came from).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLogs, auditRows, runBatch, writeNamedTree } from '../helpers/batch-helpers.js';

const SEED = Number(process.env.PATH_PROPERTY_SEED ?? 20241103);

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = prng(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
const chance = (p: number) => rnd() < p;
const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
const digits = (n: number, first = '3456789') =>
  pick([...first]) + Array.from({ length: n - 1 }, () => int(0, 9)).join('');

interface Script {
  charset: string | string[];
  /** [alphabetic, ideographic, phonetic] of a family and a given name. */
  family: [string, string?, string?][];
  given: [string, string?, string?][];
}
const SCRIPTS: Record<string, Script> = {
  latin1: {
    charset: 'ISO_IR 100',
    family: [['Brönner'], ['Castañeda'], ['Dufresne'], ['Ekström'], ['Fagerlund'], ['Hübsch'], ['Ng'], ['Lü']],
    given: [['Anaïs'], ['Björn'], ['Céleste'], ['Dörte'], ['Émile'], ['Ida'], ['Bo'], ['Gaël']],
  },
  cyrillic: {
    charset: 'ISO_IR 144',
    family: [['Кузнецова'], ['Орлов'], ['Белкин'], ['Ян']],
    given: [['Ольга'], ['Пётр'], ['Ия'], ['Богдан']],
  },
  greek: {
    charset: 'ISO_IR 126',
    family: [['Παπαδάκης'], ['Λύρα'], ['Ίων']],
    given: [['Νίκος'], ['Ελένη'], ['Ρέα']],
  },
  japanese: {
    charset: ['', 'ISO 2022 IR 87'],
    family: [
      ['Sato', '佐藤', 'さとう'],
      ['Kobayashi', '小林', 'こばやし'],
      ['Mori', '森', 'もり'],
    ],
    given: [
      ['Haruka', '遥', 'はるか'],
      ['Ken', '健', 'けん'],
      ['Yui', '結衣', 'ゆい'],
    ],
  },
  chinese: {
    charset: 'GB18030',
    family: [
      ['Zhang', '张'],
      ['Liu', '刘'],
      ['Ouyang', '欧阳'],
    ],
    given: [
      ['Wei', '伟'],
      ['Xiaoming', '小明'],
      ['Lan', '兰'],
    ],
  },
  korean: {
    charset: ['', 'ISO 2022 IR 149'],
    family: [
      ['Park', '朴', '박'],
      ['Choi', '崔', '최'],
    ],
    given: [
      ['Jiwoo', '智友', '지우'],
      ['Minho', '民浩', '민호'],
    ],
  },
  utf8: {
    charset: 'ISO_IR 192',
    family: [['Nguyễn'], ['Trần'], ['Đặng']],
    given: [['Hương'], ['Quốc'], ['Thị Lan']],
  },
};

const toKatakana = (s: string) => s.replace(/[\u3041-\u3096]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0x60));
const HALF_WIDTH: Record<string, string> = {
  サ: 'ｻ',
  ト: 'ﾄ',
  ウ: 'ｳ',
  コ: 'ｺ',
  バ: 'ﾊﾞ',
  ヤ: 'ﾔ',
  シ: 'ｼ',
  モ: 'ﾓ',
  リ: 'ﾘ',
  ハ: 'ﾊ',
  ル: 'ﾙ',
  カ: 'ｶ',
  ケ: 'ｹ',
  ン: 'ﾝ',
  ユ: 'ﾕ',
  イ: 'ｲ',
};
const toHalfWidth = (s: string) => [...toKatakana(s)].map((c) => HALF_WIDTH[c] ?? c).join('');
const stripAccents = (s: string) =>
  s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/đ/g, 'd')
    .replace(/Đ/g, 'D');
const umlautsSpelled = (s: string) => s.replace(/ö/g, 'oe').replace(/ü/g, 'ue').replace(/ä/g, 'ae');

interface Patient {
  researchId: string;
  script: string;
  charset: string | string[];
  patientName: string;
  /** Spellings of name parts a person might put in a path. */
  nameSpellings: string[];
  patientId: string;
  accession: string;
  studyDate: string; // YYYYMMDD
  surgeryDate: string; // YYYY-MM-DD
}

function makePatient(i: number): Patient {
  const script = pick(Object.keys(SCRIPTS));
  const s = SCRIPTS[script]!;
  const fam = pick(s.family);
  const giv = pick(s.given);
  const groups = [0, 1, 2].map((g) => (fam[g] !== undefined ? `${fam[g]}^${giv[g]}` : ''));
  const patientName = groups.join('=').replace(/=+$/, '');
  const spellings = new Set<string>();
  for (const part of [...fam, ...giv].filter((p): p is string => p !== undefined)) {
    for (const word of part.split(' ')) {
      spellings.add(word);
      spellings.add(word.toUpperCase());
      spellings.add(word.toLowerCase());
      spellings.add(stripAccents(word).toUpperCase());
      if (/[äöü]/.test(word)) spellings.add(umlautsSpelled(word));
    }
    if (/[\u3041-\u3096]/.test(part)) {
      spellings.add(toKatakana(part));
      spellings.add(toHalfWidth(part));
    }
  }
  if (fam[1]) spellings.add(`${fam[1]}${giv[1]}`);
  spellings.add(`${fam[0]}, ${giv[0]}`);
  const year = int(2015, 2024);
  const studyDate = `${year}${String(int(1, 12)).padStart(2, '0')}${String(int(1, 28)).padStart(2, '0')}`;
  const surgery = `${int(2016, 2024)}-${String(int(1, 12)).padStart(2, '0')}-${String(int(1, 28)).padStart(2, '0')}`;
  return {
    researchId: `RP${String(i).padStart(2, '0')}`,
    script,
    charset: s.charset,
    patientName,
    nameSpellings: [...spellings],
    patientId: pick([() => `MRN${digits(6)}`, () => digits(7), () => `K${digits(6)}`])(),
    accession: pick([() => `A${digits(7)}`, () => digits(8)])(),
    studyDate,
    surgeryDate: surgery === '2024-06-15' ? '2024-06-14' : surgery,
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
function dateSpellings(da: string): string[] {
  const [y, m, d] = [da.slice(0, 4), da.slice(4, 6), da.slice(6, 8)];
  return [
    da,
    `${y}-${m}-${d}`,
    `${y}_${m}_${d}`,
    `${d}.${m}.${y}`,
    `${d}-${m}-${y}`,
    `${+d} ${MONTHS[+m - 1]} ${y}`,
    `${MONTHS[+m - 1]} ${+d}, ${y}`,
  ];
}

/** A spliced value: what was put in a name and where it came from. */
interface Splice {
  text: string;
  what: string;
}

function identifierPiece(p: Patient): Splice {
  switch (pick(['name', 'name', 'name', 'mrn', 'accession', 'date'])) {
    case 'name':
      return { text: pick(p.nameSpellings), what: `name of ${p.researchId} (${p.patientName})` };
    case 'mrn': {
      const digitsOnly = p.patientId.replace(/\D/g, '');
      return { text: pick([p.patientId, p.patientId.toLowerCase(), digitsOnly]), what: `PatientID of ${p.researchId}` };
    }
    case 'accession':
      return { text: pick([p.accession, p.accession.toLowerCase()]), what: `accession of ${p.researchId}` };
    default:
      return { text: pick(dateSpellings(p.studyDate)), what: `study date of ${p.researchId}` };
  }
}

const NEUTRAL = [
  'series',
  'recon',
  'localizer',
  'scout',
  'thin',
  'bone',
  'soft',
  'axial',
  'coronal',
  'export',
  '3',
  '12',
];

/** A name of neutral words and, with probability `p`, one identifier of one of `patients`. */
function makeName(patients: Patient[], p: number, splices: Splice[]): string {
  const words = [pick(NEUTRAL)];
  if (chance(0.5)) words.push(pick(NEUTRAL));
  if (patients.length > 0 && chance(p)) {
    const s = identifierPiece(pick(patients));
    splices.push(s);
    words.splice(int(0, words.length), 0, s.text);
  }
  return words.join(pick(['_', '-', ' ']));
}

interface Node {
  children: Map<string, Node>;
  patients: Set<Patient>;
  name?: string;
}

interface Planned {
  rel: string;
  patient: Patient;
  /** What was spliced into each name below the session folder (folders, then the file). */
  splices: Splice[][];
}

const patients = Array.from({ length: 12 }, (_, i) => makePatient(i + 1));
const files: Planned[] = [];
{
  for (let pf = 1; pf <= 8; pf++) {
    const here = [patients[(pf - 1) % patients.length]!];
    if (chance(0.4)) here.push(pick(patients));
    for (let s = 1; s <= int(1, 2); s++) {
      const root: Node = { children: new Map(), patients: new Set() };
      const leaves: { path: Node[]; patient: Patient }[] = [];
      for (let f = 0; f < int(3, 6); f++) {
        const patient = pick(here);
        const chain: Node[] = [];
        let node = root;
        for (let d = 0; d < int(0, 3); d++) {
          const keys = [...node.children.keys()];
          let child: Node;
          if (keys.length > 0 && chance(0.5)) child = node.children.get(pick(keys))!;
          else {
            child = { children: new Map(), patients: new Set() };
            node.children.set(`n${node.children.size}`, child);
          }
          child.patients.add(patient);
          chain.push(child);
          node = child;
        }
        leaves.push({ path: chain, patient });
      }
      // Names, once every patient below each folder is known; siblings get distinct names.
      const splicesOf = new Map<Node, Splice[]>();
      const nameAll = (n: Node) => {
        const taken = new Set<string>();
        for (const c of n.children.values()) {
          const sp: Splice[] = [];
          let name = makeName([...c.patients], 0.6, sp);
          while (taken.has(name)) name += `_${int(1, 99)}`;
          taken.add(name);
          c.name = name;
          splicesOf.set(c, sp);
          nameAll(c);
        }
      };
      nameAll(root);
      const takenFiles = new Set<string>();
      for (const leaf of leaves) {
        const sp: Splice[] = [];
        let file = makeName([leaf.patient], 0.5, sp) + (chance(0.7) ? '.dcm' : '');
        const dir = leaf.path.map((n) => n.name!).join('/');
        while (takenFiles.has(`${dir}/${file}`)) file = `${int(1, 99)}_${file}`;
        takenFiles.add(`${dir}/${file}`);
        files.push({
          rel: [`PF${pf}`, `S${s}`, ...leaf.path.map((n) => n.name!), file].join('/'),
          patient: leaf.patient,
          splices: [...leaf.path.map((n) => splicesOf.get(n)!), sp],
        });
      }
    }
  }
}

let tmp: string;
const outputOf = new Map<string, string>();

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deid-path-prop-'));
  const csv = [
    'MRN,Accession,New_Patient_ID,Surgery_Date',
    ...patients.map((p) => `${p.patientId},${p.accession},${p.researchId},${p.surgeryDate}`),
  ];
  fs.writeFileSync(path.join(tmp, 'mapping.csv'), csv.join('\n') + '\n');
  const spec = {
    root: path.join(tmp, 'RAW'),
    files: files.map((f) => ({
      rel: f.rel,
      charset: f.patient.charset,
      patientName: f.patient.patientName,
      patientId: f.patient.patientId,
      accession: f.patient.accession,
      studyDate: f.patient.studyDate,
    })),
  };
  writeNamedTree(tmp, spec);
  const r = runBatch([
    '--csv',
    path.join(tmp, 'mapping.csv'),
    '--input',
    spec.root,
    '--output',
    path.join(tmp, 'OUT'),
    '--quiet',
  ]);
  if (r.status !== 0) throw new Error(`batch exited ${r.status}: ${r.stderr}`);
  const rows = auditRows(auditLogs(path.join(tmp, 'dicom-deid-logs'))[0]!);
  for (const row of rows) if (row.status === 'ok') outputOf.set(row.source_path!, row.output_path!);
});

afterAll(() => {
  if (tmp && !process.env.KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
});

const GENERATED = [/^folder_[0-9a-f]{10}$/, /^2\.25\.\d+\.dcm$/];

describe(`identifiers spliced into paths (seed ${SEED})`, () => {
  it('covers every script, many spliced values, at several depths', () => {
    expect(new Set(patients.map((p) => p.script)).size).toBeGreaterThanOrEqual(5);
    expect(files.length).toBeGreaterThan(40);
    expect(files.flatMap((f) => f.splices.flat()).length).toBeGreaterThan(40);
    expect(Math.max(...files.map((f) => f.rel.split('/').length))).toBe(6);
    expect(outputOf.size).toBe(files.length);
  });

  it('leaves none of the spliced values in any output path', () => {
    const counterexamples: string[] = [];
    for (const f of files) {
      const out = outputOf.get(f.rel)!;
      const names = out.split('/').slice(2);
      f.splices.forEach((spliced, i) => {
        const name = names[i]!;
        if (GENERATED.some((re) => re.test(name))) return;
        for (const s of spliced) {
          if (name.toLowerCase().includes(s.text.toLowerCase())) {
            counterexamples.push(`${JSON.stringify(s.text)} (${s.what}) in ${out}\n    from ${f.rel}`);
          }
        }
      });
    }
    expect([...new Set(counterexamples)], `seed ${SEED}: identifiers left in output paths`).toEqual([]);
  });

  it('keeps the names that hold none of them', () => {
    const renamed: string[] = [];
    for (const f of files) {
      const src = f.rel.split('/').slice(2);
      const out = outputOf.get(f.rel)!.split('/').slice(2);
      src.forEach((name, i) => {
        if (f.splices[i]!.length === 0 && out[i] !== name) renamed.push(`${name} -> ${out[i]} (in ${f.rel})`);
      });
    }
    expect([...new Set(renamed)], `seed ${SEED}: names without identifiers were renamed`).toEqual([]);
  });
});
