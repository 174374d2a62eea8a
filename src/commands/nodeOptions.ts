// Options of the commands that work on the node's configuration and state: `serve` takes every
// setting of the config file as a flag (SETTINGS); `queue` and `quarantine` take only what they
// use (--config, and the paths they read). Flags override the config file.
import { statSync } from 'node:fs';
import type { Argv, Options } from 'yargs';
import { loadNodeConfig, type NodeConfig } from '../node/nodeConfig.js';
import { ConfigError, UsageError } from '../errors.js';
import { openStateStore } from '../state/openStateStore.js';
import { StateNotFoundError, type StateStore } from '../state/stateStore.js';

/** Parsed flags: by flag name (kebab-case), plus yargs' own. */
export type NodeArgs = { config?: string } & Record<string, unknown>;

/** One setting of the config file: its key, its flag, its yargs option. Defaults: config/default.json. */
interface Setting {
  key: keyof NodeConfig;
  flag: string;
  option: Options;
}

const s = (key: keyof NodeConfig, flag: string, type: 'string' | 'number' | 'boolean', describe: string): Setting => ({
  key,
  flag,
  option: { type, describe: `${describe} (config "${key}")` },
});

/** Every setting the config file takes, in the order `serve --help` lists them. */
const SETTINGS: Setting[] = [
  s('aeTitle', 'aet', 'string', 'Our AE title [default DEID]'),
  s('host', 'host', 'string', 'Interface the DICOM port binds [default 0.0.0.0]'),
  s('port', 'port', 'number', 'DICOM port [default 11112]'),
  s(
    'allowedAets',
    'allowed-aets',
    'string',
    'Calling AE allow-list A,B; an entry may bind an address: CT@10.1.2.0/24 [default: any]',
  ),
  {
    key: 'openAccess',
    flag: 'open-access',
    option: {
      type: 'string',
      choices: ['warn', 'reject', 'allow'],
      describe:
        'With an empty allow-list on a reachable interface: warn, reject all, or allow [warn] (config "openAccess")',
    },
  },
  s('csv', 'csv', 'string', 'Mapping CSV, reloaded when it changes'),
  s('output', 'output', 'string', 'Anonymized output tree'),
  s('db', 'db', 'string', 'SQLite state (key material)'),
  s('quarantine', 'quarantine', 'string', 'Quarantine folder (key material)'),
  s('spool', 'spool', 'string', 'Spool folder: acknowledged, not yet filed (key material)'),
  s('logDir', 'log-dir', 'string', 'Logs and audit CSV (key material)'),
  {
    key: 'forward',
    flag: 'forward',
    option: { type: 'string', array: true, describe: 'Forward to AET@host:port, repeatable (config "forward")' },
  },
  s('callingAet', 'calling-aet', 'string', "Our calling AE title when forwarding [default: the node's AE title]"),
  s(
    'forwardGiveUpHours',
    'forward-give-up-hours',
    'number',
    'A failing forward item goes dead after this many hours [24]',
  ),
  s('maxAssociations', 'max-associations', 'number', 'Concurrent associations [8]'),
  s(
    'maxAssociationsPerAddress',
    'max-associations-per-address',
    'number',
    'Concurrent associations from one address [half of maxAssociations]',
  ),
  s(
    'messageDeadlineSeconds',
    'message-deadline-seconds',
    'number',
    'A message must arrive within this many seconds, plus 1 s per minReceiveBytesPerSecond bytes [30]',
  ),
  s('minReceiveBytesPerSecond', 'min-receive-bytes-per-second', 'number', 'See messageDeadlineSeconds [16384]'),
  s('maxPduLength', 'max-pdu-length', 'number', 'Largest PDU we accept, bytes [262144]'),
  s('maxInstanceMB', 'max-instance-mb', 'number', 'Largest instance we accept, MiB [2048]'),
  s('processingThreads', 'processing-threads', 'number', 'Threads that de-identify and file, 1-16 [2]'),
  s(
    'spoolReserveMB',
    'spool-reserve-mb',
    'number',
    'Disk the spool journal keeps for reuse, MiB; 0 = a file per instance [1024]',
  ),
  s(
    'allowBurnedIn',
    'allow-burned-in',
    'boolean',
    'File instances with Burned In Annotation YES, not quarantine them [false]',
  ),
  {
    key: 'leakGuardWarnOnly',
    flag: 'leak-guard-warn-only',
    option: {
      type: 'string',
      array: true,
      describe:
        'Attributes (e.g. StudyDescription,0008,1030) where a leak guard hit only warns; elsewhere it quarantines the instance (config "leakGuardWarnOnly")',
    },
  },
  s('httpEnabled', 'http', 'boolean', 'Serve the status page, API and metrics; --no-http turns them off [true]'),
  s('httpHost', 'http-host', 'string', 'Interface of the HTTP side; not loopback needs a token [127.0.0.1]'),
  s('httpPort', 'http-port', 'number', 'HTTP port [11180]'),
  s('httpTokenFile', 'http-token-file', 'string', 'File holding the HTTP access token (or config "httpToken")'),
  s(
    'httpTls',
    'http-tls',
    'boolean',
    'Serve the HTTP side over HTTPS with the DICOM TLS certificate and key (--tls-cert, --tls-key), or with --http-tls-cert and --http-tls-key [false]',
  ),
  s('minFreeDiskMB', 'min-free-disk-mb', 'number', '/readyz needs this much free disk for spool and output, MiB [100]'),
  s('logFormat', 'log-format', 'string', 'Console lines: text or json (one object per line) [text]'),
  s('logMaxSizeMB', 'log-max-size-mb', 'number', 'The log file rotates at this size, MiB [50]'),
  s('logMaxFiles', 'log-max-files', 'number', 'Rotated log files kept [10]'),
];

