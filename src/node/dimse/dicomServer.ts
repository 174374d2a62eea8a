// The node's receiver as one object, until DeidNode owns the spool and the listener itself: a
// DicomListener (src/node/receiver/) writing into a Spool (src/node/spool/), with the spool's
// recovery and preparation at start. Kept so that the node's code did not change with the split.
import type { Logger } from '../../log.js';
import { DicomListener, type ListenerOptions } from '../receiver/listener.js';
import { Spool } from '../spool/spool.js';
import { formatSpoolRef, type SpoolRef } from '../spool/spoolRef.js';
import type { SpoolJournal } from './spoolJournal.js';

export interface ReceivedInstance {
  /** The spooled instance's name (spoolRef.ts): a journal record or a Part 10 file of its own. */
  spoolPath: string;
  callingAet: string;
  calledAet: string;
  remoteAddress: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** Data set bytes received (the file meta we prepend is not counted). */
  byteLength: number;
}

/** Called once per received instance, after it is durably in the spool; returns the status to answer. */
export type StoreHandler = (inst: ReceivedInstance) => Promise<number>;

export type DicomServerOptions = Omit<ListenerOptions<SpoolRef>, 'sinks' | 'onStore'> & {
  spoolDir: string;
  /** The spool journal on `spoolDir`, kept open by its owner past stop(). */
  journal: SpoolJournal;
  logger: Logger;
  onStore: StoreHandler;
};

export class DicomServer {
  private readonly spool: Spool;
  private readonly listener: DicomListener<SpoolRef>;
  private readonly logger: Logger;

  constructor(options: DicomServerOptions) {
    const { spoolDir, journal, onStore, ...rest } = options;
    this.logger = options.logger;
    this.spool = new Spool(spoolDir, { reserveBytes: 0, journal: journal.journal });
    this.listener = new DicomListener({
      ...rest,
      sinks: this.spool,
      onStore: (inst) => onStore({ ...inst, spoolPath: formatSpoolRef(inst.ref) }),
    });
  }

  /** Makes the spool ready (once): see Spool.recover(). */
  async recoverSpool(): Promise<void> {
    const { journalRecords, filesRecovered, partialsDeleted } = await this.spool.recover();
    if (journalRecords > 0) {
      this.logger.info('spool journal: acknowledged instances left by a previous run', { count: journalRecords });
    }
    if (partialsDeleted > 0)
      this.logger.warn('deleted partial files left by a previous run', { count: partialsDeleted });
    if (filesRecovered > 0)
      this.logger.info('moved complete files left by a previous run to the spool', { count: filesRecovered });
  }

  async start(): Promise<{ port: number }> {
    await this.recoverSpool();
    const t0 = Date.now();
    const missing = this.spool.missingBytes();
    if (missing > 0) {
      this.logger.info('preparing the spool reserve before listening (once, on a new spool)', {
        mb: Math.round(missing / 1024 / 1024),
      });
    }
    const reserve = await this.spool.prepare();
    if (reserve.preparedBytes > 0) {
      this.logger.info('spool reserve prepared (once, on a new spool)', {
        mb: Math.round(reserve.preparedBytes / 1024 / 1024),
        ms: Date.now() - t0,
      });
    }
    if (reserve.error === 'LOWDISK') {
      this.logger.warn(
        'spool reserve left incomplete to keep disk space free (1/20 of the disk, 1-10 GiB); instances beyond it go to files',
      );
    } else if (reserve.error) {
      this.logger.warn('spool reserve incomplete: instances beyond it go to files', { code: reserve.error });
    }
    return this.listener.start();
  }

  async stop(): Promise<void> {
    await this.listener.stop();
    await this.spool.close();
  }
}
