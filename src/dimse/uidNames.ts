// Names for UIDs in messages: "CtImageStorage (1.2.840.10008.5.1.4.1.1.2)". From dcmjs-dimse's
// constants, plus the few it lacks.
import dimse from 'dcmjs-dimse';

const { constants } = dimse;

const UID_NAMES = new Map<string, string>();
for (const [name, uid] of Object.entries(constants.TransferSyntax)) UID_NAMES.set(uid, name);
for (const [name, uid] of Object.entries(constants.StorageClass)) UID_NAMES.set(uid, name);
for (const [name, uid] of Object.entries(constants.SopClass)) if (!UID_NAMES.has(uid)) UID_NAMES.set(uid, name);
UID_NAMES.set('1.2.840.10008.5.1.4.1.1.481.5', 'RtPlanStorage');
UID_NAMES.set('1.2.840.10008.5.1.4.1.1.481.2', 'RtDoseStorage');
UID_NAMES.set('1.2.840.10008.5.1.4.1.1.481.3', 'RtStructureSetStorage');
UID_NAMES.set('1.2.840.10008.1.2.4.51', 'JpegExtended12Bit');
UID_NAMES.set('1.2.840.10008.1.2.4.57', 'JpegLosslessProcess14');

/** "CtImageStorage (1.2.840.10008.5.1.4.1.1.2)" or the bare UID. */
export function uidLabel(uid: string): string {
  const n = UID_NAMES.get(uid);
  return n ? `${n} (${uid})` : uid;
}
