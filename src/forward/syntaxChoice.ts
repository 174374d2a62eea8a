// Which transfer syntaxes a filed instance may reach a destination in (issue 14): as stored, or
// converted by the conversion engine (conversionsFor: explicit or implicit VR little endian from
// every syntax the engine reads), limited and ordered by the destination's `transferSyntaxes`
// preference when it has one. The SCU proposes each of these syntaxes on a presentation context
// of its own, then sends each file in the first of its syntaxes the peer accepted.
import { CONVERSION_TARGETS, conversionsFor } from '../core/transcode/transferSyntaxes.js';
import { uidLabel } from '../dimse/uidNames.js';

/**
 * The transfer syntaxes a file stored in `storedTs` may be sent in, best first:
 * - without a preference: the stored syntax, then the conversions (explicit VR LE, implicit VR LE);
 * - with one (a destination's `transferSyntaxes`): the preference's syntaxes that are the stored
 *   one or a conversion of it, in the preference's order. Nothing else is ever sent: a stored
 *   syntax missing from the list is converted even when the peer would accept it as stored.
 * Empty when the preference allows neither the stored syntax nor a conversion of it.
 */
export function candidateSyntaxes(storedTs: string, preference?: readonly string[]): string[] {
  const reachable = [storedTs, ...conversionsFor(storedTs)];
  if (!preference) return reachable;
  return [...new Set(preference)].filter((ts) => reachable.includes(ts));
}

/**
 * Why a file stored in `storedTs` has no candidate syntax under `preference` (one line, for the
 * dead letter): e.g. "the destination's transferSyntaxes (JPEG2000 (...)) allow neither the stored
 * transfer syntax RLELossless (...) nor a conversion of it (ExplicitVRLittleEndian (...), ...)".
 */
export function noCandidateReason(storedTs: string, preference: readonly string[]): string {
  const list = `the destination's transferSyntaxes (${preference.map(uidLabel).join(', ')})`;
  const conversions = conversionsFor(storedTs);
  if (conversions.length === 0) {
    return `${list} do not include the stored transfer syntax ${uidLabel(storedTs)}, which cannot be converted`;
  }
  return (
    `${list} allow neither the stored transfer syntax ${uidLabel(storedTs)} ` +
    `nor a conversion of it (${conversions.map(uidLabel).join(', ')})`
  );
}

/**
 * A warning for a destination whose `transferSyntaxes` name none of the syntaxes we convert to
 * (explicit or implicit VR little endian): we never compress, so only files already stored in a
 * listed syntax can go there and every other file goes dead. Undefined when the list names one of
 * them, or there is no list. One line, for the log when forwarding starts.
 */
export function preferenceWarning(preference: readonly string[] | undefined): string | undefined {
  if (!preference || preference.some((ts) => CONVERSION_TARGETS.includes(ts))) return undefined;
  return (
    `transferSyntaxes (${preference.map(uidLabel).join(', ')}) name none of the syntaxes files are ` +
    `converted to (${CONVERSION_TARGETS.map(uidLabel).join(', ')}; nothing is compressed): only files ` +
    `stored in a listed syntax can be sent, the others will go dead`
  );
}
