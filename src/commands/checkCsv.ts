// `dicom-deid check-csv mapping.csv`: validates a mapping CSV alone, before a batch run or an
// edit of the node's CSV. Output shows values (it is for the researcher holding the key).
import type { Argv, CommandModule } from 'yargs';
import { formatProblems } from '../core/mapping/csvProblem.js';
import { rowsOrThrow, type MappingCsv } from '../core/mapping/mappingCsv.js';
import type { MappingRow } from '../core/types.js';
import { UsageError } from '../errors.js';
import { checkMappingFile } from '../io/mappingFile.js';
import { plural } from '../words.js';
import { wrapText } from './wrapText.js';

interface CheckArgs {
  csv: string;
}

const DELIMITER_WORDS = { ',': 'comma-separated', ';': 'semicolon-separated', '\t': 'tab-separated' } as const;

/** "UTF-8 with byte order mark, semicolon-separated" */
function howRead(csv: MappingCsv): string {
  const parts: string[] = [];
  if (csv.encoding) {
    const e = csv.encoding;
    parts.push(`${e.name}${e.bom ? ' with byte order mark' : ''}${e.guessed ? ' (a guess)' : ''}`);
  }
  if (csv.delimiter) parts.push(DELIMITER_WORDS[csv.delimiter]);
  return parts.join(', ');
}

/** One line per research ID: its rows and day offset(s). */
function researchIdLines(rows: MappingRow[]): string[] {
  const byId = new Map<string, MappingRow[]>();
  for (const r of rows) {
    const list = byId.get(r.researchId);
    if (list) list.push(r);
    else byId.set(r.researchId, [r]);
  }
  const width = Math.max(...[...byId.keys()].map((id) => id.length));
  return [...byId.entries()].map(([id, list]) => {
    const lines = list.map((r) => r.line);
    const offsets = [...new Set(list.map((r) => r.dayOffset))];
    return `  ${id.padEnd(width)}  ${list.length === 1 ? 'line' : 'lines'} ${lines.join(', ')}; day offset ${offsets.join(' / ')}`;
  });
}

const command: CommandModule<object, CheckArgs> = {
  command: 'check-csv <csv>',
  describe: 'Check a mapping CSV on its own: every problem at once, or its rows and research IDs',
  builder: (y: Argv) =>
    y
      .usage('$0 check-csv mapping.csv')
      .positional('csv', { type: 'string', demandOption: true, describe: 'The mapping CSV to check' })
      .epilogue(
        wrapText(
          'Reads the CSV as batch and serve do (UTF-8, UTF-16 "Unicode text" or Windows-1252; commas, ' +
            'semicolons or tabs) and reports every problem, one per line. Exit status: 0 valid ' +
            '(warnings are shown on stderr), 2 not valid or not readable. The output shows CSV ' +
            'values: it is for the researcher who holds the key.',
        ),
      ) as unknown as Argv<CheckArgs>,
  handler: (args) => {
    const csv = checkMappingFile(args.csv, (message) => new UsageError(message));
    for (const line of formatProblems(csv.problems, 'warning', csv.source)) {
      process.stderr.write(`dicom-deid: warning: ${line}\n`);
    }
    const rows = rowsOrThrow(csv, csv.source); // throws every error: exit 2, one line each
    const ids = new Set(rows.map((r) => r.researchId));
    process.stdout.write(
      `${csv.source}: valid: ${plural(rows.length, 'row')}, ${plural(ids.size, 'research ID')} (${howRead(csv)})\n`,
    );
    process.stdout.write(`Research IDs:\n${researchIdLines(rows).join('\n')}\n`);
    process.exitCode = 0;
  },
};

export default command;
