// `dicom-deid quarantine list|replay`: what the node could not file, and filing it after the
// mapping CSV was fixed. Output here shows identifiers (it is for the researcher holding the key).
import type { Argv, CommandModule } from 'yargs';
import { listQuarantine } from '../node/quarantine.js';
import { replayQuarantine } from '../node/quarantineReplay.js';
import { plural } from '../words.js';
import {
  checkNodeQuarantine,
  nodeConfigFrom,
  openNodeState,
  withQuarantineOptions,
  type NodeArgs,
} from './nodeOptions.js';

type QArgs = NodeArgs & {
  action: 'list' | 'replay';
};

const command: CommandModule<object, QArgs> = {
  command: 'quarantine <action>',
  describe: 'List quarantined instances grouped by study, or replay them after fixing the CSV',
  builder: (y: Argv) =>
    withQuarantineOptions(
      y.positional('action', { choices: ['list', 'replay'] as const, describe: 'list or replay', demandOption: true }),
    ) as unknown as Argv<QArgs>,
  handler: async (args) => {
    const config = nodeConfigFrom(args);
    // Only a node's own state and quarantine make sense here: say so when there is no state.
    await (await openNodeState(config, args)).close();
    checkNodeQuarantine(config, args);
    if (args.action === 'list') {
      const items = await listQuarantine(config.quarantine);
      if (items.length === 0) {
        process.stdout.write(`quarantine is empty (${config.quarantine})\n`);
        return;
      }
      const studies = new Map<string, typeof items>();
      for (const it of items) {
        const key = it.sidecar.keys.studyInstanceUid || it.sidecar.keys.accessionNumber || '(unknown study)';
        studies.set(key, [...(studies.get(key) ?? []), it]);
      }
      process.stdout.write(
        `${plural(items.length, 'instance')} in ${plural(studies.size, 'study', 'studies')} in ${config.quarantine}\n` +
          // The wording of check-csv's help and batch --dry-run's plan: this list is key material.
          `This list shows PatientID, Accession and StudyDate: it is for the researcher who holds the key, never to be shared.\n`,
      );
      for (const [study, list] of studies) {
        const k = list[0]!.sidecar.keys;
        const reasons = [...new Set(list.map((i) => i.sidecar.reason))].join(', ');
        process.stdout.write(
          `- study ${study}: ${plural(list.length, 'instance')}; PatientID "${k.patientId ?? ''}", Accession "${k.accessionNumber ?? ''}", ` +
            `StudyDate ${k.studyDate || '-'}; reason: ${reasons}; first received ${list[0]!.sidecar.receivedAt} from ${list[0]!.sidecar.callingAet}\n`,
        );
      }
      return;
    }
    const s = await replayQuarantine(config);
    process.stdout.write(
      `replay: ${plural(s.filed, 'instance')} filed, ${s.stillUnmatched} still held (left in quarantine; 'dicom-deid quarantine list' gives the reasons)` +
        (s.skipped ? `, ${s.skipped} unreadable (never replayed; delete them once looked at)` : '') +
        '\n',
    );
    process.exitCode = s.stillUnmatched > 0 ? 1 : 0;
  },
};

export default command;
