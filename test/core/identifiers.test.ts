// src/core/identifiers: the matcher's rules (names in every script, IDs, UIDs, dates), the date
// finder and shifter, and identifying values read from pydicom's charset files.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  findDates,
  IdentifierMatcher,
  identifiersOf,
  readIdentifyingValues,
  shiftDatesInName,
  toDA,
  type Identifier,
} from '../../src/core/identifiers/index.js';

const repo = path.resolve(import.meta.dirname, '../..');
const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

const name = (value: string): Identifier => ({ kind: 'patient-name', value });

describe('IdentifierMatcher: names', () => {
  it('finds each part of a Latin name, in any case and order, as words or glued', () => {
    const m = new IdentifierMatcher([name('Testpat^Rho')]);
    for (const text of [
      'Testpat_Rho_localizer',
      'Rho, Testpat',
      'TESTPAT',
      'rho',
      'TestpatRho',
      'RhoScout',
      'scout-RHO',
      'xTESTPATx',
    ]) {
      expect({ text, kinds: m.find(text) }).toEqual({ text, kinds: ['patient-name'] });
    }
    // A short token (under 4 letters) only as a whole word: not inside other words.
    for (const text of ['Rhombus', 'localizer', 'IM0001', 'series_3', 'RHOSCOUT']) {
      expect({ text, kinds: m.find(text) }).toEqual({ text, kinds: [] });
    }
  });

  it('finds SMITH^ANNA in SMITH^ANNA, Smith and ANNA', () => {
    const m = new IdentifierMatcher([name('SMITH^ANNA')]);
    for (const text of ['SMITH^ANNA', 'Smith', 'ANNA', 'anna_ct', 'SmithA']) expect(m.matches(text)).toBe(true);
    expect(m.matches('Smyth')).toBe(false);
  });

  it('ignores accents and reads umlauts transliterated', () => {
    const m = new IdentifierMatcher([name('Müller^Zoë')]);
    for (const text of ['MULLER', 'Mueller', 'müller', 'ＭＵＬＬＥＲ', 'zoe_scan', 'ZOË']) {
      expect({ text, hit: m.matches(text) }).toEqual({ text, hit: true });
    }
    const n = new IdentifierMatcher([name('Łukasz^Søren^Straße')]);
    for (const text of ['LUKASZ', 'soren', 'STRASSE', 'strasse'])
      expect({ text, hit: n.matches(text) }).toEqual({ text, hit: true });
  });

  it('finds CJK and Hangul components of any length, also inside longer runs', () => {
    const jp = new IdentifierMatcher([name('Yamada^Tarou=山田^太郎=やまだ^たろう')]);
    for (const text of ['山田太郎.dcm', '太郎', 'ヤマダ', 'ﾔﾏﾀﾞ', 'yamada', 'TAROU_ct']) {
      expect({ text, hit: jp.matches(text) }).toEqual({ text, hit: true });
    }
    expect(jp.matches('田中花子.dcm')).toBe(false);
    const cn = new IdentifierMatcher([name('Wang^XiaoDong=王^小东')]);
    for (const text of ['王小东_cr.dcm', '王', 'xiaodong', 'WANG'])
      expect({ text, hit: cn.matches(text) }).toEqual({ text, hit: true });
    expect(cn.matches('李明_cr.dcm')).toBe(false);
    const kr = new IdentifierMatcher([name('Hong^Gildong=洪^吉洞=홍^길동')]);
    for (const text of ['홍길동', '길동', '洪']) expect({ text, hit: kr.matches(text) }).toEqual({ text, hit: true });
  });

  it('lets the caller choose the whole-word limit', () => {
    const strict = new IdentifierMatcher([name('Li^Ann')], { wordOnlyBelow: 4 });
    expect(strict.matches('Lima')).toBe(false);
    expect(strict.matches('scan_li')).toBe(true);
    const loose = new IdentifierMatcher([name('Li^Ann')], { wordOnlyBelow: 2 });
    expect(loose.matches('Lima')).toBe(true);
  });
});

