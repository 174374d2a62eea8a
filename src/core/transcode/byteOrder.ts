// Big endian to little endian, value by value (PS3.5 7.3): each VR has a fixed unit whose bytes
// are reversed. OB, UN and the text VRs are byte streams and stay as they are; OW (pixel data
// too, whatever Bits Allocated says) is a stream of 16-bit words, as dcmtk and GDCM read it.

/** Bytes per swapped unit for `vr` (1: nothing to swap). */
export function swapUnit(vr: string): 1 | 2 | 4 | 8 {
  switch (vr) {
    case 'US':
    case 'SS':
    case 'OW':
    case 'AT': // a pair of 16-bit numbers (group, element)
      return 2;
    case 'UL':
    case 'SL':
    case 'FL':
    case 'OF':
    case 'OL':
      return 4;
    case 'FD':
    case 'OD':
    case 'SV':
    case 'UV':
    case 'OV':
      return 8;
    default:
      return 1;
  }
}

/** Reverses each `unit`-byte group of `b` in place (`b.length` must be a multiple of `unit`). */
export function swapInPlace(b: Buffer, unit: 1 | 2 | 4 | 8): void {
  if (unit === 2) b.swap16();
  else if (unit === 4) b.swap32();
  else if (unit === 8) b.swap64();
}