function withSettings<T>(y: Argv<T>, keys: readonly (keyof NodeConfig)[] | 'all'): Argv<T & NodeArgs> {
  let out = y.option('config', {
    type: 'string',
    describe: "The node's JSON config file (its settings override config/default.json)",
  }) as Argv<T & NodeArgs>;
  for (const st of SETTINGS) {
    if (keys === 'all' || keys.includes(st.key)) out = out.option(st.flag, st.option) as unknown as Argv<T & NodeArgs>;
  }
  if (keys === 'all' || keys.includes('tls')) {
    for (const [flag, option] of TLS_FLAGS) out = out.option(flag, option) as unknown as Argv<T & NodeArgs>;
  }
  if (keys === 'all' || keys.includes('httpTls')) {
    for (const [flag, option] of HTTP_TLS_FLAGS) out = out.option(flag, option) as unknown as Argv<T & NodeArgs>;
  }
  return out;
}

/** The DICOM TLS listener's flags: together they make the config's "tls" object. */
const TLS_FLAGS: [string, Options][] = [
  [
    'tls-port',
    { type: 'number', describe: 'DICOM TLS port (e.g. 2762); needs --tls-cert and --tls-key (config "tls")' },
  ],
  ['tls-cert', { type: 'string', describe: 'Our TLS certificate (PEM, with its chain)' }],
  ['tls-key', { type: 'string', describe: 'Its private key (PEM, unencrypted)' }],
  ['tls-ca', { type: 'string', describe: 'CA certificate(s) client certificates must chain to (PEM)' }],
  [
    'tls-require-client-cert',
    {
      type: 'boolean',
      default: undefined,
      describe: 'Only peers with a certificate from --tls-ca may associate over TLS',
    },
  ],
  ['tls-only', { type: 'boolean', default: undefined, describe: 'Listen on the TLS port only' }],
];

/** HTTPS with a certificate of its own: together they make the config's "httpTls" object. */
const HTTP_TLS_FLAGS: [string, Options][] = [
  [
    'http-tls-cert',
    { type: 'string', describe: 'HTTPS certificate of its own (PEM, with its chain) (config "httpTls")' },
  ],
  ['http-tls-key', { type: 'string', describe: 'Its private key (PEM, unencrypted)' }],
];

/** `serve`: --config and a flag for every setting of the config file. */
export function withServeOptions<T>(y: Argv<T>): Argv<T & NodeArgs> {
  return withSettings(y, 'all');
}

/** `queue`: --config and --db. */
export function withQueueOptions<T>(y: Argv<T>): Argv<T & NodeArgs> {
  return withSettings(y, ['db']);
}

/** `quarantine`: --config and the paths a replay reads and writes. */
export function withQuarantineOptions<T>(y: Argv<T>): Argv<T & NodeArgs> {
  return withSettings(y, ['db', 'quarantine', 'csv', 'output', 'logDir']);
}

/** The node's configuration from --config and the flags given (those not given are absent from `a`). */
export function nodeConfigFrom(a: NodeArgs): NodeConfig {
  const flags: Record<string, unknown> = {};
  for (const st of SETTINGS) if (a[st.flag] !== undefined) flags[st.key] = a[st.flag];
  try {
    const tls = tlsFlags(a);
    if (tls !== undefined) flags.tls = { ...tls };
    // A certificate of its own wins over --http-tls (which only says "the DICOM TLS one").
    if (a['http-tls-cert'] !== undefined || a['http-tls-key'] !== undefined) {
      flags.httpTls = { cert: a['http-tls-cert'], key: a['http-tls-key'] };
    }
    return loadNodeConfig(a.config, flags);
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
    const from = settingSource(a, 'db');
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('SQLITE_')) {
      // Not a state database (a CSV given as --db, a damaged file): a usage error, exit 2.
      const why = (e as Error).message.replace(/^state database .*?: /, '');
      throw new UsageError(`${config.db} (from ${from}) is not the node's state database: ${why}`);
    }
    if (!(e instanceof StateNotFoundError)) throw e;
    throw new UsageError(
      `no node state at ${config.db} (from ${from}): pass --config with the node's config file, or --db with its state database`,
    );
  }
}

/** Where a path setting came from, for a message: its flag, the --config file, or the default config. */
function settingSource(a: NodeArgs, flag: string): string {
  return a[flag] !== undefined ? `--${flag}` : a.config !== undefined ? `--config ${a.config}` : 'the default config';
}

/**
 * Checks that the node's quarantine folder exists, for `quarantine list|replay`: a path that is not
 * there is most likely not the node's (the node makes it at start), so it is a UsageError (exit 2)
 * saying where it looked and what to pass, like openNodeState, rather than "quarantine is empty".
 */
export function checkNodeQuarantine(config: NodeConfig, a: NodeArgs): void {
  const st = statSync(config.quarantine, { throwIfNoEntry: false });
  if (st?.isDirectory()) return;
  const what = st === undefined ? 'no quarantine at' : 'not a folder: the quarantine';
  throw new UsageError(
    `${what} ${config.quarantine} (from ${settingSource(a, 'quarantine')}): pass --config with the node's config file, or --quarantine with its quarantine folder`,
  );
}