describe('IdentifierMatcher: IDs, UIDs, dates', () => {
  it('finds IDs by their letters and digits, and their numbers of 4+ digits alone', () => {
    const m = new IdentifierMatcher([
      { kind: 'mrn', value: 'MRN1717' },
      { kind: 'accession-number', value: 'A-998877' },
      { kind: 'patient-id', value: '0012345' },
    ]);
    expect(m.find('MRN1717')).toEqual(['mrn']);
    expect(m.find('1717_ct')).toEqual(['mrn']);
    expect(m.find('mrn_1717')).toEqual(['mrn']);
    expect(m.find('21717')).toEqual([]);
    expect(m.find('17170')).toEqual([]);
    expect(m.find('acc_a998877')).toEqual(['accession-number']);
    expect(m.find('12345')).toEqual(['patient-id']);
    expect(m.find('pid0012345')).toEqual(['patient-id']);
    expect(m.find('IM0001')).toEqual([]);
    // "No information" values are no identifiers.
    expect(new IdentifierMatcher([{ kind: 'csv-accession', value: '_____' }]).empty).toBe(true);
  });

  it('finds a UID, and a longer dotted number that starts with it', () => {
    const m = new IdentifierMatcher([{ kind: 'uid', value: '1.2.826.0.1.3680043.10.9999.3.17' }]);
    expect(m.find('1.2.826.0.1.3680043.10.9999.3.17.dcm')).toEqual(['uid']);
    expect(m.find('1.2.826.0.1.3680043.10.9999.3.17.1')).toEqual(['uid']);
    expect(m.find('1.2.826.0.1.3680043.10.9999.3.170')).toEqual([]);
  });

  it('finds a date in every common form', () => {
    const m = new IdentifierMatcher([{ kind: 'birth-date', value: '19610415' }]);
    for (const text of [
      '19610415',
      '1961-04-15',
      '1961_04_15',
      '15.04.1961',
      '15.4.1961',
      '04/15/1961',
      '15-04-1961',
      '15041961',
      '15 Apr 1961',
      'April 15, 1961',
      'dob 1961.04.15',
    ]) {
      expect({ text, kinds: m.find(text) }).toEqual({ text, kinds: ['birth-date'] });
    }
    expect(m.find('1961-04-16')).toEqual([]);
    expect(m.find('119610415')).toEqual([]);
    // Both readings of a date whose day and month cannot be told apart.
    const n = new IdentifierMatcher([{ kind: 'date', value: '20230304' }]);
    expect(n.find('04-03-2023')).toEqual(['date']);
    expect(n.find('03-04-2023')).toEqual(['date']);
  });

  it('finds a date in every form inside a long text, wherever it sits (the leak guard searches all values at once)', () => {
    const m = new IdentifierMatcher([{ kind: 'date', value: '20230301' }]);
    const filler = 'CT knee 1.25 120 -125.0\\-125.0\\-39.0 1\\0\\0\\0\\1\\0 ORIGINAL\\PRIMARY '.repeat(20);
    for (const date of [
      '20230301',
      '2023-03-01',
      '01.03.2023',
      '1 March 2023',
      'March 1st, 2023',
      '2023-September-30',
    ]) {
      const expected = date === '2023-September-30' ? [] : ['date'];
      for (const text of [`${filler}${date}`, `${date}${filler}`, `${filler}post-op ${date} ${filler}`]) {
        expect({ date, kinds: m.find(text) }).toEqual({ date, kinds: expected });
      }
    }
    // The stretch searched around a year never starts inside a longer number.
    expect(m.find(`${filler}1234567820230301${filler}`)).toEqual([]);
    expect(m.find(`${filler}2023030112${filler}`)).toEqual([]);
    expect(m.find(`${filler}2023-03-011${filler}`)).toEqual([]);
  });

  it('takes a name component with digits for a code: its short letters are not a name', () => {
    // pydicom's CT_small.dcm: PatientName CompressedSamples^CT1, Modality CT.
    const m = new IdentifierMatcher([name('CompressedSamples^CT1')]);
    expect(m.find('CT')).toEqual([]);
    expect(m.find('CT1 scout')).toEqual([]); // 3 letters and digits: too short to look for, as an ID's
    expect(m.find('compressedsamples')).toEqual(['patient-name']);
    const n = new IdentifierMatcher([name('CQ500-CT-310'), name('Anon2017^Patient7')]);
    expect(n.find('series CQ500-CT-310')).toEqual(['patient-name']);
    expect(n.find('CT head')).toEqual([]);
    expect(n.find('cq500ct310')).toEqual(['patient-name']);
    expect(n.find('Patient position')).toEqual(['patient-name']); // 4+ letters: still a word of the name
    expect(n.find('IM_2017')).toEqual(['patient-name']); // and its numbers of 4+ digits
  });

  it('says which kinds matched, never the value', () => {
    const m = new IdentifierMatcher([
      name('DOE^JOHN'),
      { kind: 'physician', value: 'HOUSE^GREGORY' },
      { kind: 'institution', value: 'St Elsewhere Hospital' },
      { kind: 'mrn', value: 'MRN1001' },
    ]);
    expect(m.find('John House, St Elsewhere, MRN1001').sort()).toEqual([
      'institution',
      'mrn',
      'patient-name',
      'physician',
    ]);
  });
});

