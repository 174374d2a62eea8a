// A problem found in the mapping CSV, worded twice: for the researcher (quoting the values) and
// for the node's log (without any value from the file: an MRN or accession is an identifier).

import { MappingError } from '../types.js';

export type Severity = 'error' | 'warning';

export interface CsvProblem {
  severity: Severity;
  /** Physical line (1-based) the problem is on; 0 when it is about the whole file. */
  line: number;
  /** For the researcher: names the column as written in the header and quotes the value. */
  text: string;
  /** The same words with every CSV value replaced by `(value not shown)`: for logs. */
  redacted: string;
}

/** A value from the CSV inside a problem's words (see `words`). */
export class CsvValue {
  /** `value`: the CSV value as written, quoted in `text` and replaced in `redacted`. */
  constructor(readonly value: string) {}
}

/** Marks `value` as coming from the CSV: quoted in `text`, hidden in `redacted`. */
export function v(value: string): CsvValue {
  return new CsvValue(value);
}

/** A value quoted for a message: JSON escaping keeps the message on one line; long ones are cut. */
export function quote(value: string): string {
  const cut = value.length > 80 ? value.slice(0, 77) + '...' : value;
  return JSON.stringify(cut);
}

/**
 * Tagged template giving both wordings of a problem: interpolated CsvValue's are quoted in
 * `text` and replaced by `(value not shown)` in `redacted`; anything else appears in both.
 */
export function words(
  strings: TemplateStringsArray,
  ...parts: (CsvValue | string | number)[]
): { text: string; redacted: string } {
  let text = strings[0]!;
  let redacted = strings[0]!;
  parts.forEach((p, i) => {
    const tail = strings[i + 1]!;
    if (p instanceof CsvValue) {
      text += quote(p.value) + tail;
      redacted += '(value not shown)' + tail;
    } else {
      text += String(p) + tail;
      redacted += String(p) + tail;
    }
  });
  return { text, redacted };
}

/** How many problems of one severity are listed before "... and N more". */
export const MAX_PROBLEMS_SHOWN = 25;

/**
 * `mapping.csv line 7: <text>`, or `mapping.csv: <text>` for the whole file; with an empty
 * source, `line 7: <text>` and `<text>`.
 */
export function formatProblem(p: CsvProblem, source: string, redacted = false): string {
  const where = p.line > 0 ? (source ? `${source} line ${p.line}` : `line ${p.line}`) : source;
  const what = redacted ? p.redacted : p.text;
  return where ? `${where}: ${what}` : what;
}

/**
 * The problems of one severity as lines for the user, in line order, at most MAX_PROBLEMS_SHOWN
 * and then one line counting the rest.
 */
export function formatProblems(
  problems: readonly CsvProblem[],
  severity: Severity,
  source: string,
  redacted = false,
): string[] {
  const list = problems.filter((p) => p.severity === severity);
  const lines = list.slice(0, MAX_PROBLEMS_SHOWN).map((p) => formatProblem(p, source, redacted));
  const more = list.length - MAX_PROBLEMS_SHOWN;
  if (more > 0) {
    const what = `... and ${more} more ${severity === 'error' ? 'problem' : 'warning'}${more === 1 ? '' : 's'}`;
    lines.push(source ? `${source}: ${what}` : what);
  }
  return lines;
}

/**
 * The MappingError for a CSV with errors: its message is every error line (capped, see
 * formatProblems) joined by newlines; `problems` keeps them all, with their redacted wording.
 */
export function mappingErrorOf(problems: readonly CsvProblem[], source: string): MappingError {
  return new MappingError(formatProblems(problems, 'error', source).join('\n'), [...problems]);
}
