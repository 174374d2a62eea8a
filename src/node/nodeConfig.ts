// The node's configuration: embedded defaults (config/default.json), then a config file, then
// command-line flags. Relative paths are resolved against the working directory.
import { readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, describeSystemError } from '../errors.js';
import { destinationsFromConfig, type Destination } from '../forward/destination.js';
import { isValidAeTitle } from './receiver/associationPolicy.js';
import { parseAllowedAe } from './receiver/callingAes.js';
import { splitAttributeList } from '../core/leakGuard/index.js';
import { warnOnlyTags } from '../leakGuardSettings.js';
import type { MarkerNames } from '../io/projectMarker.js';

/** The DICOM TLS listener (config `tls`, flags `--tls-*`). */
export interface NodeTlsConfig {
  /** Its own port (0 = a free one, for tests). */
  port: number;
  /** Our certificate (PEM, with its chain) and its key (PEM, unencrypted); absolute paths. */
  cert: string;
  key: string;
  /** CA certificate(s) (PEM) client certificates must chain to; required with requireClientCert. */
  ca?: string;
  /** Only peers with a certificate that chains to `ca` may associate (default false). */
  requireClientCert: boolean;
  /** Listen on the TLS port only, not on the plain `port` (default false). */
  only: boolean;
}

/**
 * HTTPS for the HTTP side (config `httpTls`, flags `--http-tls*`): `true` in the config file takes
 * the DICOM TLS listener's certificate and key (sameAsDicomTls), `{ "cert", "key" }` its own.
 */
export interface NodeHttpTlsConfig {
  /** Certificate (PEM, with its chain) and its key (PEM, unencrypted); absolute paths. */
  cert: string;
  key: string;
  /** Whether these are tls.cert and tls.key (config `httpTls: true`). */
  sameAsDicomTls: boolean;
}

export interface NodeConfig {
  aeTitle: string;
  host: string;
  /** The plain DICOM port (not opened when tls.only). */
  port: number;
  /**
   * Calling AE titles allowed, each alone or bound to addresses: "CT1", "CT1@10.1.2.0/24",
   * "CT1@ct1.example.org" (src/node/receiver/callingAes.ts). Empty: any (see openAccess).
   */
  allowedAets: string[];
  /**
   * With an empty allowedAets and a host other machines can reach: 'warn' (default: accept any,
   * warn at start), 'reject' (reject every association), 'allow' (accept any, quietly).
   */
  openAccess: 'warn' | 'reject' | 'allow';
  /** The DICOM TLS listener, when configured. */
  tls?: NodeTlsConfig;
  csv: string;
  output: string;
  db: string;
  quarantine: string;
  spool: string;
  logDir: string;
  /** Forward destinations (config: "AET@host:port" strings or objects; flags: strings). */
  forward: Destination[];
  /**
   * Our calling AE title when forwarding, unless a destination has its own: the `callingAet`
   * setting, or else `aeTitle` (a PACS that knows the node knows it by that title).
   */
  callingAet: string;
  maxAssociations: number;
  /** Associations one peer address may hold at once (default: half of maxAssociations, rounded up). */
  maxAssociationsPerAddress?: number;
  /**
   * A message's deadline (a command and its data set), from its first byte to its last: this many
   * seconds, plus 1 s per minReceiveBytesPerSecond bytes received; a slower peer is cut off.
   */
  messageDeadlineSeconds: number;
  /** See messageDeadlineSeconds; 0 = the deadline does not grow with the bytes. */
  minReceiveBytesPerSecond: number;
  maxPduLength: number;
  maxInstanceMB: number;
  forwardGiveUpHours: number;
  /** Threads that de-identify and file (each with its own SQLite connection). */
  processingThreads: number;
  /**
   * Disk the spool journal may keep for reuse, in MiB (segments of 64 MiB; 0 = a file per
   * instance, slower to acknowledge). See spool/spoolJournal.ts.
   */
  spoolReserveMB: number;
  /** The HTTP side (status page, API, metrics): on by default. */
  httpEnabled: boolean;
  /** Where the HTTP side listens: 127.0.0.1 by default; another address needs an access token. */
  httpHost: string;
  /** HTTP port (0: any free port, logged). */
  httpPort: number;
  /**
   * The access token (a Bearer token) of the HTTP side, from `httpToken` or the file
   * `httpTokenFile` (read at start); '' when none. Needed for the identifying quarantine view and
   * for deleting, always; for every request when httpHost is not a loopback address.
   */
  httpToken: string;
  httpTokenFile?: string;
  /** HTTPS for the HTTP side, when configured (plain HTTP otherwise). */
  httpTls?: NodeHttpTlsConfig;
  /** Readiness needs this much free disk (MiB) for the spool and the output. */
  minFreeDiskMB: number;
  /** Console lines: 'text' (readable) or 'json' (one object per line). */
  logFormat: 'text' | 'json';
  /** The log file rotates at this size (MiB), keeping logMaxFiles files. */
  logMaxSizeMB: number;
  logMaxFiles: number;
  /**
   * File instances whose Burned In Annotation (0028,0301) is YES, for sites that clean pixels
   * elsewhere. Default false: they are quarantined (reason `burned-in`).
   */
  allowBurnedIn: boolean;
  /**
   * Attributes (PS3.6 keywords or tags) where a leak guard hit is only a warning in the audit
   * log; elsewhere a hit quarantines the instance (reason leak-guard). Default none.
   */
  leakGuardWarnOnly: string[];
}

