// Identifying values of a source instance and where they reappear in text (paths, values).
// Pure: no I/O.
export { IdentifierMatcher, type Identifier, type IdentifierKind, type MatcherOptions } from './matcher.js';
export { CohortMatcher, type CohortEntry } from './cohortMatcher.js';
export {
  identifyingValues,
  readIdentifyingValues,
  identifiersOf,
  type IdentifyingValues,
} from './identifyingValues.js';
export { findDates, shiftDatesInName, addDays, toDA, type DateMention, type DateReading } from './textDates.js';
export { fold, words } from './fold.js';
export { readTextFile, MAX_TEXT_FILE_BYTES, type TextFile } from './textFile.js';
