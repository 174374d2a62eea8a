// Part 10 files on disk: where the data set starts and the three UIDs a sender needs, read from
// a bounded prefix of the file (never the data set). The bytes are read by core/dicom/fileMeta.ts.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { readFileMeta, type FileMeta } from '../core/dicom/fileMeta.js';
import { DicomFormatError } from '../core/types.js';

/** The file meta of a Part 10 file on disk, with its SOP Class and Instance UIDs present. */
export type P10Header = FileMeta;

const MAX_META = 1 << 20;

/**
 * Reads just enough of `path` to parse its file meta (4 KiB, more only for a larger meta).
 * Throws DicomFormatError (one line, prefixed with `what`) when it is not a Part 10 file with
 * both Media Storage UIDs and a data set, or an fs error (ENOENT...).
 */
export function readP10Header(path: string, what = 'file'): P10Header {
  const fd = openSync(path, 'r');
  try {
    const fileSize = fstatSync(fd).size;
    let size = Math.min(fileSize, 4096);
    for (;;) {
      const buf = Buffer.allocUnsafe(size);
      const n = readSync(fd, buf, 0, size, 0);
      let meta: FileMeta | 'need-more';
      try {
        meta = readFileMeta(buf.subarray(0, n), fileSize);
      } catch (e) {
        if (e instanceof DicomFormatError) throw new DicomFormatError(`${what}: ${e.message}`);
        throw e;
      }
      if (meta !== 'need-more') return checked(meta, what);
      if (n >= fileSize || size >= MAX_META) throw new DicomFormatError(`${what}: unreadable file meta information`);
      size = Math.min(fileSize, size * 4);
    }
  } finally {
    closeSync(fd);
  }
}

function checked(meta: FileMeta, what: string): P10Header {
  if (!meta.sopClassUid)
    throw new DicomFormatError(`${what}: file meta information has no MediaStorageSOPClassUID (0002,0002)`);
  if (!meta.sopInstanceUid) {
    throw new DicomFormatError(`${what}: file meta information has no MediaStorageSOPInstanceUID (0002,0003)`);
  }
  if (meta.dataSetOffset >= meta.fileSize) throw new DicomFormatError(`${what}: file meta information but no data set`);
  return meta;
}
