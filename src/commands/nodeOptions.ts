// Options shared by the commands that work on the node's state (serve, quarantine, queue):
// --config plus the flags that override the config file.
import type { Argv } from 'yargs';
import { loadNodeConfig, type NodeConfig } from '../node/nodeConfig.js';
import { ConfigError, UsageError } from '../errors.js';

export interface NodeArgs {
  config?: string;
  port?: number;
  host?: string;
  aet?: string;
  csv?: string;
  output?: string;
  db?: string;
  quarantine?: string;
  'log-dir'?: string;
  'allowed-aets'?: string;
  forward?: string[];
  'calling-aet'?: string;
}

export function withNodeOptions<T>(y: Argv<T>): Argv<T & NodeArgs> {
  return y
    .option('config', { type: 'string', describe: 'JSON config file (overrides config/default.json)' })
    .option('port', { type: 'number', describe: 'TCP port to listen on [default 11112]' })
    .option('host', { type: 'string', describe: 'Interface to bind [default 0.0.0.0]' })
    .option('aet', { type: 'string', describe: 'Our AE title [default DEID]' })
    .option('csv', { type: 'string', describe: 'Mapping CSV (reloaded when it changes)' })
    .option('output', { type: 'string', describe: 'Anonymized output tree' })
    .option('db', { type: 'string', describe: 'SQLite state (key material)' })
    .option('quarantine', { type: 'string', describe: 'Quarantine folder (key material)' })
    .option('log-dir', { type: 'string', describe: 'Logs and audit CSV (key material)' })
    .option('allowed-aets', { type: 'string', describe: 'Calling AE allow-list A,B (empty = any)' })
    .option('forward', { type: 'string', array: true, describe: 'Forward to AET@host:port (repeatable)' })
    .option('calling-aet', { type: 'string', describe: 'Our calling AE title when forwarding' }) as Argv<T & NodeArgs>;
}

export function nodeConfigFrom(a: NodeArgs): NodeConfig {
  try {
    return loadNodeConfig(a.config, {
      port: a.port,
      host: a.host,
      aeTitle: a.aet,
      csv: a.csv,
      output: a.output,
      db: a.db,
      quarantine: a.quarantine,
      logDir: a['log-dir'],
      allowedAets: a['allowed-aets'],
      forward: a.forward,
      callingAet: a['calling-aet'],
    });
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
}
