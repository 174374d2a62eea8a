// The mapping CSV's bytes -> text: exact or refused, never U+FFFD or `?` in place of a character.
import { describe, expect, it } from 'vitest';
import { decodeCsvBytes } from '../../../src/core/mapping/csvEncoding.js';

const TEXT = 'MRN,Accession,New_Patient_ID,Surgery_Date,Notes\r\n1001,A1,RES001,2023-03-10,Hüfte rechts – revision\r\n';

/** Windows-1252 bytes by hand: ü = 0xFC, – = 0x96 (not through the library under test). */
function cp1252(text: string): Buffer {
  return Buffer.from([...text].map((ch) => (ch === '–' ? 0x96 : ch.codePointAt(0)!)));
}

function decoded(bytes: Uint8Array) {
  const r = decodeCsvBytes(bytes);
  if ('problem' in r) throw new Error(`unexpected problem: ${r.problem.text}`);
  return r.decoded;
}

function refused(bytes: Uint8Array) {
  const r = decodeCsvBytes(bytes);
  if (!('problem' in r)) throw new Error(`decoded as ${r.decoded.encoding}, expected a refusal`);
  expect(r.problem.text).toContain('CSV UTF-8'); // always says what to do
  return r.problem;
}

describe('decodeCsvBytes', () => {
  it('UTF-8 without BOM (not a guess), with BOM (removed)', () => {
    expect(decoded(Buffer.from(TEXT))).toEqual({ text: TEXT, encoding: 'UTF-8', bom: false, guessed: false });
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(TEXT)]);
    expect(decoded(bom)).toEqual({ text: TEXT, encoding: 'UTF-8', bom: true, guessed: false });
  });

  it('UTF-16 LE and BE with BOM (Excel "Unicode text"), including characters outside the BMP', () => {
    const text = TEXT + '2,B,R2,2023-01-01,𝄞 ok\r\n';
    const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
    expect(decoded(le)).toEqual({ text, encoding: 'UTF-16LE', bom: true, guessed: false });
    const be = Buffer.from(le);
    be.swap16();
    expect(decoded(be)).toEqual({ text, encoding: 'UTF-16BE', bom: true, guessed: false });
  });

  it('Windows-1252 exactly, marked as a guess', () => {
    const d = decoded(cp1252(TEXT));
    expect(d).toEqual({ text: TEXT, encoding: 'Windows-1252', bom: false, guessed: true });
    expect(d.text).not.toMatch(/[\uFFFD?]/);
  });

  it('refuses workbooks by their signature', () => {
    expect(refused(Buffer.from('PK\x03\x04rest of a zip', 'latin1')).text).toMatch(
      /^this is an Excel workbook \(\.xlsx\)/,
    );
    const xls = Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0, 0]);
    expect(refused(xls).text).toMatch(/^this is an Excel 97-2003 workbook \(\.xls\)/);
  });

  it('refuses a byte that is no Windows-1252 character, naming its line', () => {
    const bytes = Buffer.concat([cp1252(TEXT), Buffer.from([0x31, 0x2c, 0x81, 0x0d, 0x0a])]);
    const p = refused(bytes);
    expect(p.line).toBe(3);
    expect(p.text).toMatch(/no Windows-1252 character/);
  });

  it('refuses a file with a UTF-8 BOM that is not UTF-8, naming the line', () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('a,b\r\nc,d\r\n'), cp1252('é,x\r\n')]);
    const p = refused(bytes);
    expect(p.line).toBe(3);
    expect(p.text).toMatch(/says it is UTF-8/);
  });

  it('refuses UTF-16 that is not valid (odd length, lone surrogate)', () => {
    refused(Buffer.from([0xff, 0xfe, 0x41, 0x00, 0x42]));
    refused(Buffer.from([0xff, 0xfe, 0x41, 0x00, 0x00, 0xd8, 0x41, 0x00]));
  });

  it('refuses UTF-16 saved without a BOM (NULs), with or without accents', () => {
    expect(refused(Buffer.from(TEXT.replace(/[ü–]/g, 'u'), 'utf16le')).text).toMatch(/NUL characters/);
    expect(refused(Buffer.from(TEXT, 'utf16le')).text).toMatch(/NUL characters/);
  });

  it('refuses text chardet recognises as another encoding (Cyrillic windows-1251) instead of guessing', () => {
    // "правое колено, ревизия" in windows-1251: every byte is also a Windows-1252 character.
    const word = Buffer.from([0xef, 0xf0, 0xe0, 0xe2, 0xee, 0xe5, 0x20, 0xea, 0xee, 0xeb, 0xe5, 0xed, 0xee]);
    const rows = Array.from({ length: 20 }, (_, i) =>
      Buffer.concat([Buffer.from(`${1000 + i},A${i},R${i},2023-01-01,`), word, Buffer.from('\r\n')]),
    );
    const p = refused(Buffer.concat([Buffer.from('MRN,Accession,New_Patient_ID,Surgery_Date,Notes\r\n'), ...rows]));
    expect(p.text).toMatch(/neither UTF-8 nor Windows-1252 \(it looks like windows-1251\)/);
  });

  it('never yields U+FFFD where the bytes had none, whatever the bytes', () => {
    // Random byte strings: each is either refused or decoded without a replacement character.
    let seed = 42;
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    let accepted = 0;
    for (let n = 0; n < 500; n++) {
      const len = 1 + Math.floor(rand() * 60);
      const bytes = Buffer.from(Array.from({ length: len }, () => Math.floor(rand() * 256)));
      const r = decodeCsvBytes(bytes);
      if ('decoded' in r) {
        accepted++;
        expect(r.decoded.text.includes('\uFFFD')).toBe(false);
      }
    }
    expect(accepted).toBeGreaterThan(50); // the property was exercised
  });
});
