// C-STORE SCU: sends Part 10 files (already de-identified, on disk) to one peer, verbatim.
//
// dcmjs-dimse's Client is used as a transport only. Each file travels as a RawP10Dataset whose
// bytes are the file's data set after the file meta, read from disk at send time and not kept.
// The library's dcmjs/transcoding path is never used: RawP10Dataset refuses element access, and
// a request whose accepted transfer syntax differs from the stored one is failed (permanently)
// before anything is sent. See /work/shared/research/dcmjs-dimse.md §2, §3, §8 for the traps
// guarded here (silent near-empty data sets, silent skips, no abort event, `closed` that never
// fires, Nagle, Network.pending retention).

import type { Socket } from 'node:net';
import { closeSync, openSync, readSync } from 'node:fs';
import dimse from 'dcmjs-dimse';
import { formatDestination, type Destination } from './destination.js';
import { DicomFormatError } from '../core/types.js';
import { readP10Header, type P10Header } from '../dimse/part10.js';
import { statusMeaning } from '../dimse/status.js';
import { uidLabel } from '../dimse/uidNames.js';
import { silenceLibraryLogs } from '../dimse/silenceLibraryLogs.js';

const { Client, Dataset, constants } = dimse;
const { CStoreRequest } = dimse.requests;
const { PresentationContext } = dimse.association;
const TS = constants.TransferSyntax;
const PCResult = constants.PresentationContextResult;

type DimseRequest = InstanceType<typeof dimse.requests.Request>;
type DimseAssociation = InstanceType<typeof dimse.association.Association>;

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
  /** Our (calling) AE title. */
  callingAet: string;
  /** Maximum instances per association (default 100). */
  maxPerAssociation?: number;
  /**
   * TCP connect timeout, ms (default 60 s). dcmjs-dimse also uses it as the socket's idle timeout
   * for the whole association, so it must exceed the peer's slowest C-STORE response time.
   */
  connectTimeoutMs?: number;
  /** Max wait for A-ASSOCIATE-AC/RJ, ms (default 30 s). */
  associationTimeoutMs?: number;
  /** Max silence from the peer while a request is outstanding, ms (default 60 s). */
  pduTimeoutMs?: number;
  /**
   * Hard cap on one association's total duration, ms (default 60 s + 30 s per instance):
   * a hung peer can never hang the caller longer than this.
   */
  overallTimeoutMs?: number;
}

// ---------------------------------------------------------------------------------------------
// Names for messages

// ---------------------------------------------------------------------------------------------
// Status classification

/** Maps a C-STORE response status to an outcome (meanings: dimse/status.ts). */
export function classifyStoreStatus(status: number): StoreOutcome {
  const { category, text } = statusMeaning(status);
  if (category === 'success') return { kind: 'delivered', status };
  if (category === 'warning') return { kind: 'warning', status, reason: text };
  if (category === 'permanent') return { kind: 'permanent-failure', status, reason: text };
  return { kind: 'transient-failure', status, reason: text };
}

const REJECT_REASONS: Record<string, string> = {
  '1:1': 'no reason given',
  '1:2': 'application context name not supported',
  '1:3': 'calling AE title not recognized',
  '1:7': 'called AE title not recognized',
  '2:1': 'no reason given (ACSE)',
  '2:2': 'protocol version not supported',
  '3:1': 'temporary congestion',
  '3:2': 'local limit exceeded',
};

function describeReject(r: { result: number; source: number; reason: number }): string {
  const kind = r.result === 1 ? 'permanent' : r.result === 2 ? 'transient' : `result ${r.result}`;
  const why = REJECT_REASONS[`${r.source}:${r.reason}`] ?? `source ${r.source} reason ${r.reason}`;
  return `association rejected (${kind}): ${why}`;
}

// ---------------------------------------------------------------------------------------------
// The raw data set

/**
 * A Dataset whose wire bytes are the file's data set as stored (after the file meta).
 * Bytes are read from disk when the library asks for them and are not retained afterwards, so
 * Network.pending (which keeps every sent request) holds only two UIDs per instance.
 * Element access throws: the library can therefore never transcode (re-encode) it.
 */
export class RawP10Dataset extends Dataset {
  readonly filePath: string;
  readonly header: P10Header;
  /** Set if reading the bytes at send time failed. */
  readError: Error | undefined;
  /** How many times the bytes were handed out (expected: exactly 1). */
  sendCount = 0;

  constructor(filePath: string, header: P10Header) {
    super({ SOPClassUID: header.sopClassUid, SOPInstanceUID: header.sopInstanceUid }, header.transferSyntaxUid);
    this.filePath = filePath;
    this.header = header;
  }

  override getElements(): Record<string, unknown> {
    throw new Error(`refusing element access to raw data set (${this.header.sopInstanceUid}): transcoding is disabled`);
  }

  override setTransferSyntaxUid(uid: string): void {
    if (uid === this.header.transferSyntaxUid) return;
    throw new Error(`refusing to relabel raw data set as ${uid}: transcoding is disabled`);
  }

