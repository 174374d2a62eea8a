// The one error the conversion engine throws: a one-line reason, and whether the instance is
// beyond our codecs (unsupported) or its bytes are damaged or inconsistent (corrupt). Either way
// the forwarder dead-letters the instance with `message` as the reason; retrying cannot help.

export type ConversionFailure = 'unsupported' | 'corrupt';

/** Thrown by conversionsFor/convert when an instance cannot be converted; `message` is one line. */
export class ConversionError extends Error {
  override name = 'ConversionError';
  /** `kind`: 'unsupported' (beyond our codecs) or 'corrupt' (damaged bytes); `message`: one line. */
  constructor(
    readonly kind: ConversionFailure,
    message: string,
  ) {
    super(message);
  }
}

/** A ConversionError of kind 'unsupported' (the instance is beyond our codecs). */
export const unsupported = (message: string): ConversionError => new ConversionError('unsupported', message);
/** A ConversionError of kind 'corrupt' (the instance's bytes are damaged or inconsistent). */
export const corrupt = (message: string): ConversionError => new ConversionError('corrupt', message);
