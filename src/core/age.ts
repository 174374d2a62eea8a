// PatientAge (AS) generalisation: ages are binned DOWN to 5-year bins ("043Y" -> "040Y").
//
// Decisions:
// - Ages given in days/weeks/months (infants) are converted to completed years and binned, so
//   every output is an `NNNY` value ("011M" -> "000Y", "030W" -> "000Y", "400D" -> "000Y").
// - Ages of 90 and over are all reported as "090Y" (HIPAA Safe Harbor aggregates ages over 89
//   into one "90 or older" category); "089Y" -> "085Y", "093Y" -> "090Y", "104Y" -> "090Y".
// - Anything unparseable becomes '' (nothing identifying survives).

import { parseDA } from './dates.js';

/** The top bin: 90 or older. */
export const MAX_AGE_BIN = 90;

function binYears(years: number): string {
  if (!Number.isFinite(years) || years < 0) return '';
  const bin = Math.min(Math.floor(years / 5) * 5, MAX_AGE_BIN);
  return `${String(bin).padStart(3, '0')}Y`;
}

/**
 * Bins a DICOM AS value (`nnnD|W|M|Y`, padding ignored). Returns "NNNY" binned down to 5 years
 * (capped at "090Y"), or '' when the value is empty or not a valid AS.
 */
export function binAge(age: string): string {
  const m = /^(\d{3})([DWMY])$/.exec(age.replace(/^[\s\0]+|[\s\0]+$/g, ''));
  if (!m) return '';
  const n = Number(m[1]);
  switch (m[2]) {
    case 'Y':
      return binYears(n);
    case 'M':
      return binYears(Math.floor(n / 12));
    case 'W':
      return binYears(Math.floor((n * 7) / 365.25));
    default:
      return binYears(Math.floor(n / 365.25));
  }
}

/**
 * Age at the study, in completed years, from two DA values (YYYYMMDD or legacy YYYY.MM.DD),
 * binned like binAge. '' when either date is missing/invalid or the study precedes the birth.
 * A Feb 29 birthday counts as reached on Mar 1 in non-leap years.
 */
export function ageFromDates(birthDA: string, studyDA: string): string {
  const b = parseDA(birthDA);
  const s = parseDA(studyDA);
  if (b === null || s === null || s < b) return '';
  const bd = new Date(b * 86_400_000);
  const sd = new Date(s * 86_400_000);
  let years = sd.getUTCFullYear() - bd.getUTCFullYear();
  const beforeBirthday =
    sd.getUTCMonth() < bd.getUTCMonth() || (sd.getUTCMonth() === bd.getUTCMonth() && sd.getUTCDate() < bd.getUTCDate());
  if (beforeBirthday) years -= 1;
  return binYears(years);
}
