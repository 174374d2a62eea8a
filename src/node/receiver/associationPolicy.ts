// Which associations and presentation contexts the receiver accepts (pure functions).
// Numeric values are those of PS3.8 9.3.3.2 / 9.3.4 (A-ASSOCIATE-AC/RJ).
import { trimUid } from '../../core/dicom/uid.js';
import { VERIFICATION_SOP_CLASS, isAcceptedStorageSyntax } from './storageSopClasses.js';
import type { CallingAeVerdict } from './callingAes.js';
import { pickTransferSyntax } from './transferSyntaxes.js';

export const RejectResult = { Permanent: 1, Transient: 2 } as const;
export const RejectSource = { ServiceUser: 1, ServiceProviderAcse: 2, ServiceProviderPresentation: 3 } as const;
export const RejectReason = {
  NoReasonGiven: 1,
  CallingAeNotRecognized: 3,
  CalledAeNotRecognized: 7,
  /** With source ServiceProviderPresentation. */
  TemporaryCongestion: 1,
  /** With source ServiceProviderPresentation. */
  LocalLimitExceeded: 2,
} as const;

export const ContextResult = {
  Accept: 0,
  RejectUser: 1,
  RejectNoReason: 2,
  AbstractSyntaxNotSupported: 3,
  TransferSyntaxesNotSupported: 4,
} as const;

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

export type AssociationDecision =
  | { accept: true }
  | { accept: false; result: number; source: number; reason: number; why: string; code: RejectionCode };

/** An AE title we can be configured with: 1-16 characters, no backslash or control character. */
export function isValidAeTitle(aet: string): boolean {
  return aet.length >= 1 && aet.length <= 16 && !/[\\\x00-\x1f]/.test(aet);
}

/** AE titles are compared exactly after removing padding spaces/NULs. */
export function normalizeAet(aet: string): string {
  return aet.replace(/^[ \0]+|[ \0]+$/g, '');
}

/**
 * Accepts or rejects an association request (PS3.8 9.3.4 result/source/reason): a wrong called
 * AE title, and a calling AE title that is not allowed (or not from this address), are rejected
 * permanently as "calling AE title not recognized" (source 1, reason 3); while stopping, over the
 * association limit, or over the limit per address, transiently (source 3, reason 1 or 2).
 */
export function decideAssociation(rq: AssociationRequest, cfg: AssociationPolicyConfig): AssociationDecision {
  if (normalizeAet(rq.calledAet) !== normalizeAet(cfg.aeTitle)) {
    return {
      accept: false,
      result: RejectResult.Permanent,
      source: RejectSource.ServiceUser,
      reason: RejectReason.CalledAeNotRecognized,
      why: 'called AE title not recognized',
      code: 'calledAeTitle',
    };
  }
  const verdict = cfg.callingAes.check(rq.callingAet, rq.remoteAddress);
  if (verdict !== 'allowed') {
    return {
      accept: false,
      result: RejectResult.Permanent,
      source: RejectSource.ServiceUser,
      reason: RejectReason.CallingAeNotRecognized,
      why:
        verdict === 'unknownAeTitle'
          ? 'calling AE title not recognized'
          : 'calling AE title not recognized from this address',
      code: verdict === 'unknownAeTitle' ? 'callingAeTitle' : 'callingAeAddress',
    };
  }
  if (rq.stopping) {
    return {
      accept: false,
      result: RejectResult.Transient,
      source: RejectSource.ServiceProviderPresentation,
      reason: RejectReason.TemporaryCongestion,
      why: 'server is stopping',
      code: 'stopping',
    };
  }
  if (rq.activeAssociations >= cfg.maxAssociations) {
    return {
      accept: false,
      result: RejectResult.Transient,
      source: RejectSource.ServiceProviderPresentation,
      reason: RejectReason.LocalLimitExceeded,
      why: 'too many concurrent associations',
      code: 'associationLimit',
    };
  }
  if (rq.activeFromAddress >= cfg.maxAssociationsPerAddress) {
    return {
      accept: false,
      result: RejectResult.Transient,
      source: RejectSource.ServiceProviderPresentation,
      reason: RejectReason.LocalLimitExceeded,
      why: 'too many concurrent associations from this address',
      code: 'addressLimit',
    };
  }
  return { accept: true };
}

export interface ContextAnswer {
  result: number;
  /** Set when result is Accept. */
  transferSyntaxUid?: string;
}

/**
 * Answers one proposed presentation context: Verification and storage abstract syntaxes are
 * accepted with the preferred transfer syntax (see transferSyntaxes.ts); anything else is
 * refused. `proposedTransferSyntaxes` is copied, never modified.
 */
export function negotiateContext(
  abstractSyntaxUid: string,
  proposedTransferSyntaxes: readonly string[],
): ContextAnswer {
  const abstract = trimUid(abstractSyntaxUid);
  const verification = abstract === VERIFICATION_SOP_CLASS;
  if (!verification && !isAcceptedStorageSyntax(abstract)) {
    return { result: ContextResult.AbstractSyntaxNotSupported };
  }
  const ts = pickTransferSyntax([...proposedTransferSyntaxes], verification);
  if (ts === undefined) return { result: ContextResult.TransferSyntaxesNotSupported };
  return { result: ContextResult.Accept, transferSyntaxUid: ts };
}
