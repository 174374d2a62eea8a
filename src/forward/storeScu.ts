// C-STORE SCU for forwarding: sends Part 10 files (already de-identified, on disk) to one peer,
// verbatim, and gives every file an outcome.
//
// Built on our own SCU association (dimse/scu), not on dcmjs-dimse's Client (see the README's
// "The sending client" and docs/research/dcmjs-dimse.md sections 2, 3, 8 for what that
// library did wrong here). What this file guarantees:
// * Verbatim bytes: each file's data set (everything after its file meta) is sent as stored, read
//   from disk in bounded chunks while it is sent; nothing is ever converted.
// * Each stored transfer syntax is proposed on a presentation context of its own, next to one
//   [Explicit LE, Implicit LE] context per SOP class that only serves to say, when the peer refuses
//   the stored syntax, what it would have accepted. A file whose stored syntax was not accepted
//   is not sent and goes dead with a reason naming the SOP class and syntaxes.
// * Every file gets an outcome: delivered, warning (stored), transient (retry later) or permanent
//   (dead), and the association has a hard overall timeout (60 s + 30 s per file by default).
// * No identifier in any message: reasons name SOP classes, transfer syntaxes, statuses and the
//   destination, never a SOP Instance UID.

import { DicomFormatError } from '../core/types.js';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../core/dicom/transferSyntax.js';
import { ContextResult } from '../dimse/acse.js';
import { readP10Header, type P10Header } from '../dimse/part10.js';
import { AssociationError, ScuAssociation, type NegotiatedContext } from '../dimse/scu/association.js';
import { cStore } from '../dimse/scu/cStore.js';
import { openFileDataSet, type FileDataSet } from '../dimse/scu/dataSetSource.js';
import type { SocketFactory } from '../dimse/scu/socketFactory.js';
import { statusMeaning } from '../dimse/status.js';
import { uidLabel } from '../dimse/uidNames.js';
import { destinationLabel, type Destination } from './destination.js';
import { destinationSocketFactory } from './destinationTls.js';

/** Result of one file. `warning` means delivered (the peer stored it, with a warning status). */
export type StoreOutcome =
  | { kind: 'delivered'; status: number }
  | { kind: 'warning'; status: number; reason: string }
  | { kind: 'transient-failure'; status?: number; reason: string }
  | { kind: 'permanent-failure'; status?: number; reason: string };

export interface FileOutcome {
  filePath: string;
  outcome: StoreOutcome;
}

export interface SendReport {
  /** One entry per input file, in input order. */
  outcomes: FileOutcome[];
  /**
   * Set when an association could not be established or was lost (connection refused, timeout,
   * abort, transient rejection): the destination is unreachable/unhealthy rather than refusing files.
   */
  connectionProblem?: string;
  /** Number of associations opened (attempted). */
  associations: number;
}

export interface StoreScuOptions {
  /** Our (calling) AE title, unless the destination has its own (Destination.callingAeTitle). */
  callingAet: string;
  /** Maximum instances per association (default 100). */
  maxPerAssociation?: number;
  /** TCP connect timeout, ms (default 60 s). */
  connectTimeoutMs?: number;
  /** Max wait for A-ASSOCIATE-AC/RJ, ms (default 30 s). */
  associationTimeoutMs?: number;
  /**
   * Max silence from the peer while it owes us something (a C-STORE-RSP, the A-RELEASE-RP, or
   * taking the bytes we send), ms (default 60 s).
   */
  pduTimeoutMs?: number;
  /**
   * Hard cap on one association's total duration, ms (default 60 s + 30 s per instance):
   * a hung peer can never hang the caller longer than this.
   */
  overallTimeoutMs?: number;
  /** How to connect (default: the destination's, destinationSocketFactory: TLS when it has `tls`, else TCP). */
  socketFactory?: SocketFactory;
}

/** Maps a C-STORE response status to an outcome (meanings: dimse/status.ts). */
export function classifyStoreStatus(status: number): StoreOutcome {
  const { category, text } = statusMeaning(status);
  if (category === 'success') return { kind: 'delivered', status };
  if (category === 'warning') return { kind: 'warning', status, reason: text };
  if (category === 'permanent') return { kind: 'permanent-failure', status, reason: text };
  return { kind: 'transient-failure', status, reason: text };
}

interface Prepared {
  index: number;
  filePath: string;
  header: P10Header;
}

