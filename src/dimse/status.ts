// DIMSE status codes (PS3.7 Annex C, the C-STORE statuses of PS3.4 B.2.3, the C-FIND and C-MOVE
// statuses of PS3.4 C.4.1.1.4 and C.4.2.1.5) and what they mean to a requestor: one table, used by
// the receiver to answer and by every SCU to judge an answer (in the spirit of pynetdicom's
// status.py). A code's meaning depends on the service: 0xB000 is "coercion of data elements" in
// a C-STORE-RSP and "sub-operations complete, one or more failures" in a C-MOVE-RSP, so C-FIND
// and C-MOVE answers are judged by retrieveStatusMeaning, not statusMeaning.

/** The status codes this project answers or reacts to by name (PS3.7 C.1-C.5, PS3.4 B.2.3). */
export const Status = {
  Success: 0x0000,
  /** Warning: attribute value out of range / coercion of data elements (PS3.4 B.2.3). */
  CoercionOfDataElements: 0xb000,
  ElementsDiscarded: 0xb006,
  DataSetDoesNotMatchSopClassWarning: 0xb007,
  /** Warning (PS3.7 C.4.1 "attribute list error" family uses 0x0107); 0x0001 is a generic warning. */
  Warning: 0x0001,
  DuplicateSopInstance: 0x0111,
  NoSuchSopClass: 0x0118,
  SopClassNotSupported: 0x0122,
  NotAuthorized: 0x0124,
  InvalidSopInstance: 0x0117,
  ProcessingFailure: 0x0110,
  UnrecognizedOperation: 0x0211,
  MistypedArgument: 0x0212,
  ResourceLimitation: 0x0213,
  /** Refused: out of resources (C-STORE, PS3.4 B.2.3: A7xx). */
  OutOfResources: 0xa700,
  /** C-MOVE/C-GET refused: out of resources, unable to calculate number of matches / to perform sub-operations. */
  OutOfResourcesMatches: 0xa701,
  OutOfResourcesSubOperations: 0xa702,
  /** C-MOVE: move destination unknown. */
  MoveDestinationUnknown: 0xa801,
  /** Error: data set does not match SOP class (A9xx); for C-FIND/C-MOVE, the identifier does not. */
  DataSetDoesNotMatchSopClass: 0xa900,
  /** C-MOVE/C-GET warning: sub-operations complete, one or more failures or warnings (PS3.4 C.4.2.1.5). */
  SubOperationsCompleteWithFailures: 0xb000,
  /** Error: cannot understand (Cxxx). */
  CannotUnderstand: 0xc000,
  Cancel: 0xfe00,
  Pending: 0xff00,
  PendingWarning: 0xff01,
} as const;

/** How a sender should treat an answer. `delivered` includes warnings (the peer stored it). */
export type StatusCategory = 'success' | 'warning' | 'pending' | 'cancel' | 'transient' | 'permanent';

/** What one status means: its category and a short description for logs and dead letters. */
export interface StatusMeaning {
  category: StatusCategory;
  /** e.g. "refused 0xA700: out of resources". */
  text: string;
}

/** "0xA700". */
export function statusHex(status: number): string {
  return '0x' + status.toString(16).toUpperCase().padStart(4, '0');
}

/**
 * The meaning of a C-STORE (or other DIMSE) response status to the sender: success, warning
 * (stored), pending, cancel, or a failure that is worth retrying later (transient: resources,
 * processing failure, an unknown code) or not (permanent: the peer refuses this instance).
 */
