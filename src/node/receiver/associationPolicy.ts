// Which associations and presentation contexts the receiver accepts (pure functions).
// The values answered are dimse/acse.ts's names for PS3.8 9.3.3.2 / 9.3.4 (A-ASSOCIATE-AC/RJ).
import { trimUid } from '../../core/dicom/uid.js';
import { ContextResult, RejectReason, RejectResult, RejectSource, type ContextAnswer } from '../../dimse/acse.js';
import { VERIFICATION_SOP_CLASS, isAcceptedStorageSyntax } from './storageSopClasses.js';
import type { CallingAeVerdict } from './callingAes.js';
import { pickTransferSyntax } from './transferSyntaxes.js';
import { escapeCharacters } from '../../printable.js';

/** The receiver's settings that decide associations (config aeTitle, allowedAets, the limits). */
export interface AssociationPolicyConfig {
  aeTitle: string;
  /** Who may call from where (callingAes.ts's CallingAeList, or a stand-in). */
  callingAes: { check(callingAet: string, remoteAddress: string): CallingAeVerdict };
  maxAssociations: number;
  /** Associations one peer address may hold at once (<= maxAssociations). */
  maxAssociationsPerAddress: number;
}

/** What the receiver knows of an association request when it decides. */
export interface AssociationRequest {
  callingAet: string;
  calledAet: string;
  /** The peer's address, as its socket shows it. */
  remoteAddress: string;
  /** Associations open now, in all and from this address. */
  activeAssociations: number;
  activeFromAddress: number;
  /** The listener is stopping. */
  stopping: boolean;
}

/** Why an association was rejected, as a stable key (status counts). */
export type RejectionCode =
  'calledAeTitle' | 'callingAeTitle' | 'callingAeAddress' | 'stopping' | 'associationLimit' | 'addressLimit';

/**
 * The answer to an association request: accept, or the A-ASSOCIATE-RJ fields (acse.ts
 * RejectResult, RejectSource, RejectReason) with the why in words and as a stable key.
 */
export type AssociationDecision =
  | { accept: true }
  | { accept: false; result: number; source: number; reason: number; why: string; code: RejectionCode };

/**
 * An AE title we can be configured with (PS3.5 6.2, AE): 1-16 characters of the Default
 * Character Repertoire without backslash (printable ASCII: no control character, DEL or
 * non-ASCII letter, which a peer would read as other bytes), and not only spaces.
 */
export function isValidAeTitle(aet: string): boolean {
  return aet.length >= 1 && aet.length <= 16 && isDefaultRepertoireAet(aet) && aet.trim() !== '';
}

/**
 * True when every character of `aet` is of the AE value representation's repertoire (PS3.5 6.2:
 * the Default Character Repertoire, ISO-IR 6, without backslash and control characters), i.e.
 * printable ASCII but backslash. The library reads the A-ASSOCIATE-RQ's 16 bytes one character
 * per byte (latin1), so a non-ASCII byte is a character above U+007E here.
 */
export function isDefaultRepertoireAet(aet: string): boolean {
  return /^[\x20-\x5b\x5d-\x7e]*$/.test(aet);
}

/**
 * `aet` as printable ASCII for logs: a character outside the AE repertoire (and a backslash) is
 * written `\xNN` (its latin1 byte), so a peer's control bytes (C0, C1) never reach a log line.
 */
export function escapeAet(aet: string): string {
  return escapeCharacters(aet, /[^\x20-\x5b\x5d-\x7e]/g);
}

/** AE titles are compared exactly after removing padding spaces/NULs. */
export function normalizeAet(aet: string): string {
  return aet.replace(/^[ \0]+|[ \0]+$/g, '');
}

/**
 * Accepts or rejects an association request (PS3.8 9.3.4 result/source/reason): a wrong called
 * AE title is rejected permanently as "called AE title not recognized" (source 1, reason 7); a
 * calling AE title with a character outside its repertoire (PS3.5 6.2: non-ASCII, control,
 * backslash), or not allowed (or not from this address), permanently as "calling AE title not
 * recognized" (source 1, reason 3); while stopping, over the
 * association limit, or over the limit per address, transiently (source 3, reason 1 or 2).
 */
export function decideAssociation(rq: AssociationRequest, cfg: AssociationPolicyConfig): AssociationDecision {
  if (normalizeAet(rq.calledAet) !== normalizeAet(cfg.aeTitle)) {
    return permanent(RejectReason.CalledAeNotRecognized, 'called AE title not recognized', 'calledAeTitle');
  }
  // Not an AE title (PS3.5 6.2): no list can hold it, and the peer is misconfigured or hostile.
  if (!isDefaultRepertoireAet(rq.callingAet)) {
    return permanent(
      RejectReason.CallingAeNotRecognized,
      'calling AE title not recognized: characters outside the DICOM default repertoire',
      'callingAeTitle',
    );
  }
  const verdict = cfg.callingAes.check(rq.callingAet, rq.remoteAddress);
  if (verdict === 'unknownAeTitle') {
    return permanent(RejectReason.CallingAeNotRecognized, 'calling AE title not recognized', 'callingAeTitle');
  }
  if (verdict !== 'allowed') {
    return permanent(
      RejectReason.CallingAeNotRecognized,
      'calling AE title not recognized from this address',
      'callingAeAddress',
    );
  }
  if (rq.stopping) return transient(RejectReason.TemporaryCongestion, 'server is stopping', 'stopping');
  if (rq.activeAssociations >= cfg.maxAssociations) {
    return transient(RejectReason.LocalLimitExceeded, 'too many concurrent associations', 'associationLimit');
  }
  if (rq.activeFromAddress >= cfg.maxAssociationsPerAddress) {
    return transient(
      RejectReason.LocalLimitExceeded,
      'too many concurrent associations from this address',
      'addressLimit',
    );
  }
  return { accept: true };
}

/** A permanent rejection by the service user (us): the peer should not try again as it is. */
function permanent(reason: number, why: string, code: RejectionCode): AssociationDecision {
  return { accept: false, result: RejectResult.Permanent, source: RejectSource.ServiceUser, reason, why, code };
}

/** A transient rejection by the presentation service provider: the peer may try again later. */
function transient(reason: number, why: string, code: RejectionCode): AssociationDecision {
  const source = RejectSource.ServiceProviderPresentation;
  return { accept: false, result: RejectResult.Transient, source, reason, why, code };
}

/**
 * Answers one proposed presentation context (PS3.8 9.3.3.2): Verification and storage abstract
 * syntaxes are accepted with the preferred transfer syntax (see transferSyntaxes.ts); anything
 * else is refused, with transfer syntax ''. `proposedTransferSyntaxes` is copied, never modified.
 */
export function negotiateContext(
  abstractSyntaxUid: string,
  proposedTransferSyntaxes: readonly string[],
): Omit<ContextAnswer, 'id'> {
  const abstract = trimUid(abstractSyntaxUid);
  const verification = abstract === VERIFICATION_SOP_CLASS;
  if (!verification && !isAcceptedStorageSyntax(abstract)) {
    return { result: ContextResult.AbstractSyntaxNotSupported, transferSyntaxUid: '' };
  }
  const ts = pickTransferSyntax([...proposedTransferSyntaxes], verification);
  if (ts === undefined) return { result: ContextResult.TransferSyntaxesNotSupported, transferSyntaxUid: '' };
  return { result: ContextResult.Acceptance, transferSyntaxUid: ts };
}
