// C-STORE SCU for forwarding: sends Part 10 files (already de-identified, on disk) to one peer,
// as stored or converted to a transfer syntax the peer accepts, and gives every file an outcome.
//
// Built on our own SCU association (dimse/scu), not on dcmjs-dimse's Client (see the README's
// "The sending client" and docs/research/dcmjs-dimse.md sections 2, 3, 8 for what that
// library did wrong here). What this file guarantees:
// * Verbatim bytes when the peer accepts the stored transfer syntax: each file's data set
//   (everything after its file meta) is sent as stored, read from disk in bounded chunks.
// * Otherwise a conversion (issue 14): each syntax a file may be sent in (syntaxChoice.ts: the
//   stored one, then explicit and implicit VR little endian, or the destination's
//   `transferSyntaxes`) is proposed on a presentation context of its own, so we learn exactly
//   which ones the peer accepts, whatever its own preferences; each file goes in the first of
//   its syntaxes that was accepted, converted on the way out by a Converter (a worker thread:
//   transcode/conversionThread.ts). The filed copy is only read.
// * A file that none of the accepted syntaxes can carry, or that cannot be converted, goes dead
//   with a reason naming the SOP class and syntaxes. A conversion that fails part way (a corrupt
//   frame) aborts the association (a partial data set cannot be ended): that file goes dead and
//   the files after it are sent at once on a new association, never held behind it.
// * Every file gets an outcome: delivered, warning (stored), transient (retry later) or permanent
//   (dead), and the association has a hard overall timeout (60 s + 30 s per file by default, plus
//   1 s per MiB of compressed files that may be decoded).
// * No identifier in any message: reasons name SOP classes, transfer syntaxes, statuses and the
//   destination, never a SOP Instance UID.

import { ConversionError } from '../core/transcode/conversionError.js';
import { sourceSyntax } from '../core/transcode/transferSyntaxes.js';
import { DicomFormatError } from '../core/types.js';
import { ContextResult } from '../dimse/acse.js';
import { readP10Header, type P10Header } from '../dimse/part10.js';
import { AssociationError, ScuAssociation, type NegotiatedContext } from '../dimse/scu/association.js';
import { cStore } from '../dimse/scu/cStore.js';
import { openFileDataSet, type FileDataSet } from '../dimse/scu/dataSetSource.js';
import type { SocketFactory } from '../dimse/scu/socketFactory.js';
import { statusMeaning } from '../dimse/status.js';
import { uidLabel } from '../dimse/uidNames.js';
import { defaultConverter } from '../transcode/conversionThread.js';
import type { Converter, ConvertingSource } from '../transcode/converter.js';
import { destinationLabel, type Destination } from './destination.js';
import { destinationSocketFactory } from './destinationTls.js';
import { candidateSyntaxes, noCandidateReason } from './syntaxChoice.js';

/**
 * Result of one file. `warning` means delivered (the peer stored it, with a warning status);
 * `convertedTo` is set when it was sent converted (the transfer syntax UID it went in).
 */
export type StoreOutcome =
  | { kind: 'delivered'; status: number; convertedTo?: string }
  | { kind: 'warning'; status: number; reason: string; convertedTo?: string }
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
   * Hard cap on one association's total duration, ms (default 60 s + 30 s per instance, plus
   * 1 s per MiB of compressed instances that may be decoded): a hung peer can never hang the
   * caller longer than this.
   */
  overallTimeoutMs?: number;
  /** How to connect (default: the destination's, destinationSocketFactory: TLS when it has `tls`, else TCP). */
  socketFactory?: SocketFactory;
  /**
   * Converts files the peer does not accept as stored (default: a conversion thread started on
   * the first conversion and closed when sendFiles returns; the forwarder passes its own).
   */
  converter?: Converter;
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
  /** The transfer syntaxes it may be sent in, best first (syntaxChoice.ts); never empty. */
  candidates: string[];
}

