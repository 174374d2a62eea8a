// Public API of the forwarding subsystem (see each module for details).
export { parseDestination, formatDestination, validateAeTitle, DestinationError, type Destination } from './destination.js';
export {
  ensureSchema,
  enqueue,
  claimDue,
  markDelivered,
  markRetry,
  markDead,
  counts,
  retryDead,
  recoverInFlight,
  nextDueAt,
  getItem,
  listItems,
  type QueueItem,
  type QueueState,
  type DestinationCounts,
} from './forwardQueue.js';
export { Forwarder, type ForwarderOptions, type ForwardLogger } from './forwarder.js';
export {
  sendFiles,
  classifyStoreStatus,
  isDelivered,
  RawP10Dataset,
  type StoreOutcome,
  type FileOutcome,
  type SendReport,
  type StoreScuOptions,
} from './storeScu.js';
