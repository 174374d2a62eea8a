// Which associations and presentation contexts the receiver accepts (pure functions).
// Numeric values are those of PS3.8 9.3.3.2 / 9.3.4 (A-ASSOCIATE-AC/RJ).
import { trimUid } from '../../core/dicom/uid.js';
import { VERIFICATION_SOP_CLASS, isAcceptedStorageSyntax } from './storageSopClasses.js';
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
  /** Empty: any calling AE. */
  allowedCallingAets: readonly string[];
  maxAssociations: number;
}

/** Why an association was rejected, as a stable key (status counts). */
export type RejectionCode = 'calledAeTitle' | 'callingAeTitle' | 'stopping' | 'associationLimit';

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

export function decideAssociation(
  callingAet: string,
  calledAet: string,
  cfg: AssociationPolicyConfig,
  activeAssociations: number,
  stopping: boolean,
): AssociationDecision {
  if (normalizeAet(calledAet) !== normalizeAet(cfg.aeTitle)) {
    return {
      accept: false,
      result: RejectResult.Permanent,
      source: RejectSource.ServiceUser,
      reason: RejectReason.CalledAeNotRecognized,
      why: 'called AE title not recognized',
      code: 'calledAeTitle',
    };
  }
  const calling = normalizeAet(callingAet);
  if (cfg.allowedCallingAets.length > 0 && !cfg.allowedCallingAets.some((a) => normalizeAet(a) === calling)) {
    return {
      accept: false,
      result: RejectResult.Permanent,
      source: RejectSource.ServiceUser,
      reason: RejectReason.CallingAeNotRecognized,
      why: 'calling AE title not allowed',
      code: 'callingAeTitle',
    };
  }
  if (stopping) {
    return {
      accept: false,
      result: RejectResult.Transient,
      source: RejectSource.ServiceProviderPresentation,
      reason: RejectReason.TemporaryCongestion,
      why: 'server is stopping',
      code: 'stopping',
    };
  }
  if (activeAssociations >= cfg.maxAssociations) {
    return {
      accept: false,
      result: RejectResult.Transient,
      source: RejectSource.ServiceProviderPresentation,
      reason: RejectReason.LocalLimitExceeded,
      why: 'too many concurrent associations',
      code: 'associationLimit',
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
