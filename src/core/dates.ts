// Pure date helpers on DICOM strings (Retain Longitudinal Temporal Information with Modified Dates).
//
// All arithmetic is on UTC calendar days, so daylight-saving changes and the host time zone never
// move a date. Policy for values that cannot be parsed: they become '' (never passed through), so
// that nothing identifying survives a malformed date element.

const MS_PER_DAY = 86_400_000;

/** Days since 1970-01-01 for a valid proleptic Gregorian date, or null when not a real date. */
function dayNumber(year: number, month: number, day: number): number | null {
  if (!Number.isInteger(year) || !Number.isInteger(month) || !Number.isInteger(day)) return null;
  if (year < 0 || year > 9999 || month < 1 || month > 12 || day < 1 || day > 31) return null;
  const d = new Date(0);
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0..99 to 1900..1999.
  d.setUTCFullYear(year, month - 1, day);
  if (d.getUTCFullYear() !== year || d.getUTCMonth() !== month - 1 || d.getUTCDate() !== day) {
    return null; // e.g. 2023-02-29 rolled over into March
  }
  return Math.round(d.getTime() / MS_PER_DAY);
}

/** The [year, month, day] of a day number, or null when outside years 0000..9999. */
function fromDayNumber(n: number): [number, number, number] | null {
  const d = new Date(n * MS_PER_DAY);
  const y = d.getUTCFullYear();
  if (!Number.isFinite(y) || y < 0 || y > 9999) return null;
  return [y, d.getUTCMonth() + 1, d.getUTCDate()];
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/** Parses `YYYY-MM-DD` (a real calendar date) to a day number, or null. */
export function parseIsoDate(iso: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso);
  if (!m) return null;
  return dayNumber(Number(m[1]), Number(m[2]), Number(m[3]));
}

/** True when `iso` is a real calendar date written `YYYY-MM-DD`. */
export function isValidIsoDate(iso: string): boolean {
  return parseIsoDate(iso) !== null;
}

/** `isoDate` (YYYY-MM-DD) plus `days`, as YYYY-MM-DD. Throws RangeError on a bad date. */
export function addDaysIso(isoDate: string, days: number): string {
  const n = parseIsoDate(isoDate);
  if (n === null) throw new RangeError(`"${isoDate}" is not a valid YYYY-MM-DD date`);
  if (!Number.isInteger(days)) throw new RangeError(`day offset ${days} is not a whole number`);
  const ymd = fromDayNumber(n + days);
  if (!ymd) throw new RangeError(`"${isoDate}" + ${days} days is outside years 0000..9999`);
  return `${pad(ymd[0], 4)}-${pad(ymd[1], 2)}-${pad(ymd[2], 2)}`;
}

/** `b - a` in whole days (both YYYY-MM-DD). Throws RangeError on a bad date. */
export function daysBetweenIso(a: string, b: string): number {
  const na = parseIsoDate(a);
  if (na === null) throw new RangeError(`"${a}" is not a valid YYYY-MM-DD date`);
  const nb = parseIsoDate(b);
  if (nb === null) throw new RangeError(`"${b}" is not a valid YYYY-MM-DD date`);
  return nb - na;
}

/** Strips DICOM padding (spaces, NULs) from both ends. */
function trimDicom(s: string): string {
  return s.replace(/^[\s\0]+|[\s\0]+$/g, '');
}

/**
 * Parses one DA value: `YYYYMMDD` or the legacy ACR-NEMA `YYYY.MM.DD`, surrounding padding
 * ignored. Returns the day number or null.
 */
export function parseDA(value: string): number | null {
  const v = trimDicom(value);
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(v) ?? /^(\d{4})\.(\d{2})\.(\d{2})$/.exec(v);
  if (!m) return null;
  return dayNumber(Number(m[1]), Number(m[2]), Number(m[3]));
}

function formatDA(n: number): string {
  const ymd = fromDayNumber(n);
  return ymd ? `${pad(ymd[0], 4)}${pad(ymd[1], 2)}${pad(ymd[2], 2)}` : '';
}

function shiftOneDA(v: string, days: number): string {
  const t = trimDicom(v);
  if (t === '') return '';
  // Query-style range "A-B", "-B", "A-" (only in C-FIND identifiers, handled for completeness).
  const range = /^([\d.]*)-([\d.]*)$/.exec(t);
  if (range) {
    const [, a = '', b = ''] = range;
    if (a === '' && b === '') return '';
    const sa = a === '' ? '' : shiftOneDA(a, days);
    const sb = b === '' ? '' : shiftOneDA(b, days);
    if ((a !== '' && sa === '') || (b !== '' && sb === '')) return '';
    return `${sa}-${sb}`;
  }
  const n = parseDA(t);
  if (n === null) return '';
  return formatDA(n + days);
}

/**
 * Shifts a DA value by `days`. Multi-valued (`\`) values are shifted value by value; empty values
 * stay empty; the legacy `YYYY.MM.DD` form is written back as `YYYYMMDD`. Any value that is not a
 * real date becomes '' (so nothing identifying survives), as does a result outside 0000..9999.
 * Throws RangeError when `days` is not a whole number.
 */
export function shiftDA(value: string, days: number): string {
  return shiftEachValue(value, days, shiftOneDA);
}

/**
 * Applies `shiftOne` to each value of a multi-valued (`\`) DA or DT; an empty value stays empty.
 * Throws RangeError when `days` is not a whole number.
 */
function shiftEachValue(value: string, days: number, shiftOne: (v: string, days: number) => string): string {
  if (!Number.isInteger(days)) throw new RangeError(`day offset ${days} is not a whole number`);
  if (trimDicom(value) === '') return '';
  return value
    .split('\\')
    .map((v) => shiftOne(v, days))
    .join('\\');
}

const DT_RE = /^(\d{4})(?:(\d{2})(?:(\d{2})(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$/;

function shiftOneDT(v: string, days: number): string {
  const t = trimDicom(v);
  if (t === '') return '';
  const m = DT_RE.exec(t);
  if (!m) return '';
  const [, y, mo, d, time = '', offset = ''] = m;
  if (offset !== '') {
    const hh = Number(offset.slice(1, 3));
    const mm = Number(offset.slice(3, 5));
    if (hh > 14 || mm > 59) return '';
  }
  if (time !== '') {
    const hh = Number(time.slice(0, 2));
    const mi = time.length >= 4 ? Number(time.slice(2, 4)) : 0;
    const ss = time.length >= 6 ? Number(time.slice(4, 6)) : 0;
    if (hh > 23 || mi > 59 || ss > 60) return ''; // 60: leap second
  }
  // Year-only and year-month values are shifted from the 1st of the year/month and keep their
  // precision (the day/month part of the shifted date is dropped again).
  const n = dayNumber(Number(y), mo === undefined ? 1 : Number(mo), d === undefined ? 1 : Number(d));
  if (n === null) return '';
  const ymd = fromDayNumber(n + days);
  if (!ymd) return '';
  let out = pad(ymd[0], 4);
  if (mo !== undefined) out += pad(ymd[1], 2);
  if (d !== undefined) out += pad(ymd[2], 2) + time;
  return out + offset;
}

/**
 * Shifts a DT value (`YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX]`) by `days`: the date part moves, the
 * time of day and the UTC offset are kept unchanged. A year-only or year-month DT is shifted using
 * the 1st of the year/month and keeps its precision. Multi-valued values are shifted one by one;
 * unparseable values become ''. Throws RangeError when `days` is not a whole number.
 */
export function shiftDT(value: string, days: number): string {
  return shiftEachValue(value, days, shiftOneDT);
}
