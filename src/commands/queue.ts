// `dicom-deid queue [retry|drop]`: the forward queue's state, putting dead items back, and dropping
// the items of a destination removed from the config (as POST /api/queue/drop, without the token).
import type { Argv, CommandModule } from 'yargs';
import { UsageError } from '../errors.js';
import type { NodeConfig } from '../node/nodeConfig.js';
import type { StateStore } from '../state/stateStore.js';
import { plural } from '../words.js';
import { nodeConfigFrom, openNodeState, withQueueOptions, type NodeArgs } from './nodeOptions.js';

type QueueArgs = NodeArgs & {
  action?: 'retry' | 'drop';
  destination?: string;
};

const command: CommandModule<object, QueueArgs> = {
  command: 'queue [action]',
  describe:
    'Show forward queue counts (pending / delivered / dead); "retry" puts dead items back; "drop --destination N" drops the items of a destination no longer configured',
  builder: (y: Argv) =>
    withQueueOptions(
      y
        .positional('action', {
          choices: ['retry', 'drop'] as const,
          describe: 'retry: dead items become pending again; drop: delete the items of a removed destination',
        })
        .option('destination', {
          type: 'string',
          describe:
            'Only this destination for retry; the one to drop (its name: AET@host:port for a string destination)',
        }),
    ) as unknown as Argv<QueueArgs>,
  handler: async (args) => {
    const config = nodeConfigFrom(args);
    const state = await openNodeState(config, args);
    try {
      if (args.action === 'drop') {
        if (args.destination === undefined || args.destination.trim() === '') {
          throw new UsageError('queue drop needs --destination NAME: the removed destination whose items to drop');
        }
        await checkDestination(args.destination, config, state);
        if (config.forward.some((d) => d.name === args.destination)) {
          throw new UsageError(
            `${args.destination} is configured: only the items of a destination removed from the config can be dropped`,
          );
        }
        const n = await state.dropForwards(args.destination);
        process.stdout.write(`${plural(n, 'item')} of ${args.destination} dropped (they will not be sent)\n`);
        return;
      }
      if (args.action === 'retry') {
        if (args.destination !== undefined) await checkDestination(args.destination, config, state);
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

/**
 * Refuses a --destination that names neither a destination of the config nor one with items in
 * the queue (a typo would "retry 0 items" and exit 0): a UsageError naming the known ones.
 */
async function checkDestination(name: string, config: NodeConfig, state: StateStore): Promise<void> {
  const known = new Set([
    ...config.forward.map((d) => d.name),
    ...(await state.forwardCounts()).map((r) => r.destination),
  ]);
  if (known.has(name)) return;
  throw new UsageError(
    known.size === 0
      ? `no destination "${name}": the node's config has no forward destinations and its queue is empty`
      : `no destination "${name}" in the node's config or its queue (known: ${[...known].sort().join(', ')})`,
  );
}

export default command;