/** DICOM allows 128 presentation contexts per association (odd IDs 1-255); keep a margin. */
const MAX_CONTEXTS = 120;

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
    let header: P10Header;
    try {
      header = readP10Header(filePath, 'file');
    } catch (err) {
      outcomes[index] = fileErrorOutcome(err);
      return;
    }
    const candidates = candidateSyntaxes(header.transferSyntaxUid, destination.transferSyntaxes);
    if (candidates.length === 0) {
      outcomes[index] = {
        kind: 'permanent-failure',
        reason: noCandidateReason(header.transferSyntaxUid, destination.transferSyntaxes ?? []),
      };
      return;
    }
    prepared.push({ index, filePath, header, candidates });
  });

  const maxPer = Math.max(1, opts.maxPerAssociation ?? 100);
  const batches: Prepared[][] = [];
  let cur: Prepared[] = [];
  let ctxKeys = new Set<string>();
  for (const p of prepared) {
    const keys = p.candidates.map((ts) => `${p.header.sopClassUid}|${ts}`);
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

  // The conversion thread starts only when a file needs converting.
  let ownConverter: Converter | undefined;
  const converter: Converter = opts.converter ?? {
    open: (path, ts) => (ownConverter ??= defaultConverter()).open(path, ts),
    close: async () => undefined,
  };

  let connectionProblem: string | undefined;
  let associations = 0;
  try {
    for (const batch of batches) {
      let rest = batch;
      while (rest.length > 0) {
        if (connectionProblem) {
          // The peer is unreachable: do not hammer it with the remaining batches.
          for (const p of rest) outcomes[p.index] = { kind: 'transient-failure', reason: connectionProblem };
          break;
        }
        associations++;
        const r = await sendOneAssociation(rest, destination, opts, converter);
        r.outcomes.forEach((o, i) => (outcomes[rest[i]!.index] = o));
        if (r.connectionProblem) connectionProblem = r.connectionProblem;
        // A file's data set failed part way and the association was aborted: the files after it
        // go on a new association now.
        rest = r.restartFrom === undefined ? [] : rest.slice(r.restartFrom);
      }
    }
  } finally {
    await ownConverter?.close();
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

/** The proposal: per SOP class, each transfer syntax its files may be sent in, on a context of its own. */
function proposal(items: Prepared[]): { abstractSyntaxUid: string; transferSyntaxUids: string[] }[] {
  const bySop = new Map<string, Set<string>>();
  for (const p of items) {
    const set = bySop.get(p.header.sopClassUid) ?? new Set<string>();
    for (const ts of p.candidates) set.add(ts);
    bySop.set(p.header.sopClassUid, set);
  }
  return [...bySop].flatMap(([sop, syntaxes]) =>
    [...syntaxes].map((ts) => ({ abstractSyntaxUid: sop, transferSyntaxUids: [ts] })),
  );
}

/** Why none of a file's candidate syntaxes was accepted on this association. */
function contextProblem(contexts: readonly NegotiatedContext[], p: Prepared): string {
  const h = p.header;
  const mine = contexts.filter((c) => c.abstractSyntaxUid === h.sopClassUid);
  const acceptedTs = [
    ...new Set(mine.filter((c) => c.result === ContextResult.Acceptance).map((c) => c.transferSyntaxUid)),
  ];
  const sop = `SOP class ${uidLabel(h.sopClassUid)}`;
  const ts = `transfer syntax ${uidLabel(h.transferSyntaxUid)}`;
  const others = p.candidates.filter((c) => c !== h.transferSyntaxUid);
  const sentIn = others.length === 0 ? ts : `${ts} or ${others.map(uidLabel).join(', ')}`;
  const why =
    sourceSyntax(h.transferSyntaxUid) === undefined
      ? `; ${uidLabel(h.transferSyntaxUid)} cannot be converted`
      : others.length === 0
        ? "; the destination's transferSyntaxes allow no conversion of it"
        : '';
  if (acceptedTs.length === 0) {
    if (mine.some((c) => c.result === ContextResult.AbstractSyntaxNotSupported))
      return `peer does not accept ${sop} (presentation context rejected: abstract syntax not supported)`;
    if (mine.some((c) => c.result === ContextResult.TransferSyntaxesNotSupported))
      return `peer does not accept ${sentIn} for ${sop} (presentation context rejected: transfer syntaxes not supported)${why}`;
    return `peer rejected the presentation contexts for ${sop} with ${p.candidates.map(uidLabel).join(', ')}`;
  }
  return `peer does not accept ${sentIn} for ${sop}; it accepted only ${acceptedTs.map(uidLabel).join(', ')}${why}`;
}

interface AssociationResult {
  /** One per item; for items from `restartFrom` on, ignored (they go on a new association). */
  outcomes: StoreOutcome[];
  connectionProblem?: string;
  /** Set when a data set failed part way: the items from this index on were not tried. */
  restartFrom?: number;
}

/** What could not be converted, or read: dead when retrying cannot help. */
function conversionOutcome(err: unknown, p: Prepared, targetTs: string, partWay: boolean): StoreOutcome {
  const what = `conversion of ${uidLabel(p.header.sopClassUid)} from ${uidLabel(p.header.transferSyntaxUid)} to ${uidLabel(targetTs)}`;
  if (err instanceof ConversionError) {
    return { kind: 'permanent-failure', reason: `${what} failed${partWay ? ' part way' : ''}: ${err.message}` };
  }
  if (typeof (err as NodeJS.ErrnoException)?.code === 'string') return fileErrorOutcome(err);
  // The converter itself failed (its thread stopped): another attempt may succeed.
  return { kind: 'transient-failure', reason: `${what} failed: ${(err as Error)?.message ?? String(err)}` };
}

/** Allowance of the overall timer for decoding: 1 s per MiB of compressed files that may be decoded. */
function decodeAllowanceMs(items: Prepared[]): number {
  let bytes = 0;
  for (const p of items) {
    const decodable = sourceSyntax(p.header.transferSyntaxUid)?.pixelData === 'encapsulated';
    if (decodable && p.candidates.some((ts) => ts !== p.header.transferSyntaxUid)) bytes += p.header.fileSize;
  }
  return Math.ceil(bytes / (1 << 20)) * 1000;
}

async function sendOneAssociation(
  items: Prepared[],
  dest: Destination,
  opts: StoreScuOptions,
  converter: Converter,
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
        overallMs: opts.overallTimeoutMs ?? 60_000 + 30_000 * items.length + decodeAllowanceMs(items),
      },
    });
  } catch (err) {
    const e = toAssociationError(err);
    if (e.permanent) return { outcomes: items.map(() => ({ kind: 'permanent-failure', reason: e.message })) };
    return finish(e.message, e.message);
  }

  try {
    for (const [i, p] of items.entries()) {
      const { sopClassUid, sopInstanceUid, transferSyntaxUid: storedTs, dataSetOffset, fileSize } = p.header;
      // The first of the file's syntaxes that the peer accepted.
      const ctx = p.candidates.map((ts) => association.acceptedContext(sopClassUid, ts)).find((c) => c !== undefined);
      if (!ctx) {
        outcomes[i] = { kind: 'permanent-failure', reason: contextProblem(association.contexts, p) };
        continue;
      }
      const targetTs = ctx.transferSyntaxUid;
      let dataSet: FileDataSet | ConvertingSource;
      try {
        dataSet =
          targetTs === storedTs
            ? await openFileDataSet(p.filePath, dataSetOffset, fileSize - dataSetOffset)
            : await converter.open(p.filePath, targetTs);
      } catch (err) {
        // Nothing announced yet: the association goes on.
        outcomes[i] = targetTs === storedTs ? fileErrorOutcome(err) : conversionOutcome(err, p, targetTs, false);
        continue;
      }
      try {
        const rsp = await cStore(association, { contextId: ctx.id, sopClassUid, sopInstanceUid, dataSet });
        const outcome = classifyStoreStatus(rsp.status);
        if (targetTs !== storedTs && (outcome.kind === 'delivered' || outcome.kind === 'warning')) {
          outcome.convertedTo = targetTs;
        }
        outcomes[i] = outcome;
      } catch (err) {
        const e = toAssociationError(err);
        if (e.kind === 'source') {
          // The data set could not be produced to its end (a file that shrank, a corrupt frame):
          // the association was aborted, a partial data set cannot be ended. Not the peer's fault:
          // the files after this one go on a new association.
          const cause = e.detail.cause;
          outcomes[i] = targetTs === storedTs ? fileErrorOutcome(cause) : conversionOutcome(cause, p, targetTs, true);
          return { ...finish('internal: not sent'), restartFrom: i + 1 };
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
