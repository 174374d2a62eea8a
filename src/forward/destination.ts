// Forward destinations: records (name, AE title, host, port, per-destination settings), from the
// string form "AET@host:port" or a config object.
import { resolve } from 'node:path';
import { isValidUid } from '../core/dicom/uid.js';

/**
 * DICOM TLS towards a destination (PS3.15 B.10, BCP 195; src/dimse/scu/tlsSocketFactory.ts). The
 * peer's certificate is verified (chain and name) unless `verify` is false. Paths are absolute
 * (config paths are resolved against the working directory); the files are read for each
 * association, so a replaced certificate is used from the next one.
 */
export interface DestinationTls {
  /** PEM file of the CA(s) the peer's certificate must chain to (default: Node's public CAs). */
  caFile?: string;
  /** Our client certificate and key (PEM), when the peer requires one. */
  certFile?: string;
  keyFile?: string;
  /** Name to check the peer's certificate against (default: host). */
  serverName?: string;
  /** false: do not verify the peer's certificate (tests only; the node warns at start). Default true. */
  verify?: boolean;
}

/** A DICOM peer we forward to. */
export interface Destination {
  /**
   * Stable name: the forward queue's key, and how logs, `queue` and status name the destination.
   * For the string form it is the normalized string ("AET@host:port"), as queue rows have always
   * been keyed.
   */
  name: string;
  /** Called AE title of the peer (1..16 chars, no backslash, not all spaces). */
  aeTitle: string;
  /** Hostname, IPv4 address, or IPv6 address (without brackets). */
  host: string;
  /** TCP port, 1..65535. */
  port: number;
  /** Our calling AE title towards this peer; default: the node's (callingAet, else aeTitle). */
  callingAeTitle?: string;
  /**
   * The transfer syntaxes this peer is to receive, best first (issue 14): a file goes in the first
   * of them the peer accepts that is its stored syntax or one it converts to (explicit or implicit
   * VR little endian), and in nothing else. Unset: the stored syntax first, then the conversions
   * (see forward/syntaxChoice.ts).
   */
  transferSyntaxes?: string[];
  /** DICOM TLS: connect over TLS with these settings (absent: plain TCP). */
  tls?: DestinationTls;
}

/** Thrown for a destination string that does not parse; message is one clear line. */
export class DestinationError extends Error {
  override name = 'DestinationError';
}

const AE_TITLE_RE = /^[\x20-\x5b\x5d-\x7e]{1,16}$/; // printable ASCII except backslash
const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
const IPV6_RE = /^[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?$/;

/** Validates an AE title; returns it trimmed or throws DestinationError. */
export function validateAeTitle(aeTitle: string, what = 'AE title'): string {
  const t = aeTitle.trim();
  if (t.length === 0) throw new DestinationError(`${what} is empty`);
  if (!AE_TITLE_RE.test(t)) {
    throw new DestinationError(`${what} "${aeTitle}" is invalid: 1-16 printable ASCII characters, no backslash`);
  }
  return t;
}

/**
 * Parses "AET@host:port" (IPv6 hosts in brackets: "AET@[::1]:104").
 * Throws DestinationError with a one-line message naming what is wrong.
 */
export function parseDestination(input: string): Destination {
  const s = input.trim();
  const at = s.lastIndexOf('@');
  if (at < 0) {
    throw new DestinationError(`destination "${input}" must look like AET@host:port (missing "@")`);
  }
  const aeTitle = validateAeTitle(s.slice(0, at), `AE title in destination "${input}"`);
  const hostPort = s.slice(at + 1);
  let host: string;
  let portText: string;
  if (hostPort.startsWith('[')) {
    const close = hostPort.indexOf(']');
    if (close < 0 || hostPort[close + 1] !== ':') {
      throw new DestinationError(`destination "${input}" must look like AET@[ipv6]:port`);
    }
    host = hostPort.slice(1, close);
    portText = hostPort.slice(close + 2);
    if (!host || !IPV6_RE.test(host)) {
      throw new DestinationError(`host "${host}" in destination "${input}" is not a valid IPv6 address`);
    }
  } else {
    const colon = hostPort.lastIndexOf(':');
    if (colon < 0) {
      throw new DestinationError(`destination "${input}" must look like AET@host:port (missing ":port")`);
    }
    host = hostPort.slice(0, colon);
    portText = hostPort.slice(colon + 1);
    if (!host) throw new DestinationError(`destination "${input}" has an empty host`);
    if (!HOSTNAME_RE.test(host)) {
      throw new DestinationError(`host "${host}" in destination "${input}" is not a valid hostname or IPv4 address`);
    }
  }
  if (!/^[0-9]{1,5}$/.test(portText)) {
    throw new DestinationError(`port "${portText}" in destination "${input}" must be a number 1-65535`);
  }
  const port = Number(portText);
  if (port < 1 || port > 65535) {
    throw new DestinationError(`port ${port} in destination "${input}" is out of range 1-65535`);
  }
  const address = { aeTitle, host, port };
  return { name: formatDestination(address), ...address };
}

/** Formats a destination's address as "AET@host:port" (IPv6 hosts in brackets). */
export function formatDestination(d: Pick<Destination, 'aeTitle' | 'host' | 'port'>): string {
  const host = d.host.includes(':') ? `[${d.host}]` : d.host;
  return `${d.aeTitle}@${host}:${d.port}`;
}

/**
 * How messages name a destination: its name, with the address when the name is not the address,
 * and ", TLS" when it is reached over TLS: `trial (TRIAL@pacs.example.org:2762, TLS)`.
 */
export function destinationLabel(d: Destination): string {
  const address = formatDestination(d);
  const tls = d.tls ? ', TLS' : '';
  return d.name === address ? address : `${d.name} (${address}${tls})`;
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@:[\]-]{0,63}$/;
const OBJECT_KEYS = ['name', 'aeTitle', 'host', 'port', 'callingAeTitle', 'transferSyntaxes', 'tls'];

/**
 * A destination from the config's `forward` list: the string form "AET@host:port" (named by
 * itself, see parseDestination) or an object `{ name, aeTitle, host, port, callingAeTitle?,
 * transferSyntaxes?, tls? }` (`tls`: see destinationTlsFromConfig); `transferSyntaxes` must be a
 * non-empty list of UIDs (see Destination.transferSyntaxes). Throws DestinationError (one line).
 */
export function destinationFromConfig(value: unknown): Destination {
  if (typeof value === 'string') return parseDestination(value);
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new DestinationError('a destination must be "AET@host:port" or an object { name, aeTitle, host, port }');
  }
  const o = value as Record<string, unknown>;
  const name = typeof o.name === 'string' ? o.name.trim() : '';
  const what = name ? `destination "${name}"` : 'a destination object';
  for (const k of Object.keys(o)) {
    if (!OBJECT_KEYS.includes(k)) {
      throw new DestinationError(`${what}: unknown setting "${k}" (known: ${OBJECT_KEYS.join(', ')})`);
    }
  }
  if (!NAME_RE.test(name)) {
    throw new DestinationError(
      `${what}: "name" must be 1-64 letters, digits and . _ - @ : [ ] (it keys the forward queue)`,
    );
  }
  const text = (k: string): string => {
    if (typeof o[k] !== 'string') throw new DestinationError(`${what}: "${k}" must be a string`);
    return o[k];
  };
  const aeTitle = validateAeTitle(text('aeTitle'), `${what}: aeTitle`);
  const host = text('host').trim();
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (!HOSTNAME_RE.test(bare) && !(bare.includes(':') && IPV6_RE.test(bare))) {
    throw new DestinationError(`${what}: host "${host}" is not a valid hostname, IPv4 or IPv6 address`);
  }
  if (typeof o.port !== 'number' || !Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
    throw new DestinationError(`${what}: "port" must be a whole number 1-65535`);
  }
  const d: Destination = { name, aeTitle, host: bare, port: o.port };
  if (o.callingAeTitle !== undefined)
    d.callingAeTitle = validateAeTitle(text('callingAeTitle'), `${what}: callingAeTitle`);
  if (o.transferSyntaxes !== undefined) {
    const list = o.transferSyntaxes;
    if (!Array.isArray(list) || list.length === 0 || list.some((u) => typeof u !== 'string' || !isValidUid(u))) {
      throw new DestinationError(`${what}: "transferSyntaxes" must be a non-empty list of transfer syntax UIDs`);
    }
    d.transferSyntaxes = list as string[];
  }
  if (o.tls !== undefined && o.tls !== false) d.tls = destinationTlsFromConfig(o.tls, what);
  return d;
}

