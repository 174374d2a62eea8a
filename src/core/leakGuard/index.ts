// The leak guard: every output checked against its source's identifiers before it is written or
// sent (scanOutput.ts). Pure: no I/O.
export {
  scanOutput,
  describeLeakHits,
  NOTES_WHERE,
  type LeakAction,
  type LeakHit,
  type LeakScanInput,
  type Sidecar,
  type SuppliedValues,
} from './scanOutput.js';
export {
  formatAttributePath,
  parseAttributeList,
  pathHasTag,
  splitAttributeList,
  type PathStep,
} from './attributePath.js';