  override getDenaturalizedDataset(): Buffer {
    const { dataSetOffset } = this.header;
    try {
      const fd = openSync(this.filePath, 'r');
      try {
        const size = this.header.fileSize - dataSetOffset;
        const buf = Buffer.allocUnsafe(size);
        let got = 0;
        while (got < size) {
          const n = readSync(fd, buf, got, size - got, dataSetOffset + got);
          if (n === 0) throw new Error(`file shrank while sending (${got} of ${size} data set bytes)`);
          got += n;
        }
        this.sendCount++;
        return buf;
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      this.readError = err instanceof Error ? err : new Error(String(err));
      throw this.readError;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sending

interface Prepared {
  index: number;
  filePath: string;
  header: P10Header;
}

const LE_TS = new Set<string>([TS.ImplicitVRLittleEndian, TS.ExplicitVRLittleEndian]);
const MAX_CONTEXTS = 120; // DICOM allows 128 presentation contexts per association

/**
 * Sends `filePaths` to `destination`, in as few associations as `maxPerAssociation` and the
 * 128-presentation-context limit allow (sequentially). Never throws for network or peer
 * problems: every file gets an outcome.
 */
export async function sendFiles(
  filePaths: readonly string[],
  destination: Destination,
  opts: StoreScuOptions,
): Promise<SendReport> {
  silenceLibraryLogs();
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
  const chunks: Prepared[][] = [];
  let cur: Prepared[] = [];
  let ctxKeys = new Set<string>();
  for (const p of prepared) {
    const keys = [`${p.header.sopClassUid}|*`, `${p.header.sopClassUid}|${p.header.transferSyntaxUid}`];
    const added = keys.filter((k) => !ctxKeys.has(k)).length;
    if (cur.length > 0 && (cur.length >= maxPer || ctxKeys.size + added > MAX_CONTEXTS)) {
      chunks.push(cur);
      cur = [];
      ctxKeys = new Set();
    }
    cur.push(p);
    keys.forEach((k) => ctxKeys.add(k));
  }
  if (cur.length) chunks.push(cur);

  let connectionProblem: string | undefined;
  let associations = 0;
  for (const chunk of chunks) {
    if (connectionProblem) {
      // The peer is unreachable: do not hammer it with the remaining chunks.
      for (const p of chunk) outcomes[p.index] = { kind: 'transient-failure', reason: connectionProblem };
      continue;
    }
    associations++;
    const r = await sendOneAssociation(chunk, destination, opts);
    r.outcomes.forEach((o, i) => (outcomes[chunk[i]!.index] = o));
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

function fileErrorOutcome(err: unknown): StoreOutcome {
  if (err instanceof DicomFormatError) return { kind: 'permanent-failure', reason: err.message };
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT') return { kind: 'permanent-failure', reason: 'file not found' };
  if (e?.code === 'EISDIR') return { kind: 'permanent-failure', reason: 'path is a directory' };
  if (e?.code === 'EACCES' || e?.code === 'EPERM')
    return { kind: 'permanent-failure', reason: `cannot read file (${e.code})` };
  return { kind: 'transient-failure', reason: `cannot read file: ${e?.code ?? (e as Error)?.message ?? String(err)}` };
}

interface NetworkLike {
  socket: Socket;
  on(event: string, fn: (...args: never[]) => void): unknown;
  sendAbort(source?: number, reason?: number): void;
}

interface ResultOne {
  outcomes: StoreOutcome[];
  connectionProblem?: string;
}

/** Why a request cannot be sent verbatim in this association, or undefined if it can. */
function contextProblem(association: DimseAssociation, req: DimseRequest, h: P10Header): string | undefined {
  const ctx = association.getAcceptedPresentationContextFromRequest(req);
  const accepted = ctx?.getAcceptedTransferSyntaxUid();
  if (ctx && accepted === h.transferSyntaxUid) return undefined;
  const peerCtxs = association
    .getPresentationContexts()
    .map((c) => association.getPresentationContext(c.id))
    .filter((c) => c.getAbstractSyntaxUid() === h.sopClassUid);
  const acceptedTs = [
    ...new Set(peerCtxs.filter((c) => c.getResult() === PCResult.Accept).map((c) => c.getAcceptedTransferSyntaxUid())),
  ].filter((x): x is string => !!x);
  const sop = `SOP class ${uidLabel(h.sopClassUid)}`;
  const ts = `transfer syntax ${uidLabel(h.transferSyntaxUid)}`;
  if (acceptedTs.length === 0) {
    const abstractRejected = peerCtxs.some((c) => c.getResult() === PCResult.RejectAbstractSyntaxNotSupported);
    const tsRejected = peerCtxs.some((c) => c.getResult() === PCResult.RejectTransferSyntaxesNotSupported);
    if (abstractRejected)
      return `peer does not accept ${sop} (presentation context rejected: abstract syntax not supported)`;
    if (tsRejected)
      return `peer does not accept ${ts} for ${sop} (presentation context rejected: transfer syntaxes not supported)`;
    return `peer rejected the presentation context for ${sop} with ${ts}`;
  }
  return (
    `peer does not accept ${ts} for ${sop}; it accepted only ${acceptedTs.map(uidLabel).join(', ')} ` +
    `and the file is not converted`
  );
}

function sendOneAssociation(items: Prepared[], dest: Destination, opts: StoreScuOptions): Promise<ResultOne> {
  return new Promise<ResultOne>((resolve) => {
    const where = formatDestination(dest);
    const client = new Client();
    const entries = items.map((p) => {
      const dataset = new RawP10Dataset(p.filePath, p.header);
      const request = new CStoreRequest(dataset);
      const entry = {
        p,
        dataset,
        request,
        status: undefined as number | undefined,
        blocked: undefined as string | undefined,
      };
      request.on('response', (response: { getStatus(): number }) => {
        if (entry.status === undefined) entry.status = response.getStatus();
      });
      client.addRequest(request);
      return entry;
    });

    // Propose each stored TS on its own context too, so a peer that would pick the "other" little
    // endian in the shared [Implicit, Explicit] context can still accept the stored one verbatim.
    // (Non-LE transfer syntaxes already get their own context from the library.)
    const seen = new Set<string>();
    for (const e of entries) {
      const { sopClassUid, transferSyntaxUid } = e.p.header;
      const key = `${sopClassUid}|${transferSyntaxUid}`;
      if (!LE_TS.has(transferSyntaxUid) || seen.has(key)) continue;
      seen.add(key);
      client.addAdditionalPresentationContext(new PresentationContext(0, sopClassUid, transferSyntaxUid), true);
    }

    let settled = false;
    let network: NetworkLike | undefined;
    let associated = false;
    const overallMs = opts.overallTimeoutMs ?? 60_000 + 30_000 * items.length;
    const hardTimer = setTimeout(() => {
      try {
        if (network && associated) network.sendAbort();
      } catch {
        /* ignore */
      }
      settle(`timed out after ${overallMs} ms (association to ${where})`, true);
    }, overallMs);

    function settle(problem: string | undefined, isConnectionProblem: boolean): void {
      if (settled) return;
      settled = true;
      clearTimeout(hardTimer);
      const outcomes = entries.map((e): StoreOutcome => {
        if (e.blocked) return { kind: 'permanent-failure', reason: e.blocked };
        if (e.status !== undefined) return classifyStoreStatus(e.status);
        if (e.dataset.readError) {
          return fileErrorOutcome(e.dataset.readError);
        }
        return {
          kind: 'transient-failure',
          reason: problem ? `no response: ${problem}` : 'no response from peer before the association ended',
        };
      });
      const anyMissing = entries.some((e) => !e.blocked && e.status === undefined && !e.dataset.readError);
      // Release everything: the socket (closed may never fire) and our references.
      try {
        network?.socket.destroy();
      } catch {
        /* ignore */
      }
      client.clearRequests();
      resolve({
        outcomes,
        connectionProblem: isConnectionProblem && anyMissing ? (problem ?? 'connection lost') : undefined,
      });
    }

    client.on('associationAccepted', (association: DimseAssociation) => {
      associated = true;
      // Decide, per request, whether the accepted context carries the stored TS. Requests that
      // cannot go verbatim are removed before the library starts sending (the array is the one it
      // sends from); RawP10Dataset.getElements() throwing is the second line of defence.
      const live = (client as unknown as { requests: DimseRequest[] }).requests;
      for (const e of entries) {
        const why = contextProblem(association, e.request, e.p.header);
        if (why) {
          e.blocked = why;
          const i = live.indexOf(e.request);
          if (i >= 0) live.splice(i, 1);
        }
      }
    });
    client.on('associationRejected', (r: { result: number; source: number; reason: number }) => {
      const why = `${describeReject(r)} by ${where}`;
      if (r.result === 1) {
        for (const e of entries) if (!e.blocked) e.blocked = why;
        settle(why, false);
      } else {
        settle(why, true);
      }
    });
    client.on('associationReleased', () => settle(undefined, false));
    client.on('networkError', (err: Error) => {
      const msg = (err?.message ?? String(err)).replace(/^.*?->\s*/, '');
      settle(`${associated ? 'network error' : 'cannot connect'}: ${msg} (${where})`, true);
    });
    client.on('closed', () => settle(`connection to ${where} closed`, true));

    try {
      client.send(dest.host, dest.port, opts.callingAet, dest.aeTitle, {
        connectTimeout: opts.connectTimeoutMs ?? 60_000,
        associationTimeout: opts.associationTimeoutMs ?? 30_000,
        pduTimeout: opts.pduTimeoutMs ?? 60_000,
      });
      network = (client as unknown as { network?: NetworkLike }).network;
      if (!network) throw new Error('dcmjs-dimse did not create a network');
      network.socket.setNoDelay(true);
      network.on('abort', (a: { source: number; reason: number }) =>
        settle(`peer aborted the association (source ${a?.source}, reason ${a?.reason}) (${where})`, true),
      );
      network.socket.once('close', () => settle(`connection to ${where} closed`, true));
    } catch (err) {
      settle(`cannot start association: ${(err as Error)?.message ?? String(err)} (${where})`, true);
    }
  });
}
