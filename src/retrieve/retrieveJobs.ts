// Making a retrieve job from a command (the CLI's `retrieve`, the node's HTTP API): read the
// mapping CSV, and continue the unfinished job of the same CSV, PACS and plan, or create one.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describeSystemError, UsageError } from '../errors.js';
import { formatDestination, parseDestination } from '../forward/destination.js';
import { readMappingFile } from '../io/mappingFile.js';
import type { StateStore } from '../state/stateStore.js';
import type { RetrieveJob } from '../state/retrieveRecords.js';
import { checkSettings, planKeyOf, settingsToParams, type RetrieveSettings } from './jobSettings.js';

/** What a retrieve command asks for. */
export interface RetrieveRequest {
  /** The PACS, `AET@host:port`. */
  from: string;
  /** The mapping CSV (a path). */
  csv: string;
  /** Our AE title: where the PACS sends to. */
  moveDestination: string;
  settings: RetrieveSettings;
}

/** The PACS as stored with a job: `AET@host:port`, normalized. Throws UsageError. */
export function normalizePacs(from: string): string {
  try {
    return formatDestination(parseDestination(from));
  } catch (e) {
    throw new UsageError(`--from: ${(e as Error).message}`);
  }
}

/** The SHA-256 of a file's bytes (hex); throws UsageError naming the file when it cannot be read. */
export function fileSha256(file: string): string {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch (e) {
    throw new UsageError(`cannot read the mapping CSV ${file}: ${describeSystemError(e)}`);
  }
}

/**
 * The job for `req`: the newest unfinished one of the same PACS, destination, CSV (by content)
 * and plan (its settings are updated to the request's), or a new one with every CSV row.
 * Throws UsageError for a bad request, MappingError for a CSV that does not validate.
 */
export async function jobForRequest(
  state: StateStore,
  req: RetrieveRequest,
  warn: (line: string) => void = () => undefined,
): Promise<{ job: RetrieveJob; resumed: boolean }> {
  const pacs = normalizePacs(req.from);
  let settings: RetrieveSettings;
  try {
    settings = checkSettings(req.settings);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const csvPath = resolve(req.csv);
  const rows = readMappingFile(csvPath, (m) => new UsageError(m), warn);
  const csvSha256 = fileSha256(csvPath);
  const planKey = planKeyOf(settings);
  const match = { pacs, moveDestination: req.moveDestination, csvSha256, planKey };
  const existing = await state.unfinishedRetrieveJob(match);
  if (existing) return { job: existing, resumed: true };
  const job = await state.createRetrieveJob(
    { ...match, csvPath, params: settingsToParams(settings) },
    rows.map((r) => ({
      line: r.line,
      researchId: r.researchId,
      mrn: r.mrn,
      accession: r.accession,
      surgeryDate: r.surgeryDate,
    })),
  );
  return { job, resumed: false };
}