const TLS_KEYS = ['caFile', 'certFile', 'keyFile', 'serverName', 'verify'];

/**
 * A destination's `tls` setting: `true` (TLS, verified against Node's public CAs) or an object
 * with TLS_KEYS. File paths are resolved against the working directory (the files are checked
 * when the node starts, see checkDestinationTls). Throws DestinationError (one line).
 */
function destinationTlsFromConfig(value: unknown, what: string): DestinationTls {
  if (value === true) return {};
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new DestinationError(`${what}: "tls" must be true or an object { caFile, certFile, keyFile, serverName }`);
  }
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!TLS_KEYS.includes(k)) {
      throw new DestinationError(`${what}: unknown TLS setting "${k}" (known: ${TLS_KEYS.join(', ')})`);
    }
  }
  const t: DestinationTls = {};
  for (const k of ['caFile', 'certFile', 'keyFile'] as const) {
    if (o[k] === undefined) continue;
    if (typeof o[k] !== 'string' || o[k].trim() === '')
      throw new DestinationError(`${what}: "tls.${k}" must be a file path`);
    t[k] = resolve(o[k]);
  }
  if ((t.certFile === undefined) !== (t.keyFile === undefined)) {
    throw new DestinationError(
      `${what}: "tls.certFile" and "tls.keyFile" go together (our client certificate and its key)`,
    );
  }
  if (o.serverName !== undefined) {
    if (typeof o.serverName !== 'string' || !HOSTNAME_RE.test(o.serverName)) {
      throw new DestinationError(`${what}: "tls.serverName" must be a host name`);
    }
    t.serverName = o.serverName;
  }
  if (o.verify !== undefined) {
    if (typeof o.verify !== 'boolean') throw new DestinationError(`${what}: "tls.verify" must be true or false`);
    if (!o.verify) t.verify = false;
  }
  return t;
}

/**
 * The config's `forward` list as destinations: each item by destinationFromConfig; a repeated
 * item counts once, two different ones with one name are an error. Throws DestinationError.
 */
export function destinationsFromConfig(list: readonly unknown[]): Destination[] {
  const byName = new Map<string, Destination>();
  for (const item of list) {
    const d = destinationFromConfig(item);
    const earlier = byName.get(d.name);
    if (!earlier) byName.set(d.name, d);
    else if (JSON.stringify(earlier) !== JSON.stringify(d)) {
      throw new DestinationError(`two different forward destinations are named "${d.name}"`);
    } // the same destination twice: once is enough
  }
  return [...byName.values()];
}
