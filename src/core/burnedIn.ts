// Text burned into the pixels (a name, an MRN, a date typed onto an ultrasound or a screen
// capture) is the one identifier the element-level profile cannot remove: the pixels are copied
// untouched. PS3.3 C.7.6.1.1.5 gives the signal: Burned In Annotation (0028,0301) says whether
// the image has "sufficient burned in annotation to identify the patient" (YES) or not (NO).
// Where it is absent, the kind of image decides how likely text is: ultrasound, secondary and
// screen captures, endoscopy and photographs carry it routinely; CT or MR slices do not.
// Pure: the verdict comes from a few header values (InstanceKeys).
import type { InstanceKeys } from './types.js';

/** Modalities whose images commonly carry burned-in text (PS3.3 C.7.3.1.1.1 terms). */
const TEXT_PRONE_MODALITIES: ReadonlyMap<string, string> = new Map([
  ['US', 'ultrasound'],
  ['SC', 'secondary capture'],
  ['OT', 'modality OT (other)'],
  ['XC', 'external-camera photograph'],
  ['ES', 'endoscopy'],
]);

/** SOP classes whose images commonly carry burned-in text (PS3.4 Annex B), by UID. */
const TEXT_PRONE_SOP_CLASSES: ReadonlyMap<string, string> = new Map([
  ['1.2.840.10008.5.1.4.1.1.7', 'secondary capture'],
  ['1.2.840.10008.5.1.4.1.1.7.1', 'secondary capture'],
  ['1.2.840.10008.5.1.4.1.1.7.2', 'secondary capture'],
  ['1.2.840.10008.5.1.4.1.1.7.3', 'secondary capture'],
  ['1.2.840.10008.5.1.4.1.1.7.4', 'secondary capture'],
  ['1.2.840.10008.5.1.4.1.1.6', 'ultrasound'], // retired
  ['1.2.840.10008.5.1.4.1.1.6.1', 'ultrasound'],
  ['1.2.840.10008.5.1.4.1.1.3', 'ultrasound'], // multi-frame, retired
  ['1.2.840.10008.5.1.4.1.1.3.1', 'ultrasound'],
  ['1.2.840.10008.5.1.4.1.1.77.1.1', 'endoscopy'],
  ['1.2.840.10008.5.1.4.1.1.77.1.1.1', 'endoscopy'],
  ['1.2.840.10008.5.1.4.1.1.77.1.4', 'photograph'],
  ['1.2.840.10008.5.1.4.1.1.77.1.4.1', 'photograph'],
]);

/**
 * Conversion Type (0008,0064) values of a capture of a screen or of paper (PS3.3 C.8.6.1):
 * WSD workstation, SD scanned document, SI scanned image, DRW drawing, DV digitized video.
 */
const SCREEN_CONVERSIONS = new Set(['WSD', 'SD', 'SI', 'DRW', 'DV']);

/** What is known about text in an instance's pixels. */
export type BurnedInVerdict =
  /** Burned In Annotation is YES: the image says it identifies the patient. */
  | { kind: 'declared'; reason: string }
  /** An image of a kind that commonly carries text, not declared free of it (no NO). */
  | { kind: 'review'; reason: string; imageKind: string };

/**
 * The verdict for an instance's pixels, or null when nothing points to burned-in text (no pixel
 * data, Burned In Annotation NO, or an image kind that does not usually carry text). The reason
 * is a few log-safe words (no identifier).
 */
export function burnedInVerdict(keys: InstanceKeys): BurnedInVerdict | null {
  const declared = keys.burnedInAnnotation.trim().toUpperCase();
  if (declared === 'YES') return { kind: 'declared', reason: 'Burned In Annotation (0028,0301) is YES' };
  if (declared === 'NO' || !keys.hasPixelData) return null;
  const byClass = TEXT_PRONE_SOP_CLASSES.get(keys.sopClassUid);
  const byModality = TEXT_PRONE_MODALITIES.get(keys.modality.trim().toUpperCase());
  const screen =
    SCREEN_CONVERSIONS.has(keys.conversionType.trim().toUpperCase()) || /SCREEN/i.test(keys.imageType)
      ? 'screen or document capture'
      : undefined;
  const kind = screen ?? byClass ?? byModality;
  if (kind === undefined) return null;
  return {
    kind: 'review',
    reason: `${kind} without Burned In Annotation (0028,0301) = NO: check the pixels for text`,
    imageKind: kind,
  };
}