describe('dates in names', () => {
  it('finds dates in the common forms, not in longer numbers or UIDs', () => {
    const da = (t: string) => findDates(t).map((m) => m.readings.map(toDA).join('|'));
    expect(da('20241103_Smith scout')).toEqual(['20241103']);
    expect(da('IM_2024-11-03.dcm')).toEqual(['20241103']);
    expect(da('20241103123045')).toEqual(['20241103']);
    expect(da('03.11.2024')).toEqual(['20241103|20240311']);
    expect(da('Nov 3rd, 2024 and 2024Nov05')).toEqual(['20241103', '20241105']);
    expect(da('IM120241103')).toEqual([]);
    expect(da('1.2.3.2023.5')).toEqual([]);
    expect(da('20241399 and 1850-01-01')).toEqual([]);
  });

  it('shifts each date in its own form', () => {
    expect(shiftDatesInName('20241103_Smith scout', 10)).toBe('20241113_Smith scout');
    expect(shiftDatesInName('IM_2024-11-03.dcm', -400)).toBe('IM_2023-09-30.dcm');
    expect(shiftDatesInName('a 03.11.2024 b 2024_11_03', 30)).toBe('a 03.12.2024 b 2024_12_03');
    expect(shiftDatesInName('3.2.2024', 1)).toBe('4.2.2024');
    expect(shiftDatesInName('20241231120000', 1)).toBe('20250101120000');
    expect(shiftDatesInName('13-11-2024', 1)).toBe('14-11-2024');
    expect(shiftDatesInName('Nov 3rd, 2024', 19)).toBe('Nov 22nd, 2024');
    expect(shiftDatesInName('3 NOVEMBER 2024', 30)).toBe('3 DECEMBER 2024');
    expect(shiftDatesInName('scout', 30)).toBe('scout');
  });

  it('refuses to shift a date whose day and month cannot be told apart, or written in other digits', () => {
    expect(shiftDatesInName('03-11-2024', 10)).toBeNull();
    expect(shiftDatesInName('03112024', 10)).toBeNull();
    expect(shiftDatesInName('ｽｷｬﾝ２０２４１１０３', 10)).toBeNull();
  });
});

describe('identifying values of a file', () => {
  interface Expected {
    files: { file: string; path: string; elements: { path: string; vr: string; values: string[] }[] }[];
  }
  const expected = JSON.parse(
    execFileSync(python, [path.join(repo, 'test', 'fixtures', 'charset_expectations.py')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }),
  ) as Expected;

  it('decodes PatientName of every charset file as pydicom does, from the whole file or its first bytes', () => {
    for (const f of expected.files) {
      const want = f.elements.find((e) => e.path === '00100010');
      if (!want) continue; // chrSQEncoding*: the name is inside a sequence item only
      const bytes = fs.readFileSync(f.path);
      const values = readIdentifyingValues(bytes)!;
      expect({ file: f.file, names: values.patientNames.slice(0, 1).map((v) => v.replace(/=+$/, '')) }).toEqual({
        file: f.file,
        names: want.values,
      });
      // The file's header, read from its first bytes only, gives the same values.
      const pixel = bytes.indexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00]));
      if (pixel > 0) expect(readIdentifyingValues(bytes.subarray(0, pixel + 64), true)).toEqual(values);
      // Too few bytes: null (read more), never a wrong answer.
      expect(readIdentifyingValues(bytes.subarray(0, 400), true)).toBeNull();
    }
  });

  it('gives identifiers a matcher finds the name with', () => {
    const bytes = fs.readFileSync(expected.files.find((f) => f.file === 'chrH32.dcm')!.path);
    const m = new IdentifierMatcher(identifiersOf(readIdentifyingValues(bytes)!));
    expect(m.find('山田太郎.dcm')).toContain('patient-name');
    expect(m.find('ﾀﾛｳ')).toContain('patient-name');
  });
});
