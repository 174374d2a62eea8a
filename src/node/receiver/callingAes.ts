// Who may associate: the `allowedAets` list, whose entries are calling AE titles, each alone (from
// any address) or bound to where it may call from, as Orthanc's known modalities and dcm4chee's
// AE configurations bind an AE title to a host:
//
//   MODALITY                 any address
//   MODALITY@10.1.2.3        one IPv4 address          MODALITY@[fd00::7] or MODALITY@fd00::7
//   MODALITY@10.1.2.0/24     an IPv4 network           MODALITY@fd00:1::/64
//   MODALITY@ct1.example.org the addresses the name resolves to, when the listener starts and on
//                            SIGHUP (a name that does not resolve then is an error)
//
// An AE title may be listed several times (its addresses add up); one listed alone allows any
// address. An AE title cannot itself contain "@" here. Addresses are compared as the peer's
// socket shows them, IPv4-mapped IPv6 addresses (::ffff:10.1.2.3) as IPv4.
import { promises as dns } from 'node:dns';
import net from 'node:net';
import { describeSystemError } from '../../errors.js';
import { isValidAeTitle, normalizeAet } from './associationPolicy.js';

/** Where an entry allows its AE title to call from. */
export type AllowedFrom =
  | { kind: 'any' }
  | { kind: 'network'; address: string; prefix: number; family: 'ipv4' | 'ipv6' }
  | { kind: 'host'; name: string };

export interface AllowedAeEntry {
  aeTitle: string;
  from: AllowedFrom;
}

/** The verdict on a calling AE title from an address. */
export type CallingAeVerdict = 'allowed' | 'unknownAeTitle' | 'unexpectedAddress';

const HOSTNAME_RE =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/**
 * Parses one `allowedAets` entry (see the header). Throws RangeError with a one-line message
 * quoting the entry: an invalid AE title, address, prefix length or host name.
 */
export function parseAllowedAe(entry: string): AllowedAeEntry {
  const text = entry.trim();
  const at = text.indexOf('@');
  const aeTitle = normalizeAet(at < 0 ? text : text.slice(0, at));
  if (!isValidAeTitle(aeTitle)) {
    throw new RangeError(
      `allowed AE "${entry}": "${aeTitle}" is not a valid AE title (1-16 printable ASCII characters, no backslash)`,
    );
  }
  if (at < 0) return { aeTitle, from: { kind: 'any' } };
  let where = text.slice(at + 1);
  let prefixText: string | undefined;
  const slash = where.indexOf('/');
  if (slash >= 0) {
    prefixText = where.slice(slash + 1);
    where = where.slice(0, slash);
  }
  if (where.startsWith('[') && where.endsWith(']')) where = where.slice(1, -1);
  const family = net.isIPv4(where) ? 'ipv4' : net.isIPv6(where) ? 'ipv6' : undefined;
  if (family) {
    const max = family === 'ipv4' ? 32 : 128;
    const prefix = prefixText === undefined ? max : /^[0-9]{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (!(prefix >= 0 && prefix <= max)) {
      throw new RangeError(`allowed AE "${entry}": the network prefix length must be 0-${max}`);
    }
    return { aeTitle, from: { kind: 'network', address: where, prefix, family } };
  }
  if (prefixText !== undefined || !HOSTNAME_RE.test(where) || /^[0-9.]+$/.test(where)) {
    throw new RangeError(
      `allowed AE "${entry}": "${where}${prefixText !== undefined ? `/${prefixText}` : ''}" is not an IP address, network (10.1.2.0/24) or host name`,
    );
  }
  return { aeTitle, from: { kind: 'host', name: where } };
}

/** An address as the checks compare it: IPv4-mapped IPv6 as IPv4, no IPv6 zone. */
export function canonicalAddress(address: string): { address: string; family: 'ipv4' | 'ipv6' } | undefined {
  let a = address.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped) a = mapped[1]!;
  if (net.isIPv4(a)) return { address: a, family: 'ipv4' };
  if (net.isIPv6(a)) return { address: a, family: 'ipv6' };
  return undefined;
}

/** Resolves a host name to all its addresses (dns.lookup, as connections would). */
export type HostResolver = (name: string) => Promise<string[]>;

const systemResolver: HostResolver = async (name) => (await dns.lookup(name, { all: true })).map((a) => a.address);

/**
 * The allowed calling AE titles and where each may call from. Built from the entries with
 * `CallingAeList.resolve()`, which resolves host names (at start and on reload); check() is then
 * synchronous. An empty list allows any AE title from anywhere.
 */
export class CallingAeList {
  private constructor(
    /** By normalized AE title: null = from any address, else the addresses/networks allowed. */
    private readonly byAe: Map<string, net.BlockList | null>,
    /** "CT@ct1.example.org -> 10.1.2.3, 10.1.2.4" for each host-name entry. */
    readonly resolvedHosts: readonly string[],
  ) {}

  /**
   * Parses the entries (RangeError for a bad one) and resolves their host names. Rejects with an
   * Error naming the entry when a name does not resolve: `allowed AE "CT@ct1.example.org": cannot
   * resolve ct1.example.org: host name not found`.
   */
  static async resolve(entries: readonly string[], resolver: HostResolver = systemResolver): Promise<CallingAeList> {
    const parsed = entries.map(parseAllowedAe);
    const byAe = new Map<string, net.BlockList | null>();
    const resolvedHosts: string[] = [];
    for (const [i, e] of parsed.entries()) {
      if (e.from.kind === 'any') {
        byAe.set(e.aeTitle, null);
        continue;
      }
      const current = byAe.get(e.aeTitle);
      if (current === null) continue; // already allowed from anywhere
      const list = current ?? new net.BlockList();
      byAe.set(e.aeTitle, list);
      if (e.from.kind === 'network') {
        list.addSubnet(e.from.address, e.from.prefix, e.from.family);
        continue;
      }
      let addresses: string[];
      try {
        addresses = await resolver(e.from.name);
      } catch (err) {
        throw new Error(`allowed AE "${entries[i]}": cannot resolve ${e.from.name}: ${describeSystemError(err)}`);
      }
      for (const a of addresses) {
        const c = canonicalAddress(a);
        if (c) list.addAddress(c.address, c.family);
      }
      resolvedHosts.push(`${e.aeTitle}@${e.from.name} -> ${addresses.join(', ') || 'no address'}`);
    }
    return new CallingAeList(byAe, resolvedHosts);
  }

  /** True when any AE title may call (no entries). */
  get isEmpty(): boolean {
    return this.byAe.size === 0;
  }

  /** Whether `callingAet` may associate from `remoteAddress` (the socket's address). */
  check(callingAet: string, remoteAddress: string): CallingAeVerdict {
    if (this.byAe.size === 0) return 'allowed';
    const from = this.byAe.get(normalizeAet(callingAet));
    if (from === undefined) return 'unknownAeTitle';
    if (from === null) return 'allowed';
    const c = canonicalAddress(remoteAddress);
    return c && from.check(c.address, c.family) ? 'allowed' : 'unexpectedAddress';
  }
}

/** True for an interface only this machine can reach (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  const c = canonicalAddress(host);
  if (!c) return false;
  return c.family === 'ipv4' ? c.address.startsWith('127.') : c.address === '::1';
}