/** DICOM allows 128 presentation contexts per association (odd IDs 1-255); keep a margin. */
const MAX_CONTEXTS = 120;
/** The context per SOP class that asks what the peer accepts besides the stored syntaxes. */
const PROBE_SYNTAXES = [EXPLICIT_VR_LE, IMPLICIT_VR_LE];

/**
 * Sends `filePaths` to `destination`, in as few associations as `maxPerAssociation` and the
 * 128-presentation-context limit allow (sequentially). Never throws for network, peer or file
 * problems: every file gets an outcome.
 */
export async function sendFiles(
  filePaths: readonly string[],
  destination: Destination,
  opts: StoreScuOptions,
): Promise<SendReport> {
  const outcomes: (StoreOutcome | undefined)[] = new Array(filePaths.length).fill(undefined);
  const prepared: Prepared[] = [];
  filePaths.forEach((filePath, index) => {
    try {
      prepared.push({ index, filePath, header: readP10Header(filePath, 'file') });
    } catch (err) {
      outcomes[index] = fileErrorOutcome(err);
    }
  });

  const maxPer = Math.max(1, opts.maxPerAssociation ?? 100);
  const batches: Prepared[][] = [];
  let cur: Prepared[] = [];
  let ctxKeys = new Set<string>();
  for (const p of prepared) {
    const keys = [`${p.header.sopClassUid}|*`, `${p.header.sopClassUid}|${p.header.transferSyntaxUid}`];
    const added = keys.filter((k) => !ctxKeys.has(k)).length;
    if (cur.length > 0 && (cur.length >= maxPer || ctxKeys.size + added > MAX_CONTEXTS)) {
      batches.push(cur);
      cur = [];
      ctxKeys = new Set();
    }
    cur.push(p);
    keys.forEach((k) => ctxKeys.add(k));
  }
  if (cur.length) batches.push(cur);

  let connectionProblem: string | undefined;
  let associations = 0;
  for (const batch of batches) {
    if (connectionProblem) {
      // The peer is unreachable: do not hammer it with the remaining batches.
      for (const p of batch) outcomes[p.index] = { kind: 'transient-failure', reason: connectionProblem };
      continue;
    }
    associations++;
    const r = await sendOneAssociation(batch, destination, opts);
    r.outcomes.forEach((o, i) => (outcomes[batch[i]!.index] = o));
    if (r.connectionProblem) connectionProblem = r.connectionProblem;
  }

  return {
    outcomes: filePaths.map((filePath, i) => ({
      filePath,
      outcome: outcomes[i] ?? { kind: 'transient-failure', reason: 'internal: no outcome recorded' },
    })),
    connectionProblem,
    associations,
  };
}

/** A file that cannot be read: gone or not DICOM is permanent; anything else may pass. */
function fileErrorOutcome(err: unknown): StoreOutcome {
  if (err instanceof DicomFormatError) return { kind: 'permanent-failure', reason: err.message };
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT') return { kind: 'permanent-failure', reason: 'file not found' };
  if (e?.code === 'EISDIR') return { kind: 'permanent-failure', reason: 'path is a directory' };
  if (e?.code === 'EACCES' || e?.code === 'EPERM')
    return { kind: 'permanent-failure', reason: `cannot read file (${e.code})` };
  return { kind: 'transient-failure', reason: `cannot read file: ${e?.code ?? (e as Error)?.message ?? String(err)}` };
}

/** The proposal: per SOP class, each stored transfer syntax alone, then the probe context. */
function proposal(items: Prepared[]): { abstractSyntaxUid: string; transferSyntaxUids: string[] }[] {
  const bySop = new Map<string, Set<string>>();
  for (const p of items) {
    const set = bySop.get(p.header.sopClassUid) ?? new Set<string>();
    set.add(p.header.transferSyntaxUid);
    bySop.set(p.header.sopClassUid, set);
  }
  return [...bySop].flatMap(([sop, syntaxes]) => [
    ...[...syntaxes].map((ts) => ({ abstractSyntaxUid: sop, transferSyntaxUids: [ts] })),
    { abstractSyntaxUid: sop, transferSyntaxUids: PROBE_SYNTAXES },
  ]);
}