export function statusMeaning(status: number): StatusMeaning {
  const h = statusHex(status);
  if (status === Status.Success) return { category: 'success', text: `success ${h}` };
  if (status === Status.CoercionOfDataElements)
    return { category: 'warning', text: `warning ${h}: coercion of data elements` };
  if (status === Status.DataSetDoesNotMatchSopClassWarning) {
    return { category: 'warning', text: `warning ${h}: data set does not match SOP class` };
  }
  if (status === Status.ElementsDiscarded) return { category: 'warning', text: `warning ${h}: elements discarded` };
  if ((status & 0xf000) === 0xb000 || status === Status.Warning) return { category: 'warning', text: `warning ${h}` };
  // Already stored by the peer (e.g. a retry after a lost response): idempotent, counts as stored.
  if (status === Status.DuplicateSopInstance) {
    return { category: 'warning', text: `${h}: duplicate SOP instance (already stored by peer)` };
  }
  if (status === Status.Pending || status === Status.PendingWarning)
    return { category: 'pending', text: `pending ${h}` };
  if (status === Status.Cancel) return { category: 'cancel', text: `${h}: cancelled` };
  if (status === Status.MoveDestinationUnknown) {
    return { category: 'permanent', text: `refused ${h}: move destination unknown` };
  }
  if ((status & 0xff00) === 0xa700) return { category: 'transient', text: `refused ${h}: out of resources` };
  if (status === Status.ResourceLimitation) return { category: 'transient', text: `failed ${h}: resource limitation` };
  if (status === Status.ProcessingFailure) return { category: 'transient', text: `failed ${h}: processing failure` };
  if ((status & 0xff00) === 0xa900) {
    return { category: 'permanent', text: `error ${h}: data set does not match SOP class` };
  }
  if ((status & 0xf000) === 0xc000) return { category: 'permanent', text: `error ${h}: cannot understand` };
  if (status === Status.SopClassNotSupported)
    return { category: 'permanent', text: `refused ${h}: SOP class not supported` };
  if (status === Status.NotAuthorized) return { category: 'permanent', text: `refused ${h}: not authorized` };
  if (status === Status.InvalidSopInstance) return { category: 'permanent', text: `error ${h}: invalid SOP instance` };
  if (status === Status.UnrecognizedOperation || status === Status.MistypedArgument) {
    return { category: 'permanent', text: `error ${h}: operation/argument not recognized` };
  }
  if ((status & 0xf000) === 0xa000) return { category: 'permanent', text: `refused ${h}` };
  return { category: 'transient', text: `failed with unrecognized status ${h}` };
}

/** True for statuses after which the peer holds the instance (success or a warning). */
export function isStored(status: number): boolean {
  const c = statusMeaning(status).category;
  return c === 'success' || c === 'warning';
}

/** What a C-FIND or C-MOVE final answer means to the requestor (PS3.4 C.4.1.1.4, C.4.2.1.5). */
export type RetrieveStatusCategory =
  /** Complete, no failure (0x0000). */
  | 'success'
  /** C-MOVE done with failed or warning sub-operations (0xB000, or 0x0001 and 0xBxxx). */
  | 'warning'
  | 'pending'
  /** Ended early: cancelled (0xFE00), or a C-FIND cut short by a result cap. The answer is incomplete. */
  | 'cancel'
  /** Out of resources (0xA700, 0xA701, 0xA702): back off and ask again. */
  | 'busy'
  /** Move destination unknown (0xA801): the PACS does not know our AE title. */
  | 'unknown-destination'
  /** Any other failure: identifier refused (0xA900), unable to process (0xCxxx), unsupported... */
  | 'failure';

/**
 * The meaning of a C-FIND-RSP or C-MOVE-RSP status, with a short description for logs and the
 * report (no identifiers). PS3.4 C.4.1.1.4 (C-FIND) and C.4.2.1.5 (C-MOVE).
 */
export function retrieveStatusMeaning(status: number): { category: RetrieveStatusCategory; text: string } {
  const h = statusHex(status);
  if (status === Status.Success) return { category: 'success', text: `success ${h}` };
  if (status === Status.Pending || status === Status.PendingWarning)
    return { category: 'pending', text: `pending ${h}` };
  if (status === Status.Cancel) return { category: 'cancel', text: `${h}: cancelled or cut short` };
  if ((status & 0xf000) === 0xb000 || status === Status.Warning) {
    return { category: 'warning', text: `warning ${h}: sub-operations complete with failures or warnings` };
  }
  if (status === Status.OutOfResourcesMatches) {
    return { category: 'busy', text: `refused ${h}: out of resources (unable to calculate the number of matches)` };
  }
  if (status === Status.OutOfResourcesSubOperations) {
    return { category: 'busy', text: `refused ${h}: out of resources (unable to perform sub-operations)` };
  }
  if ((status & 0xff00) === 0xa700) return { category: 'busy', text: `refused ${h}: out of resources` };
  if (status === Status.MoveDestinationUnknown) {
    return { category: 'unknown-destination', text: `refused ${h}: move destination unknown` };
  }
  if ((status & 0xff00) === 0xa900) {
    return { category: 'failure', text: `error ${h}: identifier does not match SOP class` };
  }
  if ((status & 0xf000) === 0xc000) return { category: 'failure', text: `failed ${h}: unable to process` };
  if (status === Status.SopClassNotSupported) {
    return { category: 'failure', text: `refused ${h}: SOP class not supported` };
  }
  if (status === Status.NotAuthorized) return { category: 'failure', text: `refused ${h}: not authorized` };
  return { category: 'failure', text: `failed with status ${h}` };
}
