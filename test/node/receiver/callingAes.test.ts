// Who may connect (src/node/receiver/callingAes.ts): allowedAets entries binding AE titles to
// addresses, networks and host names; the once-per-peer log throttle; the node's settings.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.js';
import { loadNodeConfig } from '../../../src/node/nodeConfig.js';
import { CallingAeList, isLoopbackHost, parseAllowedAe } from '../../../src/node/receiver/callingAes.js';
import { OncePerPeer } from '../../../src/node/receiver/oncePerPeer.js';
import { rmrf, tempDir } from '../../helpers/forward-helpers.js';

describe('allowedAets entries', () => {
  it('parse an AE title alone, with an address, a network (IPv4, IPv6) or a host name', () => {
    expect(parseAllowedAe('PACS1')).toEqual({ aeTitle: 'PACS1', from: { kind: 'any' } });
    expect(parseAllowedAe(' CT1@10.1.2.3 ')).toEqual({
      aeTitle: 'CT1',
      from: { kind: 'network', address: '10.1.2.3', prefix: 32, family: 'ipv4' },
    });
    expect(parseAllowedAe('MODALITY@10.1.2.0/24').from).toEqual({
      kind: 'network',
      address: '10.1.2.0',
      prefix: 24,
      family: 'ipv4',
    });
    expect(parseAllowedAe('MR@[fd00::7]').from).toEqual({
      kind: 'network',
      address: 'fd00::7',
      prefix: 128,
      family: 'ipv6',
    });
    expect(parseAllowedAe('MR@fd00:1::/64').from).toMatchObject({ address: 'fd00:1::', prefix: 64, family: 'ipv6' });
    expect(parseAllowedAe('WS@ws1.example.org').from).toEqual({ kind: 'host', name: 'ws1.example.org' });
  });

  it('refuse a bad entry with one line quoting it', () => {
    const bad: [string, RegExp][] = [
      [
        'THIS_AE_TITLE_IS_TOO_LONG@10.0.0.1',
        /^allowed AE "THIS_AE_TITLE_IS_TOO_LONG@10\.0\.0\.1": .* is not a valid AE title/,
      ],
      ['@10.0.0.1', /is not a valid AE title/],
      ['CT@10.1.2.0/33', /the network prefix length must be 0-32/],
      ['CT@fd00::/129', /the network prefix length must be 0-128/],
      ['CT@10.1.2', /"10\.1\.2" is not an IP address, network \(10\.1\.2\.0\/24\) or host name/],
      ['CT@host_name', /is not an IP address, network/],
      ['CT@host.example.org/24', /is not an IP address, network/],
    ];
    for (const [entry, re] of bad) expect(() => parseAllowedAe(entry), entry).toThrow(re);
  });

  it('allow an AE title from its addresses only; listed alone, from anywhere; IPv4-mapped IPv6 as IPv4', async () => {
    const resolver = async (name: string) => {
      if (name === 'ws1.example.org') return ['10.9.0.5', 'fd00::5'];
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
    };
    const list = await CallingAeList.resolve(
      ['PACS1', 'CT1@10.1.2.0/24', 'CT1@10.7.7.7', 'MR@fd00:1::/64', 'WS@ws1.example.org', 'PACS1@10.0.0.1'],
      resolver,
    );
    expect(list.check('PACS1', '192.0.2.1')).toBe('allowed');
    expect(list.check('CT1', '10.1.2.200')).toBe('allowed');
    expect(list.check('CT1', '::ffff:10.1.2.200')).toBe('allowed');
    expect(list.check('CT1', '10.7.7.7')).toBe('allowed');
    expect(list.check('CT1', '10.1.3.1')).toBe('unexpectedAddress');
    expect(list.check('MR', 'fd00:1::42')).toBe('allowed');
    expect(list.check('MR', 'fd00:2::42')).toBe('unexpectedAddress');
    expect(list.check('WS', '10.9.0.5')).toBe('allowed');
    expect(list.check('WS', 'fd00::5')).toBe('allowed');
    expect(list.check('WS', '10.9.0.6')).toBe('unexpectedAddress');
    expect(list.check('OTHER', '10.1.2.3')).toBe('unknownAeTitle');
    expect(list.check('CT1 ', '10.1.2.3')).toBe('allowed'); // padding is not part of an AE title
    expect(list.resolvedHosts).toEqual(['WS@ws1.example.org -> 10.9.0.5, fd00::5']);
    await expect(CallingAeList.resolve(['CT@gone.example.org'], resolver)).rejects.toThrow(
      /^allowed AE "CT@gone\.example\.org": cannot resolve gone\.example\.org: host name not found$/,
    );
    const empty = await CallingAeList.resolve([]);
    expect(empty.isEmpty).toBe(true);
    expect(empty.check('ANYONE', '203.0.113.9')).toBe('allowed');
  });

  it('know loopback interfaces', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1'])
      expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'pacs.example.org']) expect(isLoopbackHost(h), h).toBe(false);
  });
});