/** Whether `host` is a loopback address (the HTTP side needs no token for reading there). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export const DEFAULT_CONFIG_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'config', 'default.json');

const STRINGS = [
  'aeTitle',
  'host',
  'csv',
  'output',
  'db',
  'quarantine',
  'spool',
  'logDir',
  'httpHost',
  'logFormat',
] as const;
/** Strings that may be left out (see NodeConfig for their defaults). */
const OPTIONAL_STRINGS = ['callingAet', 'httpToken', 'httpTokenFile'] as const;
const NUMBERS = [
  'port',
  'maxAssociations',
  'messageDeadlineSeconds',
  'minReceiveBytesPerSecond',
  'maxPduLength',
  'maxInstanceMB',
  'forwardGiveUpHours',
  'processingThreads',
  'spoolReserveMB',
  'httpPort',
  'minFreeDiskMB',
  'logMaxSizeMB',
  'logMaxFiles',
] as const;
/** Numbers that may be left out (see NodeConfig for their defaults). */
const OPTIONAL_NUMBERS = ['maxAssociationsPerAddress'] as const;

/**
 * What each number setting may hold: its flag, whole or not, its range (inclusive; `above`: the
 * lowest value is excluded). Checked before anything starts, so that a value that cannot work is a
 * ConfigError (exit 2: systemd does not restart it), never an error thrown later by the listener.
 */
interface NumberRule {
  flag: string;
  whole: boolean;
  min: number;
  /** min itself is not allowed (a number more than min). */
  above?: boolean;
  max?: number;
  /** Said after the range: its unit, or what 0 means. */
  note?: string;
}
const TCP_PORT = { whole: true, min: 0, max: 65535, note: 'a TCP port; 0 = any free one' } as const;
const NUMBER_RULES: Record<(typeof NUMBERS)[number] | (typeof OPTIONAL_NUMBERS)[number], NumberRule> = {
  port: { flag: '--port', ...TCP_PORT },
  maxAssociations: { flag: '--max-associations', whole: true, min: 1 },
  maxAssociationsPerAddress: { flag: '--max-associations-per-address', whole: true, min: 1 },
  messageDeadlineSeconds: { flag: '--message-deadline-seconds', whole: false, min: 0, above: true },
  minReceiveBytesPerSecond: { flag: '--min-receive-bytes-per-second', whole: true, min: 0 },
  // PS3.8 9.3.1: the Maximum Length Received is a 32-bit count; below 4096 no command set fits.
  maxPduLength: { flag: '--max-pdu-length', whole: true, min: 4096, max: 4294967295, note: 'bytes' },
  maxInstanceMB: { flag: '--max-instance-mb', whole: false, min: 0, above: true, note: 'MiB' },
  forwardGiveUpHours: { flag: '--forward-give-up-hours', whole: false, min: 0, above: true },
  processingThreads: { flag: '--processing-threads', whole: true, min: 1, max: 16 },
  spoolReserveMB: { flag: '--spool-reserve-mb', whole: true, min: 0, note: 'MiB' },
  httpPort: { flag: '--http-port', ...TCP_PORT },
  minFreeDiskMB: { flag: '--min-free-disk-mb', whole: false, min: 0, note: 'MiB' },
  logMaxSizeMB: { flag: '--log-max-size-mb', whole: false, min: 0, above: true, note: 'MiB' },
  logMaxFiles: { flag: '--log-max-files', whole: true, min: 1 },
};

