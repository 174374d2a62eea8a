// Re-runs quarantined instances through the node's processor (after the CSV was fixed), and
// deletes quarantined instances a person chose to give up. Instances still unmatched, or still
// held for their reason (uid-mismatch, study-patient-conflict, burned-in without allowBurnedIn,
// leak-guard), stay in quarantine untouched; one that is matched now but held by the leak guard
// stays with reason leak-guard. Used by `dicom-deid quarantine` (its own state) and by the
// running node's HTTP API (the node's state, audit log and mapping).
import { AuditLog, type AuditRow } from '../audit/auditLog.js';
import type { MappingTable } from '../core/mapping/mappingTable.js';
import { claimOutputTree } from '../io/projectMarker.js';
import { openStateStore } from '../state/openStateStore.js';
import type { StateStore } from '../state/stateStore.js';
import { processInstance } from './instanceProcessor.js';
import { loadMapping } from './mappingWatcher.js';
import { nodeMarkerNames, type NodeConfig } from './nodeConfig.js';
import {
  NOT_REPLAYABLE,
  listQuarantine,
  removeFromQuarantine,
  requarantine,
  selectQuarantined,
  type QuarantinedInstance,
  type QuarantineSelection,
} from './quarantine.js';
import { fileRef } from './spool/spoolRef.js';
import { ConfigError } from '../errors.js';
import { warnOnlyTags } from '../leakGuardSettings.js';

export interface ReplaySummary {
  /** Items the selection named. */
  selected: number;
  filed: number;
  /** Left in quarantine: still no mapping row, or still held for their reason. */
  stillUnmatched: number;
  /** Items of a reason a replay never files (NOT_REPLAYABLE), left as they are. */
  skipped: number;
  /** Research IDs and session folders ({researchId}_{N}) of the filed ones, for the log. */
  filedStudies: string[];
}

/** What a replay files with: a state, a mapping, the node's folders, forward destinations, an audit sink. */
export interface ReplayDeps {
  state: StateStore;
  mapping: MappingTable;
  output: string;
  quarantine: string;
  /** Destination names every filed instance is queued for. */
  forwardTo: string[];
  /** File instances whose Burned In Annotation is YES (config allowBurnedIn) instead of keeping them. */
  allowBurnedIn?: boolean;
  /** Attributes (tags) whose leak guard hits are warnings only (config leakGuardWarnOnly). */
  leakGuardWarnOnly?: ReadonlySet<number>;
  audit: (row: AuditRow) => void;
}

/**
 * Files the quarantined items `sel` names (all when empty) with `deps.mapping`, in the order they
 * arrived (byArrival), one at a time, yielding to the event loop between instances (the node
 * keeps answering while it replays).
 */
export async function replayQuarantined(deps: ReplayDeps, sel: QuarantineSelection = {}): Promise<ReplaySummary> {
  const processorDeps = {
    state: deps.state,
    mapping: () => deps.mapping,
    outputDir: deps.output,
    quarantineDir: deps.quarantine,
    forwardTo: deps.forwardTo,
    allowBurnedIn: deps.allowBurnedIn,
    leakGuardWarnOnly: deps.leakGuardWarnOnly,
    audit: (row: AuditRow) => deps.audit({ ...row, sourcePath: `quarantine:${row.sourcePath}` }),
  };
  const items = byArrival(selectQuarantined(await listQuarantine(deps.quarantine), sel));
  const summary: ReplaySummary = { selected: items.length, filed: 0, stillUnmatched: 0, skipped: 0, filedStudies: [] };
  const studies = new Set<string>();
  for (const q of items) {
    if (NOT_REPLAYABLE.has(q.sidecar.reason)) {
      summary.skipped++;
      continue;
    }
    const receivedAt = q.sidecar.receivedAt ? new Date(q.sidecar.receivedAt) : new Date();
    const outcome = await processInstance(
      processorDeps,
      fileRef(q.file),
      { callingAet: q.sidecar.callingAet || 'quarantine', receivedAt },
      true,
    );
    if (outcome.status === 'filed') {
      await removeFromQuarantine(q.file);
      summary.filed++;
      studies.add(outcome.accession);
    } else {
      // Matched now but held by the leak guard: its reason becomes leak-guard (quarantine list).
      if (outcome.status === 'unmatched' && outcome.reason === 'leak-guard' && q.sidecar.reason !== 'leak-guard') {
        requarantine(q, 'leak-guard', outcome.message);
      }
      summary.stillUnmatched++;
    }
    await new Promise((r) => setImmediate(r));
  }
  summary.filedStudies = [...studies].sort();
  return summary;
}

/**
 * The items in the order the node received them (sidecar receivedAt; then Study Date, then the
 * item id, for a stable order). The node numbers a patient's sessions in order of arrival (the
 * first instance of a new study takes the next number), so a replay gives the studies it files
 * the numbers, relative to each other, they would have had if their rows had been in the CSV
 * when they arrived (listQuarantine's order is that of hashed folder names). Items without a
 * receivedAt go last.
 */
export function byArrival(items: readonly QuarantinedInstance[]): QuarantinedInstance[] {
  const at = (q: QuarantinedInstance) => {
    const ms = Date.parse(q.sidecar.receivedAt);
    return Number.isNaN(ms) ? Number.POSITIVE_INFINITY : ms;
  };
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...items].sort(
    (a, b) => at(a) - at(b) || cmp(a.sidecar.keys.studyDate ?? '', b.sidecar.keys.studyDate ?? '') || cmp(a.id, b.id),
  );
}

/**
 * Deletes the quarantined items `sel` names (an empty selection deletes nothing: name what to
 * delete), writing one audit row per item (`deleted from quarantine by <who>`). Returns how many.
 */
export async function deleteQuarantined(
  quarantine: string,
  sel: QuarantineSelection,
  audit: (row: AuditRow) => void,
  who: string,
): Promise<number> {
  if (sel.item === undefined && sel.study === undefined && sel.reason === undefined) return 0;
  let n = 0;
  for (const q of selectQuarantined(await listQuarantine(quarantine), sel)) {
    await removeFromQuarantine(q.file);
    const uid = q.sidecar.keys.sopInstanceUid;
    audit({
      sourcePath: `quarantine:${q.id}${uid ? ` (${uid})` : ''}`,
      status: 'error',
      outputPath: '',
      message: `deleted from quarantine by ${who} (was: ${q.sidecar.reason})`,
    });
    n++;
  }
  return n;
}

/**
 * Files what the quarantine holds (or what `sel` names) with the node's current mapping CSV, in
 * the node's state (never a new one: rejects with StateNotFoundError when `c.db` does not exist).
 */
export async function replayQuarantine(c: NodeConfig, sel: QuarantineSelection = {}): Promise<ReplaySummary> {
  const mapping = loadMapping(c.csv);
  const state = await openStateStore(c.db, { create: false });
  try {
    claimOutputTree(c.output, await state.uidSecret(), nodeMarkerNames(c), true);
  } catch (e) {
    await state.close();
    throw e;
  }
  const audit = new AuditLog(c.logDir, new Date(), { lazy: true });
  try {
    return await replayQuarantined(
      {
        state,
        mapping,
        output: c.output,
        quarantine: c.quarantine,
        forwardTo: c.forward.map((d) => d.name),
        allowBurnedIn: c.allowBurnedIn,
        leakGuardWarnOnly: new Set(warnOnlyTags(c.leakGuardWarnOnly, 'leakGuardWarnOnly', (m) => new ConfigError(m))),
        audit: (row) => audit.write(row),
      },
      sel,
    );
  } finally {
    audit.close();
    await state.close();
  }
}
