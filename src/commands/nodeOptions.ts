// Options shared by the commands that work on the node's state (serve, quarantine, queue):
// --config plus the flags that override the config file.
import type { Argv } from 'yargs';
import { loadNodeConfig, type NodeConfig } from '../node/nodeConfig.js';
import { ConfigError, UsageError } from '../errors.js';
import { openStateStore } from '../state/openStateStore.js';
import { StateNotFoundError, type StateStore } from '../state/stateStore.js';

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
  'open-access'?: string;
  'tls-port'?: number;
  'tls-cert'?: string;
  'tls-key'?: string;
  'tls-ca'?: string;
  'tls-require-client-cert'?: boolean;
  'tls-only'?: boolean;
  'leak-guard-warn-only'?: string[];
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
    .option('allowed-aets', {
      type: 'string',
      describe: 'Calling AE allow-list A,B; an entry may bind an address: CT@10.1.2.0/24 (empty = any)',
    })
    .option('open-access', {
      type: 'string',
      choices: ['warn', 'reject', 'allow'],
      describe: 'With an empty allow-list on a reachable interface: warn, reject all, or allow [default warn]',
    })
    .option('tls-port', { type: 'number', describe: 'DICOM TLS port (e.g. 2762); needs --tls-cert and --tls-key' })
    .option('tls-cert', { type: 'string', describe: 'Our TLS certificate (PEM, with its chain)' })
    .option('tls-key', { type: 'string', describe: 'Its private key (PEM, unencrypted)' })
    .option('tls-ca', { type: 'string', describe: 'CA certificate(s) client certificates must chain to (PEM)' })
    .option('tls-require-client-cert', {
      type: 'boolean',
      default: undefined,
      describe: 'Only peers with a certificate from --tls-ca may associate over TLS',
    })
    .option('tls-only', { type: 'boolean', default: undefined, describe: 'Listen on the TLS port only' })
    .option('forward', { type: 'string', array: true, describe: 'Forward to AET@host:port (repeatable)' })
    .option('calling-aet', {
      type: 'string',
      describe: "Our calling AE title when forwarding [default: the node's AE title]",
    })
    .option('leak-guard-warn-only', {
      type: 'string',
      array: true,
      describe:
        'Attributes (e.g. StudyDescription,0008,1030) where a leak guard hit only warns; elsewhere it quarantines the instance (config leakGuardWarnOnly)',
    }) as Argv<T & NodeArgs>;
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
      openAccess: a['open-access'],
      tls: tlsFlags(a),
      leakGuardWarnOnly: a['leak-guard-warn-only'],
    });
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
}

/** The --tls-* flags as a `tls` config layer, or undefined when none is given. */
function tlsFlags(a: NodeArgs): Record<string, unknown> | undefined {
  const t = {
    port: a['tls-port'],
    cert: a['tls-cert'],
    key: a['tls-key'],
    ca: a['tls-ca'],
    requireClientCert: a['tls-require-client-cert'],
    only: a['tls-only'],
  };
  return Object.values(t).some((v) => v !== undefined) ? t : undefined;
}

/**
 * The node's state, for the commands that manage a node (queue, quarantine): opened, never
 * created (a new state would have a new UID secret). Throws a UsageError (exit 2) naming where it
 * looked when there is none: most likely the command was not given the node's config.
 */
export async function openNodeState(config: NodeConfig, a: NodeArgs): Promise<StateStore> {
  try {
    return await openStateStore(config.db, { create: false });
  } catch (e) {
    if (!(e instanceof StateNotFoundError)) throw e;
    const from = a.db !== undefined ? '--db' : a.config !== undefined ? `--config ${a.config}` : 'the default config';
    throw new UsageError(
      `no node state at ${config.db} (from ${from}): pass --config with the node's config file, or --db with its state database`,
    );
  }
}