/** The flags of the settings that are paths, and of the others a start error may name. */
const OTHER_FLAGS: Record<string, string> = {
  host: '--host',
  csv: '--csv',
  output: '--output',
  db: '--db',
  quarantine: '--quarantine',
  spool: '--spool',
  logDir: '--log-dir',
  httpTokenFile: '--http-token-file',
  'tls.port': '--tls-port',
};

/**
 * A setting as an error names it: its config key and its flag, "output, --output" (the key alone
 * when it has no flag).
 */
export function settingLabel(key: string): string {
  const flag = OTHER_FLAGS[key] ?? NUMBER_RULES[key as keyof typeof NUMBER_RULES]?.flag;
  return flag === undefined ? key : `${key}, ${flag}`;
}

/** What a rule allows, in words: "a whole number from 1 to 16", "a number more than 0 (MiB)". */
function ruleWords(r: NumberRule): string {
  const kind = r.whole ? 'a whole number' : 'a number';
  const range =
    r.max !== undefined ? ` from ${r.min} to ${r.max}` : r.above ? ` more than ${r.min}` : `, ${r.min} or more`;
  return `${kind}${range}${r.note ? ` (${r.note})` : ''}`;
}

/**
 * Checks a number setting against its rule; throws ConfigError naming the setting and its flag:
 * "maxAssociations (--max-associations) is 3.5: it must be a whole number, 1 or more".
 */
function checkNumber(key: string, v: unknown, r: NumberRule): void {
  const ok =
    typeof v === 'number' &&
    Number.isFinite(v) &&
    (!r.whole || Number.isSafeInteger(v)) &&
    (r.above ? v > r.min : v >= r.min) &&
    (r.max === undefined || v <= r.max);
  if (!ok) throw new ConfigError(`${key} (${r.flag}) is ${String(v)}: it must be ${ruleWords(r)}`);
}
const LISTS = ['allowedAets'] as const;
const BOOLEANS = ['allowBurnedIn', 'httpEnabled'] as const;
const OPEN_ACCESS = ['warn', 'reject', 'allow'] as const;
const TLS_KEYS = ['port', 'cert', 'key', 'ca', 'requireClientCert', 'only'] as const;
const HTTP_TLS_KEYS = ['cert', 'key'] as const;
const PATHS = ['csv', 'output', 'db', 'quarantine', 'spool', 'logDir'] as const;

function readJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`config file ${file}: ${describeSystemError(e)}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(`config file ${file}: ${(e as Error).message}`);
  }
}

function validAet(v: string, what: string): string {
  const t = v.trim();
  if (!isValidAeTitle(t)) {
    throw new ConfigError(`${what} "${v}" is not a valid AE title (1-16 printable ASCII characters, no backslash)`);
  }
  return t;
}

/** Merges `layer` into `base`, checking names and types; `where` names the source in errors. */
function merge(base: Partial<NodeConfig>, layer: Record<string, unknown>, where: string): Partial<NodeConfig> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(layer)) {
    if (v === undefined) continue;
    if ((STRINGS as readonly string[]).includes(k) || (OPTIONAL_STRINGS as readonly string[]).includes(k)) {
      if (typeof v !== 'string' || v.trim() === '')
        throw new ConfigError(`${where}: "${k}" must be a non-empty string`);
      out[k] = v;
    } else if ((NUMBERS as readonly string[]).includes(k) || (OPTIONAL_NUMBERS as readonly string[]).includes(k)) {
      // A number (or a string of one, from the environment); its range is checked once merged.
      const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isFinite(n)) {
        const rule = NUMBER_RULES[k as keyof typeof NUMBER_RULES];
        throw new ConfigError(`${where}: ${k} (${rule.flag}) must be ${ruleWords(rule)}`);
      }
      out[k] = n;
    } else if ((BOOLEANS as readonly string[]).includes(k)) {
      const b = v === 'true' ? true : v === 'false' ? false : v;
      if (typeof b !== 'boolean') throw new ConfigError(`${where}: "${k}" must be true or false`);
      out[k] = b;
    } else if ((LISTS as readonly string[]).includes(k)) {
      const list = typeof v === 'string' ? v.split(',') : v;
      if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) {
        throw new ConfigError(`${where}: "${k}" must be a list of strings`);
      }
      out[k] = list.map((x: string) => x.trim()).filter((x: string) => x !== '');
    } else if (k === 'leakGuardWarnOnly') {
      // Keywords or tags; a string (a flag) is split at commas, keeping a tag's own comma.
      const list = typeof v === 'string' ? splitAttributeList(v) : v;
      if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) {
        throw new ConfigError(`${where}: "${k}" must be a list of attribute keywords or tags`);
      }
      out[k] = list.flatMap((x: string) => splitAttributeList(x));
    } else if (k === 'forward') {
      // Strings ("AET@host:port", a comma-separated flag) or objects; checked in loadNodeConfig.
      const list = typeof v === 'string' ? v.split(',') : v;
      if (!Array.isArray(list)) throw new ConfigError(`${where}: "forward" must be a list of destinations`);
      out[k] = list.map((x: unknown) => (typeof x === 'string' ? x.trim() : x)).filter((x: unknown) => x !== '');
    } else if (k === 'openAccess') {
      if (!(OPEN_ACCESS as readonly unknown[]).includes(v)) {
        throw new ConfigError(`${where}: "openAccess" must be one of ${OPEN_ACCESS.map((x) => `"${x}"`).join(', ')}`);
      }
      out[k] = v;
    } else if (k === 'tls') {
      // An object merged key by key over the earlier layers' (flags set some keys only).
      if (!v || typeof v !== 'object' || Array.isArray(v)) {
        throw new ConfigError(`${where}: "tls" must be an object { port, cert, key, ca, requireClientCert, only }`);
      }
      const merged: Record<string, unknown> = { ...(out.tls as object | undefined) };
      for (const [tk, tv] of Object.entries(v as Record<string, unknown>)) {
        if (!(TLS_KEYS as readonly string[]).includes(tk)) {
          throw new ConfigError(`${where}: unknown TLS setting "tls.${tk}" (known: ${TLS_KEYS.join(', ')})`);
        }
        if (tv !== undefined) merged[tk] = tv;
      }
      out.tls = merged;
    } else if (k === 'httpTls') {
      // true/false (a flag or the file), or { cert, key } merged key by key over an earlier object.
      const b = v === 'true' ? true : v === 'false' ? false : v;
      if (typeof b === 'boolean') {
        out.httpTls = b as unknown as NodeHttpTlsConfig;
        continue;
      }
      if (!b || typeof b !== 'object' || Array.isArray(b)) {
        throw new ConfigError(
          `${where}: "httpTls" must be true (the DICOM TLS certificate and key) or an object { cert, key }`,
        );
      }
      const earlier = out.httpTls;
      const merged: Record<string, unknown> = { ...(earlier && typeof earlier === 'object' ? earlier : {}) };
      for (const [tk, tv] of Object.entries(b as Record<string, unknown>)) {
        if (!(HTTP_TLS_KEYS as readonly string[]).includes(tk)) {
          throw new ConfigError(`${where}: unknown setting "httpTls.${tk}" (known: ${HTTP_TLS_KEYS.join(', ')})`);
        }
        if (tv !== undefined) merged[tk] = tv;
      }
      out.httpTls = merged as unknown as NodeHttpTlsConfig;
    } else {
      throw new ConfigError(`${where}: unknown setting "${k}"`);
    }
  }
  return out as Partial<NodeConfig>;
}

/** The access token from httpToken or httpTokenFile ('' when neither is set); checks its length. */
function httpTokenOf(c: NodeConfig): string {
  let token = c.httpToken ?? '';
  if (c.httpTokenFile !== undefined) {
    if (token !== '') throw new ConfigError('set httpToken or httpTokenFile, not both');
    try {
      token = readFileSync(resolve(c.httpTokenFile), 'utf8').trim();
    } catch (e) {
      throw new ConfigError(`cannot read httpTokenFile ${c.httpTokenFile}: ${describeSystemError(e)}`);
    }
  }
  if (token !== '' && (token.length < 16 || /\s/.test(token))) {
    throw new ConfigError('the HTTP access token must be at least 16 characters, without spaces');
  }
  return token;
}

/** Loads and validates the node configuration. */
export function loadNodeConfig(configFile: string | undefined, flags: Record<string, unknown>): NodeConfig {
  let cfg = merge({}, readJson(DEFAULT_CONFIG_FILE), DEFAULT_CONFIG_FILE);
  if (configFile) cfg = merge(cfg, readJson(configFile), configFile);
  cfg = merge(cfg, flags, 'command line');
  const c = cfg as NodeConfig;
  for (const k of [...STRINGS, ...NUMBERS, ...LISTS, ...BOOLEANS, 'forward'] as const) {
    if (c[k] === undefined) throw new ConfigError(`missing setting "${k}"`);
  }
  for (const [k, rule] of Object.entries(NUMBER_RULES)) {
    const v = c[k as keyof typeof NUMBER_RULES];
    if (v !== undefined) checkNumber(k, v, rule);
  }
  if (c.logFormat !== 'text' && c.logFormat !== 'json') {
    throw new ConfigError(`logFormat "${String(c.logFormat)}" must be "text" or "json"`);
  }
  c.httpToken = httpTokenOf(c);
  if (c.httpEnabled && !isLoopbackHost(c.httpHost) && c.httpToken === '') {
    throw new ConfigError(
      `httpHost ${c.httpHost} is not a loopback address: set an access token (httpToken, or httpTokenFile naming a file that holds it, at least 16 characters) so that only its holders reach the node's HTTP side, or keep httpHost 127.0.0.1`,
    );
  }
  c.openAccess ??= 'warn';
  c.aeTitle = validAet(c.aeTitle, 'aeTitle');
  c.callingAet = c.callingAet === undefined ? c.aeTitle : validAet(c.callingAet, 'callingAet');
  c.allowedAets = c.allowedAets.map((a) => {
    try {
      parseAllowedAe(a);
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
    return a.trim();
  });
  if (c.tls !== undefined) c.tls = tlsConfig(c.tls as unknown as Record<string, unknown>, c.port);
  const httpTls = httpTlsConfig(c.httpTls as unknown, c.tls);
  if (httpTls) c.httpTls = httpTls;
  else delete c.httpTls;
  try {
    c.forward = destinationsFromConfig(c.forward as unknown[]);
  } catch (e) {
    throw new ConfigError(`forward: ${(e as Error).message}`);
  }
  c.leakGuardWarnOnly ??= [];
  warnOnlyTags(c.leakGuardWarnOnly, 'leakGuardWarnOnly', (m) => new ConfigError(m)); // names what is no attribute
  for (const k of PATHS) c[k] = resolve(c[k]);
  const out = resolve(c.output);
  for (const k of ['db', 'quarantine', 'spool', 'logDir', 'csv'] as const) {
    const p = resolve(c[k]);
    if (p === out || p.startsWith(out + '/')) {
      throw new ConfigError(`${k} (${p}) is inside the output tree (${out}): key material must live outside it`);
    }
  }
  // SQLite would put its journal and lock beside a device (/dev/null-journal) and then fail.
  let db: ReturnType<typeof statSync>;
  try {
    db = statSync(c.db, { throwIfNoEntry: false });
  } catch {
    db = undefined; // ENOTDIR: a file on the way; opening the state says so
  }
  if (db?.isDirectory()) throw new ConfigError(`db (${c.db}) is a folder: give the database's file name`);
  if (db !== undefined && !db.isFile()) {
    throw new ConfigError(`db (${c.db}) is a device or a pipe, not a file: give the database's file name`);
  }
  return c;
}