/** Why a file cannot be sent verbatim on this association (its stored syntax was not accepted). */
function contextProblem(contexts: readonly NegotiatedContext[], h: P10Header): string {
  const mine = contexts.filter((c) => c.abstractSyntaxUid === h.sopClassUid);
  const acceptedTs = [
    ...new Set(mine.filter((c) => c.result === ContextResult.Acceptance).map((c) => c.transferSyntaxUid)),
  ];
  const sop = `SOP class ${uidLabel(h.sopClassUid)}`;
  const ts = `transfer syntax ${uidLabel(h.transferSyntaxUid)}`;
  if (acceptedTs.length === 0) {
    if (mine.some((c) => c.result === ContextResult.AbstractSyntaxNotSupported))
      return `peer does not accept ${sop} (presentation context rejected: abstract syntax not supported)`;
    if (mine.some((c) => c.result === ContextResult.TransferSyntaxesNotSupported))
      return `peer does not accept ${ts} for ${sop} (presentation context rejected: transfer syntaxes not supported)`;
    return `peer rejected the presentation context for ${sop} with ${ts}`;
  }
  return (
    `peer does not accept ${ts} for ${sop}; it accepted only ${acceptedTs.map(uidLabel).join(', ')} ` +
    `and the file is not converted`
  );
}

interface AssociationResult {
  outcomes: StoreOutcome[];
  connectionProblem?: string;
}

async function sendOneAssociation(
  items: Prepared[],
  dest: Destination,
  opts: StoreScuOptions,
): Promise<AssociationResult> {
  const outcomes: (StoreOutcome | undefined)[] = items.map(() => undefined);
  const finish = (reason: string, connectionProblem?: string): AssociationResult => ({
    outcomes: outcomes.map((o) => o ?? { kind: 'transient-failure', reason }),
    connectionProblem,
  });

  let association: ScuAssociation;
  try {
    association = await ScuAssociation.open({
      host: dest.host,
      port: dest.port,
      callingAeTitle: dest.callingAeTitle ?? opts.callingAet,
      calledAeTitle: dest.aeTitle,
      presentationContexts: proposal(items),
      peerLabel: destinationLabel(dest),
      socketFactory: opts.socketFactory ?? destinationSocketFactory(dest),
      timeouts: {
        connectMs: opts.connectTimeoutMs ?? 60_000,
        associateMs: opts.associationTimeoutMs ?? 30_000,
        silenceMs: opts.pduTimeoutMs ?? 60_000,
        overallMs: opts.overallTimeoutMs ?? 60_000 + 30_000 * items.length,
      },
    });
  } catch (err) {
    const e = toAssociationError(err);
    if (e.permanent) return { outcomes: items.map(() => ({ kind: 'permanent-failure', reason: e.message })) };
    return finish(e.message, e.message);
  }

  try {
    for (const [i, p] of items.entries()) {
      const { sopClassUid, sopInstanceUid, transferSyntaxUid, dataSetOffset, fileSize } = p.header;
      const ctx = association.acceptedContext(sopClassUid, transferSyntaxUid);
      if (!ctx) {
        outcomes[i] = { kind: 'permanent-failure', reason: contextProblem(association.contexts, p.header) };
        continue;
      }
      let dataSet: FileDataSet;
      try {
        dataSet = await openFileDataSet(p.filePath, dataSetOffset, fileSize - dataSetOffset);
      } catch (err) {
        outcomes[i] = fileErrorOutcome(err); // nothing announced yet: the association goes on
        continue;
      }
      try {
        const rsp = await cStore(association, { contextId: ctx.id, sopClassUid, sopInstanceUid, dataSet });
        outcomes[i] = classifyStoreStatus(rsp.status);
      } catch (err) {
        const e = toAssociationError(err);
        if (e.kind === 'source') {
          // The file could not be read to its end: the association was aborted (a partial data
          // set cannot be ended). Not the peer's fault: the others wait for the next round.
          outcomes[i] = fileErrorOutcome(e.detail.cause);
          return finish(`not sent: the association was aborted after a read error on another file`);
        }
        outcomes[i] = { kind: 'transient-failure', reason: `no response: ${e.message}` };
        return finish(e.message, e.message);
      } finally {
        await dataSet.close().catch(() => undefined);
      }
    }
    // Every file has its outcome; a failed release changes none of them.
    await association.release().catch(() => undefined);
    return finish('internal: no outcome recorded');
  } finally {
    association.abort(); // no-op once released or failed
  }
}

function toAssociationError(err: unknown): AssociationError {
  if (err instanceof AssociationError) return err;
  return new AssociationError(`internal error: ${(err as Error)?.message ?? String(err)}`, 'local');
}
