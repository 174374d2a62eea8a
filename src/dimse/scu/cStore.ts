// C-STORE SCU (PS3.7 9.1.1, PS3.4 Annex B): one instance's data set, from a chunked source, on an
// open association.
import { CommandField, type ResponseCommand } from '../commandSet.js';
import type { ScuAssociation } from './association.js';
import type { DataSetSource } from './dataSetSource.js';

export interface CStoreRequest {
  /** An accepted presentation context whose transfer syntax is the data set's. */
  contextId: number;
  sopClassUid: string;
  sopInstanceUid: string;
  /** The data set, already in the context's transfer syntax (nothing is converted here). */
  dataSet: DataSetSource;
  /** Priority (commandSet.Priority), default medium. */
  priority?: number;
  /** Set when this C-STORE is a sub-operation of a C-MOVE we perform (PS3.7 9.3.1.1). */
  moveOriginator?: { aeTitle: string; messageId: number };
}

/**
 * Sends one C-STORE-RQ and its data set and resolves with the C-STORE-RSP command (its status:
 * see status.ts statusMeaning). Rejects with the AssociationError that ended the association
 * (kind 'source' when the data set could not be read).
 */
export async function cStore(association: ScuAssociation, req: CStoreRequest): Promise<ResponseCommand> {
  const rsp = await association.request({
    contextId: req.contextId,
    command: {
      commandField: CommandField.CStoreRq,
      affectedSopClassUid: req.sopClassUid,
      affectedSopInstanceUid: req.sopInstanceUid,
      ...(req.priority !== undefined ? { priority: req.priority } : {}),
      ...(req.moveOriginator
        ? { moveOriginatorAeTitle: req.moveOriginator.aeTitle, moveOriginatorMessageId: req.moveOriginator.messageId }
        : {}),
    },
    dataSet: req.dataSet,
  });
  return rsp.command;
}
