// `dicom-deid queue [retry]`: the forward queue's state, and putting dead items back.
import type { Argv, CommandModule } from 'yargs';
import { plural } from '../words.js';
import { nodeConfigFrom, openNodeState, withNodeOptions, type NodeArgs } from './nodeOptions.js';

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
        .option('destination', {
          type: 'string',
          describe: 'Only this destination for retry (its name: AET@host:port for a string destination)',
        }),
    ) as unknown as Argv<QueueArgs>,
  handler: async (args) => {
    const config = nodeConfigFrom(args);
    const state = await openNodeState(config, args);
    try {
      if (args.action === 'retry') {
        const n = await state.retryDeadForwards(args.destination);
        process.stdout.write(
          `${plural(n, 'dead item is', 'dead items are')} pending again (a running node sends them on its next pass)\n`,
        );
        return;
      }
      const rows = await state.forwardCounts();
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
      for (const d of await state.deadForwardReasons(10))
        process.stdout.write(`  dead at ${d.destination}: ${d.count} x ${d.reason ?? 'unknown reason'}\n`);
    } finally {
      await state.close();
    }
  },
};

export default command;
