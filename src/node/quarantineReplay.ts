// Re-runs quarantined instances through the node's processor (after the CSV was fixed).
// Instances still unmatched, or still held for their reason (uid-mismatch, study-patient-conflict,
// burned-in without allowBurnedIn, leak-guard), stay in quarantine untouched; one that is matched
// now but held by the leak guard stays with reason leak-guard.
import { AuditLog } from '../audit/auditLog.js';
import { openStateStore } from '../state/openStateStore.js';
import { processInstance } from './instanceProcessor.js';
import { loadMapping } from './mappingWatcher.js';
import type { NodeConfig } from './nodeConfig.js';
import { listQuarantine, removeFromQuarantine, requarantine } from './quarantine.js';
import { fileRef } from './spool/spoolRef.js';
import { ConfigError } from '../errors.js';
import { warnOnlyTags } from '../leakGuardSettings.js';

export interface ReplaySummary {
  filed: number;
  /** Left in quarantine: still no mapping row, or still held for their reason. */
  stillUnmatched: number;
}

/**
 * Files what the quarantine holds with the node's current mapping CSV, in the node's state
 * (never a new one: rejects with StateNotFoundError when `c.db` does not exist).
 */
export async function replayQuarantine(c: NodeConfig): Promise<ReplaySummary> {
  const mapping = loadMapping(c.csv);
  const state = await openStateStore(c.db, { create: false });
  const audit = new AuditLog(c.logDir);
  try {
    const deps = {
      state,
      mapping: () => mapping,
      outputDir: c.output,
      quarantineDir: c.quarantine,
      forwardTo: c.forward.map((d) => d.name),
      allowBurnedIn: c.allowBurnedIn,
      audit: (row: Parameters<AuditLog['write']>[0]) =>
        audit.write({ ...row, sourcePath: `quarantine:${row.sourcePath}` }),
      leakGuardWarnOnly: new Set(warnOnlyTags(c.leakGuardWarnOnly, 'leakGuardWarnOnly', (m) => new ConfigError(m))),
    };
    const summary: ReplaySummary = { filed: 0, stillUnmatched: 0 };
    for (const q of await listQuarantine(c.quarantine)) {
      const receivedAt = q.sidecar.receivedAt ? new Date(q.sidecar.receivedAt) : new Date();
      const outcome = await processInstance(
        deps,
        fileRef(q.file),
        { callingAet: q.sidecar.callingAet || 'quarantine', receivedAt },
        true,
      );
      if (outcome.status === 'filed') {
        await removeFromQuarantine(q.file);
        summary.filed++;
      } else {
        // Matched now but held by the leak guard: its reason becomes leak-guard (quarantine list).
        if (outcome.status === 'unmatched' && outcome.reason === 'leak-guard' && q.sidecar.reason !== 'leak-guard') {
          requarantine(q, 'leak-guard', outcome.message);
        }
        summary.stillUnmatched++;
      }
    }
    return summary;
  } finally {
    audit.close();
    await state.close();
  }
}
