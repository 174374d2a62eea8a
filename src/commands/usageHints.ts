// Plain words for the command-line mistakes people make: the old script's form without the
// command name, an option typed wrong, an unquoted path with a space, an option given twice.
// Pure functions over the raw arguments and the options yargs knows for the command.

/** The options yargs knows for a command (yargs' getOptions(), the fields used here). */
export interface KnownOptions {
  /** Every option and positional name. */
  key: Record<string, unknown>;
  alias: Record<string, string[]>;
  array: string[];
  boolean: string[];
}

/**
 * The old script's form, `dicom-deid --csv m.csv --input Raw --output Out`, is `batch`: returns
 * the arguments with `batch` put first, or null when they name a command (`commandNames`) or ask
 * for help.
 */
export function asBatchCommand(argv: readonly string[], commandNames: readonly string[]): string[] | null {
  const first = argv[0];
  if (first === undefined || !first.startsWith('-') || ['--help', '-h', '--version'].includes(first)) return null;
  if (argv.some((a) => commandNames.includes(a))) return null;
  return argv.some((a) => a === '--csv' || a.startsWith('--csv=')) ? ['batch', ...argv] : null;
}

function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The option names a user may type (`--log-dir`, `--logDir`, aliases), camel-cased. */
function knownNames(o: KnownOptions): Set<string> {
  const names = new Set<string>();
  for (const k of Object.keys(o.key)) names.add(camel(k));
  for (const [k, aliases] of Object.entries(o.alias)) for (const a of [k, ...aliases]) names.add(camel(a));
  return names;
}

/** Optimal string alignment distance (Levenshtein with transpositions): `inptu` is 1 from `input`. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The known option closest to `name` (a typo, or its start), if any is close enough. */
function closest(name: string, o: KnownOptions): string | undefined {
  const typed = kebab(name).toLowerCase();
  let best: { option: string; d: number } | undefined;
  for (const k of Object.keys(o.key)) {
    if (k.length < 2 || k !== kebab(k)) continue; // yargs' camel-case copies
    const d = k.startsWith(typed) && typed.length >= 3 ? 0.5 : editDistance(typed, k);
    if (d <= (typed.length >= 5 ? 2 : 1) && (!best || d < best.d)) best = { option: k, d };
  }
  return best?.option;
}

/**
 * One line per option given twice (yargs makes such a value an array, which the commands would
 * take for one path): `--db is given twice ("a.sqlite", "b.sqlite"): give it once`.
 */
export function repeatedOptions(args: Record<string, unknown>, o: KnownOptions): string[] {
  const lines: string[] = [];
  const repeatable = new Set(o.array.map(camel));
  for (const k of Object.keys(o.key)) {
    if (k !== kebab(k) || repeatable.has(camel(k))) continue;
    const v = args[k] ?? args[camel(k)];
    if (!Array.isArray(v)) continue;
    const shown = v.map((x) => JSON.stringify(typeof x === 'string' ? x : String(x))).join(', ');
    lines.push(`--${k} is given ${v.length === 2 ? 'twice' : `${v.length} times`} (${shown}): give it once`);
  }
  return lines;
}

/**
 * Hints for a usage error: an unknown option near a known one (`unknown option --inptu: did you
 * mean --input?`), and a word yargs found unknown right after an option's value (an unquoted
 * path with a space). `unknownWords`: the names in yargs' "Unknown argument(s): ..." message.
 * Empty when there is nothing better to say than yargs' own message.
 */
export function usageHints(
  argv: readonly string[],
  o: KnownOptions,
  unknownWords: readonly string[],
  command: string,
): string[] {
  const known = knownNames(o);
  const hints: string[] = [];
  const typedOptions = new Set<string>();
  for (const token of argv) {
    if (token === '--') break;
    if (!token.startsWith('-') || token === '-' || /^-\d/.test(token)) continue;
    let name = token.replace(/^-+/, '').split('=')[0]!;
    typedOptions.add(name);
    if (name.startsWith('no-') && known.has(camel(name.slice(3)))) continue;
    if (known.has(camel(name))) continue;
    name = name.replace(/^no-/, '');
    const near = closest(name, o);
    hints.push(
      near
        ? `unknown option ${token.split('=')[0]}: did you mean --${near}?`
        : `unknown option ${token.split('=')[0]} (see dicom-deid ${command} --help)`,
    );
  }
  const strays = new Set(unknownWords.filter((w) => !typedOptions.has(w)));
  const reported = new Set<number>();
  for (const [i, word] of argv.entries()) {
    if (!strays.has(word) || reported.has(i) || i === 0) continue; // first: an unknown command (yargs says so)
    const before = i > 0 ? argv[i - 1]! : '-';
    if (before.startsWith('-')) {
      hints.push(`${JSON.stringify(word)} is not an option or a value (see dicom-deid ${command} --help)`);
      continue;
    }
    // A path cut at its spaces: the value before, this word and the stray words after it.
    let end = i;
    while (end + 1 < argv.length && strays.has(argv[end + 1]!)) reported.add(++end);
    const option = i > 1 && argv[i - 2]!.startsWith('-') ? `${argv[i - 2]} ` : '';
    const value = argv.slice(i - 1, end + 1).join(' ');
    hints.push(`${JSON.stringify(word)} is not an option: quote paths that contain spaces, e.g. ${option}"${value}"`);
  }
  return hints;
}
