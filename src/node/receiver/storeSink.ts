// What the receiver needs from whoever keeps the instances it receives: a sink per C-STORE
// (write, finish, discard) that hands back a durable reference, and a store handler that takes
// the instance on once it is durable. The node passes both in (its spool, src/node/spool/); the
// receiver never knows where or how the bytes are kept. In the spirit of dcmjs-dimse's
// `Scp.createStoreWritableStream` and pynetdicom's EVT_C_STORE handler, but durable: the receiver
// answers Success only after finish() resolved and the handler accepted the instance.
//
// `R` is the sink's durable reference (the node's SpoolRef); the receiver only passes it on.

/** The association an instance arrives on (log-safe: AE titles and an address, no identifier). */
export interface AssociationInfo {
  callingAet: string;
  calledAet: string;
  remoteAddress: string;
}

/** What the receiver knows of one C-STORE when its data set starts to arrive. */
export interface IncomingInstance extends AssociationInfo {
  /** Affected SOP Class and Instance UIDs of the C-STORE-RQ (PS3.7 9.1.1), checked valid. */
  sopClassUid: string;
  sopInstanceUid: string;
  /** Transfer syntax of the accepted presentation context: the data set is in it, as received. */
  transferSyntaxUid: string;
}

/** Where the data set of one C-STORE goes. */
export interface StoreSink<R> {
  /**
   * Takes one data set fragment, in order. `fragment` is a view into a PDU that the receiver
   * reuses after the call: consume it before returning. Never throws: a failure is kept and
   * reported by finish().
   */
  write(fragment: Buffer): void;
  /**
   * The last fragment was written: makes the instance durable and resolves with its reference.
   * Rejects (after cleaning up) when it could not; the receiver then answers 0xA700.
   */
  finish(): Promise<R>;
  /**
   * Abandons the instance: a partial one (the association ended mid-instance), or a finished one
   * whose answer can no longer be delivered (its sender will send it again). Idempotent, never
   * rejects.
   */
  discard(): Promise<void>;
}

/** The sinks of one association: opened when it is accepted, closed when it ends. */
export interface AssociationSinks<R> {
  /** A sink for one instance. May throw (then the store is answered 0xA700). */
  open(instance: IncomingInstance): StoreSink<R>;
  /** The association ended: no sink will be opened any more; those finishing may still settle. */
  close(): void;
}

/** Passed in by the node: gives each accepted association its sinks. */
export interface StoreSinkFactory<R> {
  forAssociation(association: AssociationInfo): AssociationSinks<R>;
}

/** An instance made durable by its sink, handed to the store handler before it is answered. */
export interface ReceivedInstance<R> extends IncomingInstance {
  /** The sink's durable reference (for the node: where the spool keeps the instance). */
  ref: R;
  /** Data set bytes received (anything the sink writes before them is not counted). */
  byteLength: number;
}

/**
 * Called once per received instance, after it is durable; returns the DIMSE status to answer
 * (0x0000 success, 0xB000 coercion warning, 0xA700 out of resources, 0xC000 cannot understand...).
 * The handler owns the instance from then on (also when it fails). If it throws, 0xA700 is
 * answered (0xC000 for a DicomFormatError) and the error name is logged.
 */
export type StoreHandler<R> = (instance: ReceivedInstance<R>) => Promise<number>;
