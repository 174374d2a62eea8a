// Text values under their Specific Character Set (0008,0005): decode bytes to Unicode and encode
// Unicode to bytes (PS3.5 6.1, PS3.3 C.12.1.1.2). Pure: bytes in, strings out.
export { parseSpecificCharacterSet, DEFAULT_CHARACTER_SET, type SpecificCharacterSet } from './specificCharacterSet.js';
export { decodeText, decodeValues, CHARSET_VRS } from './decode.js';
export { decodePersonNames, personName, type PersonName } from './personName.js';
export { encodeText, type EncodedText, type UnencodableCharacter } from './encode.js';
