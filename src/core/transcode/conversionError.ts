// The one error the conversion engine throws: a one-line reason, and whether the instance is
// beyond our codecs (unsupported) or its bytes are damaged or inconsistent (corrupt). Either way
// the forwarder dead-letters the instance with `message` as the reason; retrying cannot help.

export type ConversionFailure = 'unsupported' | 'corrupt';

/** Thrown by conversionsFor/convert when an instance cannot be converted; `message` is one line. */
export class ConversionError extends Error {
  override name = 'ConversionError';
  constructor(
    readonly kind: ConversionFailure,
    message: string,
  ) {
    super(message);
  }
}

export const unsupported = (message: string): ConversionError => new ConversionError('unsupported', message);
export const corrupt = (message: string): ConversionError => new ConversionError('corrupt', message);
