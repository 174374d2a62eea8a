// C-MOVE SCU (PS3.7 9.1.4, PS3.4 C.4.2): ask a PACS to send a study to a move destination (an AE
// title it knows), following the sub-operation counts it reports while it sends.
//
// A final Success does not prove that anything arrived: a PACS may answer before its
// sub-operations finish (Orthanc with SynchronousCMove false answered Success with all 30
// completed while 1 file had arrived; docs/research/retrieve-and-scale.md 1.2). Whoever asks for
// the move checks arrivals at the destination.
import { DicomFormatError } from '../../core/types.js';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../core/dicom/transferSyntax.js';
import { CommandField, Priority, type ResponseCommand } from '../commandSet.js';
import { QueryTag, decodeIdentifier, encodeIdentifier } from '../queryIdentifier.js';
import type { ScuAssociation } from './association.js';
import { bufferDataSet } from './dataSetSource.js';

/** Study Root Query/Retrieve Information Model - MOVE (PS3.4 C.6.2.1). */
export const STUDY_ROOT_MOVE = '1.2.840.10008.5.1.4.1.2.2.2';

/** The presentation context C-MOVE needs; add it to an association's proposal. */
export const STUDY_ROOT_MOVE_CONTEXT = {
  abstractSyntaxUid: STUDY_ROOT_MOVE,
  transferSyntaxUids: [EXPLICIT_VR_LE, IMPLICIT_VR_LE],
};

/** Sub-operation counts of a C-MOVE-RSP (PS3.7 9.1.4.1.7-10); absent ones are undefined. */
export type SubOperations = NonNullable<ResponseCommand['subOperations']>;

export interface CMoveRequest {
  /** The study to send. */
  studyInstanceUid: string;
  /** Move Destination: the AE title the PACS sends the study to (it must know its address). */
  destination: string;
  /** commandSet Priority (default Low). */
  priority?: number;
  /** Called with the counts of each pending response. May not throw. */
  onProgress?: (counts: SubOperations) => void;
}

export interface CMoveResult {
  /** The final C-MOVE-RSP status (see retrieveStatusMeaning). */
  status: number;
  /** The final response's counts, when it gave any (optional after a Success, PS3.4 C.4.2.1.5). */
  subOperations?: SubOperations;
  /** (0000,0902) Error Comment, when given (free text from the peer: not for logs unchecked). */
  errorComment?: string;
  /** How many SOP Instance UIDs the final identifier lists as failed (0008,0058), if it has one. */
  failedInstances?: number;
  /** Pending responses received. */
  pendingResponses: number;
}

/**
 * Sends one study-level C-MOVE-RQ (QueryRetrieveLevel STUDY, StudyInstanceUID) on an open
 * association and resolves with its final response. Throws an Error when the information model
 * was not accepted, an AssociationError when the association ends first (the move may then go on
 * at the PACS).
 */
export async function cMove(association: ScuAssociation, req: CMoveRequest): Promise<CMoveResult> {
  const ctx = association.acceptedContext(STUDY_ROOT_MOVE);
  if (!ctx) throw new Error('the peer did not accept the Study Root MOVE information model');
  let pendingResponses = 0;
  const identifier = encodeIdentifier(
    [
      { tag: QueryTag.QueryRetrieveLevel, vr: 'CS', value: 'STUDY' },
      { tag: QueryTag.StudyInstanceUid, vr: 'UI', value: req.studyInstanceUid },
    ],
    ctx.transferSyntaxUid,
  );
  const rsp = await association.request({
    contextId: ctx.id,
    command: {
      commandField: CommandField.CMoveRq,
      affectedSopClassUid: STUDY_ROOT_MOVE,
      priority: req.priority ?? Priority.Low,
      moveDestination: req.destination,
    },
    dataSet: bufferDataSet(identifier),
    onPending: (response) => {
      pendingResponses++;
      if (response.command.subOperations) req.onProgress?.(response.command.subOperations);
    },
  });
  let failedInstances: number | undefined;
  if (rsp.dataSet) {
    try {
      const list = decodeIdentifier(rsp.dataSet, ctx.transferSyntaxUid).get(QueryTag.FailedSopInstanceUidList);
      if (list !== undefined) failedInstances = list === '' ? 0 : list.split('\\').length;
    } catch (e) {
      if (!(e instanceof DicomFormatError)) throw e;
    }
  }
  return {
    status: rsp.command.status,
    ...(rsp.command.subOperations ? { subOperations: rsp.command.subOperations } : {}),
    ...(rsp.command.errorComment ? { errorComment: rsp.command.errorComment } : {}),
    ...(failedInstances !== undefined ? { failedInstances } : {}),
    pendingResponses,
  };
}