describe('once per peer', () => {
  it('logs a key once per window, then once more with the count of the silent repeats', () => {
    let now = 0;
    const once = new OncePerPeer(1000, () => now);
    expect(once.note('a|x')).toEqual({ log: true, suppressed: 0 });
    expect(once.note('a|x')).toEqual({ log: false, suppressed: 1 });
    expect(once.note('b|x')).toEqual({ log: true, suppressed: 0 });
    expect(once.note('a|x')).toEqual({ log: false, suppressed: 2 });
    now = 1500;
    expect(once.note('a|x')).toEqual({ log: true, suppressed: 2 });
    expect(once.note('a|x')).toEqual({ log: false, suppressed: 1 });
  });
});

describe('node config: security settings', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach(rmrf));
  const configFile = (settings: Record<string, unknown>): string => {
    const dir = tempDir('cfg');
    dirs.push(dir);
    const p = join(dir, 'node.json');
    writeFileSync(p, JSON.stringify(settings));
    return p;
  };
  const error = (settings: Record<string, unknown>, flags: Record<string, unknown> = {}): string => {
    try {
      loadNodeConfig(configFile(settings), flags);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
    throw new Error('no ConfigError');
  };

  it('reads tls from the file and the flags (merged key by key), resolving its paths', () => {
    const c = loadNodeConfig(configFile({ tls: { port: 2762, cert: 'node.pem', key: 'node.key' } }), {
      tls: { ca: '/etc/deid/ca.pem', requireClientCert: true },
    });
    expect(c.tls).toEqual({
      port: 2762,
      cert: join(process.cwd(), 'node.pem'),
      key: join(process.cwd(), 'node.key'),
      ca: '/etc/deid/ca.pem',
      requireClientCert: true,
      only: false,
    });
    expect(loadNodeConfig(undefined, {}).tls).toBeUndefined();
    expect(loadNodeConfig(undefined, {}).openAccess).toBe('warn');
    expect(loadNodeConfig(undefined, {}).messageDeadlineSeconds).toBe(30);
    expect(loadNodeConfig(undefined, {}).minReceiveBytesPerSecond).toBe(16384);
    expect(loadNodeConfig(undefined, {}).maxAssociationsPerAddress).toBeUndefined();
    expect(loadNodeConfig(configFile({ maxAssociationsPerAddress: 2 }), {}).maxAssociationsPerAddress).toBe(2);
    expect(loadNodeConfig(configFile({ allowedAets: ['CT@10.1.2.0/24', 'PACS'] }), {}).allowedAets).toEqual([
      'CT@10.1.2.0/24',
      'PACS',
    ]);
    expect(loadNodeConfig(undefined, { allowedAets: 'CT@10.1.2.0/24,PACS' }).allowedAets).toHaveLength(2);
  });

  it('refuses bad security settings with one line naming them', () => {
    expect(error({ tls: { port: 2762, cert: 'a.pem' } })).toMatch(/^tls needs cert and key/);
    expect(error({ tls: { port: 11112, cert: 'a', key: 'b' } })).toMatch(
      /^tls\.port 11112 is also the plain DICOM port/,
    );
    expect(error({ tls: { port: 70000, cert: 'a', key: 'b' } })).toMatch(
      /^tls\.port \(--tls-port\) is 70000: it must be a whole number from 0 to 65535/,
    );
    expect(error({ tls: { port: 2762, cert: 'a', key: 'b', requireClientCert: true } })).toMatch(/needs tls\.ca/);
    expect(error({ tls: { port: 2762, cert: 'a', key: 'b', only: 'yes' } })).toMatch(
      /^tls\.only must be true or false/,
    );
    expect(error({ tls: { prot: 2762 } })).toMatch(/unknown TLS setting "tls\.prot"/);
    expect(error({ tls: 'on' })).toMatch(/"tls" must be an object/);
    expect(error({ openAccess: 'maybe' })).toMatch(/"openAccess" must be one of "warn", "reject", "allow"/);
    expect(error({ allowedAets: ['CT@10.1.2.0/40'] })).toMatch(
      /^allowed AE "CT@10\.1\.2\.0\/40": the network prefix length/,
    );
    expect(error({ maxAssociationsPerAddress: 0 })).toMatch(
      /^maxAssociationsPerAddress \(--max-associations-per-address\) is 0: it must be a whole number, 1 or more/,
    );
    expect(error({ messageDeadlineSeconds: 0 })).toMatch(
      /^messageDeadlineSeconds \(--message-deadline-seconds\) is 0: it must be a number more than 0/,
    );
  });
});
