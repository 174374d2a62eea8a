// `dicom-deid queue [retry]`: the forward queue's state, and putting dead items back.
import type { Argv, CommandModule } from 'yargs';
import { counts, ensureSchema, retryDead } from '../forward/forwardQueue.js';
import { StateDb } from '../state/stateDb.js';
import { nodeConfigFrom, withNodeOptions, type NodeArgs } from './nodeOptions.js';

interface QueueArgs extends NodeArgs {
  action?: 'retry';
  destination?: string;
}

const command: CommandModule<object, QueueArgs> = {
  command: 'queue [action]',
  describe: 'Show forward queue counts (pending / delivered / dead); "retry" puts dead items back',
  builder: (y: Argv) =>
    withNodeOptions(
      y
        .positional('action', { choices: ['retry'] as const, describe: 'retry: dead items become pending again' })
        .option('destination', { type: 'string', describe: 'Only this destination (AET@host:port) for retry' }),
    ) as unknown as Argv<QueueArgs>,
  handler: (args) => {
    const config = nodeConfigFrom(args);
    const state = StateDb.open(config.db);
    try {
      ensureSchema(state.db);
      if (args.action === 'retry') {
        const n = retryDead(state.db, args.destination);
        process.stdout.write(`${n} dead item(s) are pending again (a running node sends them on its next pass)\n`);
        return;
      }
      const rows = counts(state.db);
      if (rows.length === 0) {
        process.stdout.write('forward queue is empty\n');
        return;
      }
      for (const r of rows) {
        const oldest = r.oldestPendingAt ? `, oldest pending since ${new Date(r.oldestPendingAt).toISOString()}` : '';
        process.stdout.write(
          `${r.destination}: ${r.pending + r.inFlight} pending, ${r.delivered} delivered, ${r.dead} dead${oldest}\n`,
        );
      }
      const dead = state.db
        .prepare(
          `SELECT destination, last_error AS reason, COUNT(*) AS n FROM forward_queue WHERE state = 'dead'
           GROUP BY destination, last_error ORDER BY n DESC LIMIT 10`,
        )
        .all() as { destination: string; reason: string | null; n: number }[];
      for (const d of dead)
        process.stdout.write(`  dead at ${d.destination}: ${d.n} x ${d.reason ?? 'unknown reason'}\n`);
    } finally {
      state.close();
    }
  },
};

export default command;
