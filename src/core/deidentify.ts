// STUB — being written by the lead (element-level editor over the original bytes).
// Signatures are the contract; do not change them without the lead.
import type { DeidPlan, DeidResult, InstanceKeys } from './types.js';

/** Reads the keys needed for matching and counters. Throws DicomFormatError on bad input. */
export function readInstanceKeys(bytes: Uint8Array): InstanceKeys {
  void bytes;
  throw new Error('readInstanceKeys: not implemented yet');
}

/**
 * De-identifies one Part 10 instance (PS3.15 Basic Profile + Retain Longitudinal Modified Dates,
 * plus the project's kept attributes). Pure: no I/O. Throws DicomFormatError on bad input.
 */
export function deidentify(bytes: Uint8Array, plan: DeidPlan): DeidResult {
  void bytes; void plan;
  throw new Error('deidentify: not implemented yet');
}
