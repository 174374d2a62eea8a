// The hospital PACS as a retrieve job uses it: C-ECHO, study/series/image C-FINDs on one
// association kept open between queries, and each C-MOVE on an association of its own (so a
// move can be cancelled or aborted without losing the query association). Built on the shared
// SCU association (src/dimse/scu); failures become PacsErrors whose kind says what to do.
import { AssociationError, ScuAssociation, type ScuTimeouts } from '../dimse/scu/association.js';
import { cEcho, VERIFICATION_CONTEXT } from '../dimse/scu/cEcho.js';
import { cFind, STUDY_ROOT_FIND_CONTEXT, type CFindResult } from '../dimse/scu/cFind.js';
import { cMove, STUDY_ROOT_MOVE_CONTEXT, type CMoveResult, type SubOperations } from '../dimse/scu/cMove.js';
import type { SocketFactory } from '../dimse/scu/socketFactory.js';
import type { QueryKey } from '../dimse/queryIdentifier.js';
import { RejectSource } from '../dimse/acse.js';

/** A-ASSOCIATE-RJ reason 3 of a service user (PS3.8 9.3.4): calling AE title not recognized. */
const CALLING_AE_NOT_RECOGNIZED = 3;

/** Where the PACS is. */
export interface PacsTarget {
  aeTitle: string;
  host: string;
  port: number;
}

/**
 * What went wrong talking to the PACS:
 * - `unreachable`: no connection (refused, timed out, host unknown): it may be down; try later.
 * - `refused`: it rejected the association for good (our calling AE title or its called AE title
 *   is not known to it): someone must configure it.
 * - `not-supported`: it accepted the association but not the query/retrieve model we need.
 * - `dropped`: the association ended under way (aborted, closed, silent, a protocol error);
 *   what was asked may or may not have been done.
 */
export type PacsErrorKind = 'unreachable' | 'refused' | 'not-supported' | 'dropped';

/** A failure to talk to the PACS, as one log-safe line (AE titles, host, port; no identifier). */
export class PacsError extends Error {
  override name = 'PacsError';
  /** `message`: one log-safe line; `kind`: how the PACS failed (see PacsErrorKind). */
  constructor(
    message: string,
    readonly kind: PacsErrorKind,
    /** True when our calling AE title was the reason given (A-ASSOCIATE-RJ reason 3). */
    readonly callingAeRejected = false,
  ) {
    super(message);
  }
}

export interface PacsClientOptions {
  pacs: PacsTarget;
  /** Our AE title as the calling AE. */
  callingAeTitle: string;
  socketFactory?: SocketFactory;
  /** Timers of the query association (defaults of ScuAssociation; silence 60 s). */
  queryTimeouts?: ScuTimeouts;
  /**
   * Timers of a move association. Its silence limit is how long the PACS may say nothing between
   * two responses of one move (default 10 min: a PACS may send no pending responses at all).
   */
  moveTimeouts?: ScuTimeouts;
}

/** Turns an association failure into a PacsError. */
export function pacsErrorOf(err: unknown, label: string): PacsError {
  if (err instanceof PacsError) return err;
  if (err instanceof AssociationError) {
    if (err.kind === 'connect')
      return new PacsError(`cannot connect to the PACS ${label}: ${err.message}`, 'unreachable');
    if (err.kind === 'rejected') {
      const rj = err.detail.reject;
      const callingAe = rj?.source === RejectSource.ServiceUser && rj.reason === CALLING_AE_NOT_RECOGNIZED;
      return new PacsError(err.message, err.permanent ? 'refused' : 'unreachable', callingAe);
    }
    return new PacsError(err.message, 'dropped');
  }
  return new PacsError(err instanceof Error ? err.message : String(err), 'dropped');
}

/** The PACS as a retrieve job talks to it. */
export class PacsClient {
  readonly label: string;
  private query: ScuAssociation | undefined;
  /** The C-FINDs waiting for the query association. */
  private findQueue: Promise<void> = Promise.resolve();
  private readonly moves = new Set<ScuAssociation>();

  /**
   * `opts`: the PACS (AE title, host, port), our calling AE title, the socket factory (TLS) and the timers of
   * query and move associations. Opens no association until the first request.
   */
  constructor(private readonly opts: PacsClientOptions) {
    const p = opts.pacs;
    this.label = `${p.aeTitle}@${p.host}:${p.port}`;
  }

  private async open(
    contexts: (typeof VERIFICATION_CONTEXT)[],
    timeouts: ScuTimeouts | undefined,
  ): Promise<ScuAssociation> {
    try {
      return await ScuAssociation.open({
        host: this.opts.pacs.host,
        port: this.opts.pacs.port,
        callingAeTitle: this.opts.callingAeTitle,
        calledAeTitle: this.opts.pacs.aeTitle,
        presentationContexts: contexts,
        socketFactory: this.opts.socketFactory,
        timeouts,
        peerLabel: this.label,
      });
    } catch (e) {
      throw pacsErrorOf(e, this.label);
    }
  }