/**
 * The merged `httpTls` setting as paths: `true` takes the DICOM TLS listener's (so `tls` must be
 * set), an object its own cert and key; false or absent: none. Like `tls`, the files are read
 * when the node starts. Throws ConfigError.
 */
function httpTlsConfig(v: unknown, tls: NodeTlsConfig | undefined): NodeHttpTlsConfig | undefined {
  if (v === undefined || v === false) return undefined;
  if (v === true) {
    if (!tls) {
      throw new ConfigError(
        'httpTls true serves HTTPS with the DICOM TLS certificate and key, and tls is not set: set tls, or give httpTls { "cert", "key" } (flags --http-tls-cert, --http-tls-key)',
      );
    }
    return { cert: tls.cert, key: tls.key, sameAsDicomTls: true };
  }
  const t = v as Record<string, unknown>;
  for (const k of HTTP_TLS_KEYS) {
    if (t[k] === undefined) {
      throw new ConfigError(
        'httpTls needs cert and key (the PEM files of the HTTPS certificate and its private key), or true for the DICOM TLS ones',
      );
    }
    if (typeof t[k] !== 'string' || (t[k] as string).trim() === '') {
      throw new ConfigError(`httpTls.${k} must be a file path`);
    }
  }
  return { cert: resolve(t.cert as string), key: resolve(t.key as string), sameAsDicomTls: false };
}

