// C-FIND SCU (PS3.7 9.1.2, PS3.4 C.4.1): one query on an open association, its answers read one
// by one as pending responses arrive.
import { DicomFormatError } from '../../core/types.js';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../core/dicom/transferSyntax.js';
import { CommandField, Priority } from '../commandSet.js';
import { decodeIdentifier, encodeIdentifier, type QueryKey } from '../queryIdentifier.js';
import type { ScuAssociation } from './association.js';
import { bufferDataSet } from './dataSetSource.js';

/** Study Root Query/Retrieve Information Model - FIND (PS3.4 C.6.2.1). */
export const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';

/** The presentation context C-FIND needs; add it to an association's proposal. */
export const STUDY_ROOT_FIND_CONTEXT = {
  abstractSyntaxUid: STUDY_ROOT_FIND,
  transferSyntaxUids: [EXPLICIT_VR_LE, IMPLICIT_VR_LE],
};

export interface CFindRequest {
  /** The keys: matching keys with a value, return keys with ''; QueryRetrieveLevel included. */
  keys: readonly QueryKey[];
  /** Information model (default Study Root); its context must have been accepted. */
  sopClassUid?: string;
  /** commandSet Priority (default Low: a clinical PACS serves people first). */
  priority?: number;
  /**
   * Called with each answer's values (decodeIdentifier: text values, padding removed). May not
   * throw. Answers that cannot be read are counted, not passed.
   */
  onMatch: (answer: Map<number, string>) => void;
  /** Ask the peer to stop (C-CANCEL) after this many answers; the final status is then 0xFE00. */
  maxMatches?: number;
}

export interface CFindResult {
  /** The final C-FIND-RSP status: 0x0000 means the answers are complete (see retrieveStatusMeaning). */
  status: number;
  /** (0000,0902) Error Comment, when given (free text from the peer: not for logs unchecked). */
  errorComment?: string;
  /** Answers passed to onMatch. */
  matches: number;
  /** Answers whose identifier could not be read: the result is incomplete when not 0. */
  unreadable: number;
}

/**
 * Sends one C-FIND-RQ (identifier written in the context's transfer syntax) and passes each
 * answer to `onMatch`; resolves with the final status. Throws an Error when the information
 * model was not accepted, an AssociationError when the association ends first.
 */
export async function cFind(association: ScuAssociation, req: CFindRequest): Promise<CFindResult> {
  const sopClassUid = req.sopClassUid ?? STUDY_ROOT_FIND;
  const ctx = association.acceptedContext(sopClassUid);
  if (!ctx) throw new Error(`the peer did not accept the query information model ${sopClassUid}`);
  let matches = 0;
  let unreadable = 0;
  let cancelled = false;
  const rsp = await association.request({
    contextId: ctx.id,
    command: {
      commandField: CommandField.CFindRq,
      affectedSopClassUid: sopClassUid,
      priority: req.priority ?? Priority.Low,
    },
    dataSet: bufferDataSet(encodeIdentifier(req.keys, ctx.transferSyntaxUid)),
    onPending: (response) => {
      if (!response.dataSet) return; // a pending answer without identifier: nothing to read
      let answer: Map<number, string>;
      try {
        answer = decodeIdentifier(response.dataSet, ctx.transferSyntaxUid);
      } catch (e) {
        if (!(e instanceof DicomFormatError)) throw e;
        unreadable++;
        return;
      }
      matches++;
      req.onMatch(answer);
      if (req.maxMatches !== undefined && matches >= req.maxMatches && !cancelled) {
        cancelled = true;
        association.cancel();
      }
    },
  });
  return {
    status: rsp.command.status,
    ...(rsp.command.errorComment ? { errorComment: rsp.command.errorComment } : {}),
    matches,
    unreadable,
  };
}