  /** Our calling AE title. */
  get callingAeTitle(): string {
    return this.opts.callingAeTitle;
  }

  /** C-ECHO on an association of its own; resolves with the status, throws PacsError. */
  async echo(): Promise<number> {
    const a = await this.open([VERIFICATION_CONTEXT], this.opts.queryTimeouts);
    try {
      if (!a.acceptedContext(VERIFICATION_CONTEXT.abstractSyntaxUid)) {
        throw new PacsError(`the PACS ${this.label} does not accept C-ECHO (Verification)`, 'not-supported');
      }
      const status = await cEcho(a);
      await a.release();
      return status;
    } catch (e) {
      throw pacsErrorOf(e, this.label);
    } finally {
      a.abort(); // no-op once released
    }
  }

  /**
   * One C-FIND (Study Root) on the query association, opened on first use and opened again once
   * when the PACS closed it while idle. Calls made while one is under way wait their turn (one
   * request at a time per association). Resolves with the final status; throws PacsError.
   */
  find(
    keys: readonly QueryKey[],
    onMatch: (answer: Map<number, string>) => void,
    maxMatches?: number,
  ): Promise<CFindResult> {
    const turn = this.findQueue.then(() => this.findNow(keys, onMatch, maxMatches));
    this.findQueue = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }

  private async findNow(
    keys: readonly QueryKey[],
    onMatch: (answer: Map<number, string>) => void,
    maxMatches?: number,
  ): Promise<CFindResult> {
    for (let attempt = 1; ; attempt++) {
      const reused = this.query !== undefined && this.query.isOpen;
      if (!reused)
        this.query = await this.open([STUDY_ROOT_FIND_CONTEXT, VERIFICATION_CONTEXT], this.opts.queryTimeouts);
      const a = this.query!;
      if (!a.acceptedContext(STUDY_ROOT_FIND_CONTEXT.abstractSyntaxUid)) {
        this.query = undefined;
        await a.release().catch(() => a.abort());
        throw new PacsError(`the PACS ${this.label} does not accept Study Root C-FIND`, 'not-supported');
      }
      let answers = 0;
      try {
        return await cFind(a, {
          keys,
          maxMatches,
          onMatch: (m) => {
            answers++;
            onMatch(m);
          },
        });
      } catch (e) {
        this.query = undefined;
        a.abort();
        // An idle association the PACS dropped before it saw our request: ask once more.
        if (reused && attempt === 1 && answers === 0 && e instanceof AssociationError && e.kind === 'closed') continue;
        throw pacsErrorOf(e, this.label);
      }
    }
  }

  /**
   * One study-level C-MOVE to `destination` on an association of its own. `signal` cancels it
   * (C-CANCEL, then an abort when the PACS has not answered within `cancelGraceMs`). Resolves
   * with the final response; throws PacsError (the move may have been partly done).
   */
  async move(
    studyInstanceUid: string,
    destination: string,
    options: { onProgress?: (counts: SubOperations) => void; signal?: AbortSignal; cancelGraceMs?: number } = {},
  ): Promise<CMoveResult> {
    const a = await this.open([STUDY_ROOT_MOVE_CONTEXT], this.opts.moveTimeouts ?? { silenceMs: 600_000 });
    this.moves.add(a);
    let grace: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      a.cancel();
      grace = setTimeout(() => a.abort(), options.cancelGraceMs ?? 10_000);
      grace.unref();
    };
    try {
      if (!a.acceptedContext(STUDY_ROOT_MOVE_CONTEXT.abstractSyntaxUid)) {
        throw new PacsError(`the PACS ${this.label} does not accept Study Root C-MOVE`, 'not-supported');
      }
      if (options.signal?.aborted) onAbort();
      else options.signal?.addEventListener('abort', onAbort, { once: true });
      const result = await cMove(a, { studyInstanceUid, destination, onProgress: options.onProgress });
      await a.release().catch(() => undefined);
      return result;
    } catch (e) {
      throw pacsErrorOf(e, this.label);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      if (grace) clearTimeout(grace);
      a.abort(); // no-op once released
      this.moves.delete(a);
    }
  }

  /** Releases the query association (after the C-FIND under way) and aborts any move still under way. */
  async close(): Promise<void> {
    for (const m of this.moves) m.abort();
    await this.findQueue;
    const q = this.query;
    this.query = undefined;
    if (q?.isOpen) await q.release().catch(() => q.abort());
  }
}
