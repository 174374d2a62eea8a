// Calendar dates written in free text (folder and file names, element values), in the common
// forms: YYYYMMDD (also followed by HHMM[SS]), YYYY-MM-DD with '-', '_', '.', '/' or ' ',
// DD.MM.YYYY and the other day-month-year / month-day-year orders, DDMMYYYY, and English month
// names (3 Nov 2024, Nov 3, 2024, 2024-Nov-03). Years 1900-2099 only; two-digit years and
// year-month alone are not read as dates. Positions are in UTF-16 units of the text as given.

export interface DateReading {
  year: number;
  month: number;
  day: number;
}

export interface DateMention {
  /** Where the date is in the text (end exclusive); a trailing time of day is not included. */
  start: number;
  end: number;
  /** The possible dates, the most likely first (day-month order before month-day order). */
  readings: DateReading[];
  /** True when the text does not tell day from month (03-04-2024, 03042024). */
  ambiguous: boolean;
  /** How to write another date in the same form. */
  format: (d: DateReading) => string;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const MONTH_NAMES = [
  'january',
  'february',
  'march',
  'april',
  'may',
  'june',
  'july',
  'august',
  'september',
  'october',
  'november',
  'december',
];
const MONTH_WORD =
  '(?<m>january|february|march|april|may|june|july|august|september|sept|october|november|december|jan|feb|mar|apr|jun|jul|aug|sep|oct|nov|dec)';
const YEAR = '(?<y>(?:19|20)\\d\\d)';

function isValid(d: DateReading): boolean {
  if (d.year < 1900 || d.year > 2099 || d.month < 1 || d.month > 12 || d.day < 1) return false;
  const last = new Date(Date.UTC(d.year, d.month, 0)).getUTCDate();
  return d.day <= last;
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/** A numeric field written again with the width it had (2 when it had a leading zero). */
function field(n: number, original: string): string {
  return original.length >= 2 ? pad(n, original.length) : String(n);
}

/** The month written like `original` (abbreviated or full, same case). */
function monthWord(month: number, original: string): string {
  const lower = original.toLowerCase();
  const full = lower.length > 3 && lower !== 'sept';
  let w = full ? MONTH_NAMES[month - 1]! : MONTHS[month - 1]!;
  if (lower === 'sept' && month === 9) w = 'sept';
  if (original === original.toUpperCase()) return w.toUpperCase();
  if (original[0] === original[0]!.toUpperCase()) return w[0]!.toUpperCase() + w.slice(1);
  return w;
}

/** The English ordinal suffix of `day` ('st', 'nd', 'rd', 'th') when the original had one, in its case. */
function ordinal(day: number, original: string | undefined): string {
  if (!original) return '';
  const teen = day % 100 >= 11 && day % 100 <= 13;
  const s = teen ? 'th' : (['th', 'st', 'nd', 'rd'][day % 10] ?? 'th');
  return original === original.toUpperCase() ? s.toUpperCase() : s;
}

function monthIndex(word: string): number {
  const w = word.toLowerCase().slice(0, 3);
  return MONTHS.indexOf(w) + 1;
}

/** Day-month-year or month-day-year numbers: both readings when both are dates. */
function dayMonthReadings(a: number, b: number, year: number, dotted: boolean): [DateReading[], boolean] {
  const dm = { year, month: b, day: a };
  const md = { year, month: a, day: b };
  const readings = [dm, md].filter(isValid);
  if (a === b) return [readings.slice(0, 1), false];
  // Dots mean day.month.year (the European form); other separators tell nothing.
  return [readings, readings.length > 1 && !dotted];
}

/** True when text[start, end) is a part of a longer dotted number (a UID, a version). */
function inDottedNumber(text: string, start: number, end: number): boolean {
  return /\d\.$/.test(text.slice(Math.max(0, start - 2), start)) || /^\.\d/.test(text.slice(end, end + 2));
}

// The forms with separators and month names (compiled once; matchAll works on a copy).
const YEAR_FIRST = new RegExp(`(?<!\\d)${YEAR}([-_./ ])(\\d{1,2})\\2(\\d{1,2})(?!\\d)`, 'g');
const YEAR_LAST = new RegExp(`(?<!\\d)(\\d{1,2})([-_./ ])(\\d{1,2})\\2${YEAR}(?!\\d)`, 'g');
const DAY_MONTH_YEAR = new RegExp(
  `(?<!\\d)(?<d>\\d{1,2})(?<s1>[-_. ]?)${MONTH_WORD}(?![a-z])(?<s2>[-_. ]?)${YEAR}(?!\\d)`,
  'gi',
);
const MONTH_DAY_YEAR = new RegExp(
  `(?<![a-z])${MONTH_WORD}(?<s1>[-_. ]?)(?<d>\\d{1,2})(?<ord>st|nd|rd|th)?(?<s2>,? ?|[-_.])${YEAR}(?!\\d)`,
  'gi',
);
const YEAR_MONTH_DAY = new RegExp(
  `(?<!\\d)${YEAR}(?<s1>[-_. ]?)${MONTH_WORD}(?![a-z])(?<s2>[-_. ]?)(?<d>\\d{1,2})(?!\\d)`,
  'gi',
);

/**
 * Every date in `text`, left to right, not overlapping. A date must not touch other digits
 * (`120231103` is not a date); letters around it are fine (`IM20231103`, `scan2023-11-03`).
 */
export function findDates(text: string): DateMention[] {
  const found: DateMention[] = [];
  const taken = (s: number, e: number) => found.some((m) => s < m.end && e > m.start);
  const add = (m: DateMention) => {
    if (m.readings.length > 0 && !taken(m.start, m.end)) found.push(m);
  };

  // Digit runs: YYYYMMDD, YYYYMMDDHHMM[SS], DDMMYYYY / MMDDYYYY.
  for (const m of text.matchAll(/\d+/g)) {
    const run = m[0];
    const at = m.index;
    if (run.length === 8 || run.length === 12 || run.length === 14) {
      const d = { year: +run.slice(0, 4), month: +run.slice(4, 6), day: +run.slice(6, 8) };
      const time = run.slice(8);
      const timeOk =
        time === '' ||
        (+time.slice(0, 2) <= 23 && +time.slice(2, 4) <= 59 && (time.length < 6 || +time.slice(4, 6) <= 59));
      if (isValid(d) && timeOk) {
        add({
          start: at,
          end: at + 8,
          readings: [d],
          ambiguous: false,
          format: (x) => pad(x.year, 4) + pad(x.month, 2) + pad(x.day, 2),
        });
        continue;
      }
    }
    if (run.length === 8) {
      const year = +run.slice(4);
      if (year >= 1900 && year <= 2099) {
        const [readings, ambiguous] = dayMonthReadings(+run.slice(0, 2), +run.slice(2, 4), year, false);
        const dayFirst = readings[0] !== undefined && readings[0].day === +run.slice(0, 2);
        add({
          start: at,
          end: at + 8,
          readings,
          ambiguous,
          format: (x) =>
            (dayFirst ? pad(x.day, 2) + pad(x.month, 2) : pad(x.month, 2) + pad(x.day, 2)) + pad(x.year, 4),
        });
      }
    }
  }

  // YYYY-MM-DD with one separator used twice.
  for (const m of text.matchAll(YEAR_FIRST)) {
    const [, y, sep, mo, d] = m as unknown as [string, string, string, string, string];
    if (sep === '.' && inDottedNumber(text, m.index, m.index + m[0].length)) continue;
    const reading = { year: +y, month: +mo, day: +d };
    if (!isValid(reading)) continue;
    add({
      start: m.index,
      end: m.index + m[0].length,
      readings: [reading],
      ambiguous: false,
      format: (x) => `${pad(x.year, 4)}${sep}${field(x.month, mo)}${sep}${field(x.day, d)}`,
    });
  }

  // DD.MM.YYYY, DD-MM-YYYY, MM/DD/YYYY...
  for (const m of text.matchAll(YEAR_LAST)) {
    const [, a, sep, b, y] = m as unknown as [string, string, string, string, string];
    if (sep === '.' && inDottedNumber(text, m.index, m.index + m[0].length)) continue;
    const [readings, ambiguous] = dayMonthReadings(+a, +b, +y, sep === '.');
    const dayFirst = readings[0] !== undefined && readings[0].day === +a;
    add({
      start: m.index,
      end: m.index + m[0].length,
      readings,
      ambiguous,
      format: (x) =>
        dayFirst
          ? `${field(x.day, a)}${sep}${field(x.month, b)}${sep}${pad(x.year, 4)}`
          : `${field(x.month, a)}${sep}${field(x.day, b)}${sep}${pad(x.year, 4)}`,
    });
  }

  // Month names: 3 Nov 2024, 03-Nov-2024, 3Nov2024; Nov 3, 2024, Nov 3rd 2024; 2024-Nov-03.
  const named: [RegExp, (g: Record<string, string>, month: string, x: DateReading) => string][] = [
    [DAY_MONTH_YEAR, (g, w, x) => `${field(x.day, g.d!)}${g.s1}${w}${g.s2}${pad(x.year, 4)}`],
    [MONTH_DAY_YEAR, (g, w, x) => `${w}${g.s1}${field(x.day, g.d!)}${ordinal(x.day, g.ord)}${g.s2}${pad(x.year, 4)}`],
    [YEAR_MONTH_DAY, (g, w, x) => `${pad(x.year, 4)}${g.s1}${w}${g.s2}${field(x.day, g.d!)}`],
  ];
  for (const [re, write] of named) {
    for (const m of text.matchAll(re)) {
      const g = m.groups as Record<string, string>;
      const reading = { year: +g.y!, month: monthIndex(g.m!), day: +g.d! };
      if (!isValid(reading)) continue;
      add({
        start: m.index,
        end: m.index + m[0].length,
        readings: [reading],
        ambiguous: false,
        format: (x) => write(g, monthWord(x.month, g.m!), x),
      });
    }
  }
  return found.sort((a, b) => a.start - b.start);
}

/** A reading as YYYYMMDD (the DA form), for comparing with DICOM dates. */
export function toDA(d: DateReading): string {
  return pad(d.year, 4) + pad(d.month, 2) + pad(d.day, 2);
}

/** `d` plus `days` calendar days. */
export function addDays(d: DateReading, days: number): DateReading {
  const t = new Date(Date.UTC(d.year, d.month - 1, d.day) + days * 86_400_000);
  return { year: t.getUTCFullYear(), month: t.getUTCMonth() + 1, day: t.getUTCDate() };
}

/**
 * `name` with every date in it moved by `days` days, each written in the form it had
 * (`20241103_scout/IM_2024-11-03` + 10 -> `20241113_scout/IM_2024-11-13`). Returns null when a
 * date cannot be moved safely: day and month cannot be told apart, or a date is written with
 * characters that only read as digits after NFKC (full-width digits): the caller then replaces
 * the name.
 */
export function shiftDatesInName(name: string, days: number): string | null {
  const mentions = findDates(name);
  if (findDates(name.normalize('NFKC')).length !== mentions.length) return null;
  if (mentions.some((m) => m.ambiguous)) return null;
  let out = '';
  let at = 0;
  for (const m of mentions) {
    out += name.slice(at, m.start) + m.format(addDays(m.readings[0]!, days));
    at = m.end;
  }
  return out + name.slice(at);
}
