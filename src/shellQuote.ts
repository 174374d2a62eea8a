// Paths in the commands a message suggests ("dicom-deid check-csv <path> shows them"), quoted so
// that the suggestion can be pasted into a POSIX shell as it is: found by a fresh-user trial, where
// `/srv/study data/mapping.csv` was suggested unquoted.

/** Characters a POSIX shell takes literally outside quotes. */
const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * `arg` as one word of a POSIX shell command line: as it is when every character is safe, else in
 * single quotes (a `'` inside as `'\''`). shellQuote("/srv/a b.csv") is "'/srv/a b.csv'".
 */
export function shellQuote(arg: string): string {
  if (SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}
