// C-ECHO SCU (PS3.7 9.1.5, PS3.4 Annex A Verification): is the peer there and does it speak DICOM?
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../core/dicom/transferSyntax.js';
import { CommandField } from '../commandSet.js';
import { ScuAssociation, type ScuAssociationOptions } from './association.js';

/** Verification SOP Class UID (PS3.4 A.4). */
export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1';

/** The presentation context C-ECHO needs; add it to an association's proposal. */
export const VERIFICATION_CONTEXT = {
  abstractSyntaxUid: VERIFICATION_SOP_CLASS,
  transferSyntaxUids: [EXPLICIT_VR_LE, IMPLICIT_VR_LE],
};

/**
 * Sends one C-ECHO-RQ on an open association and resolves with the C-ECHO-RSP status (0x0000 =
 * success). Throws an Error when Verification was not accepted, an AssociationError when the
 * association ends first.
 */
export async function cEcho(association: ScuAssociation): Promise<number> {
  const ctx = association.acceptedContext(VERIFICATION_SOP_CLASS);
  if (!ctx) throw new Error('the peer did not accept the Verification SOP Class');
  const rsp = await association.request({
    contextId: ctx.id,
    command: { commandField: CommandField.CEchoRq, affectedSopClassUid: VERIFICATION_SOP_CLASS },
  });
  return rsp.command.status;
}

/**
 * Opens an association proposing Verification only, sends one C-ECHO, releases. Resolves with
 * the status and the round trip in ms; rejects with an AssociationError (connect, rejected,
 * aborted, closed, timeout...) or an Error when Verification was refused.
 */
export async function echo(
  opts: Omit<ScuAssociationOptions, 'presentationContexts'>,
): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  const association = await ScuAssociation.open({ ...opts, presentationContexts: [VERIFICATION_CONTEXT] });
  try {
    const status = await cEcho(association);
    await association.release();
    return { status, ms: performance.now() - t0 };
  } finally {
    association.abort(); // no-op once released
  }
}