/**
 * Checks the merged `tls` setting and resolves its paths (the files themselves are read when the
 * node starts, so that `queue` and `quarantine` work without them). Throws ConfigError.
 */
function tlsConfig(t: Record<string, unknown>, plainPort: number): NodeTlsConfig {
  const port = typeof t.port === 'string' ? Number(t.port) : t.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(
      `tls.port (--tls-port) is ${String(t.port ?? 'missing')}: it must be a whole number from 0 to 65535 (the DICOM TLS port, e.g. 2762)`,
    );
  }
  if (port !== 0 && port === plainPort) {
    throw new ConfigError(`tls.port ${port} is also the plain DICOM port: give TLS a port of its own`);
  }
  const path = (k: 'cert' | 'key' | 'ca'): string | undefined => {
    const v = t[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'string' || v.trim() === '') throw new ConfigError(`tls.${k} must be a file path`);
    return resolve(v);
  };
  const flag = (k: 'requireClientCert' | 'only'): boolean => {
    const v = t[k];
    if (v === undefined) return false;
    if (typeof v !== 'boolean') throw new ConfigError(`tls.${k} must be true or false`);
    return v;
  };
  const cert = path('cert');
  const key = path('key');
  if (!cert || !key)
    throw new ConfigError('tls needs cert and key: the PEM files of our certificate and its private key');
  const ca = path('ca');
  const requireClientCert = flag('requireClientCert');
  if (requireClientCert && !ca) {
    throw new ConfigError(
      'tls.requireClientCert needs tls.ca: the CA certificate(s) client certificates must chain to',
    );
  }
  return { port, cert, key, ...(ca ? { ca } : {}), requireClientCert, only: flag('only') };
}

/** How the node's output tree and state are named in a refusal (projectMarker.ts): by their settings. */
export function nodeMarkerNames(c: Pick<NodeConfig, 'output' | 'db'>): MarkerNames {
  return { output: { label: 'output', value: c.output }, db: { label: 'db', value: c.db } };
}
