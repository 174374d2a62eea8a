// The node's configuration (src/node/nodeConfig.ts): forward destinations as strings and objects,
// and which calling AE title the node forwards with.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { loadNodeConfig } from '../../src/node/nodeConfig.js';
import { rmrf, tempDir } from '../helpers/forward-helpers.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(rmrf));

function configFile(settings: Record<string, unknown>): string {
  const dir = tempDir('cfg');
  dirs.push(dir);
  const p = join(dir, 'node.json');
  writeFileSync(p, JSON.stringify(settings));
  return p;
}

describe('node config: forwarding', () => {
  it("calls with the node's own AE title unless callingAet says otherwise", () => {
    expect(loadNodeConfig(configFile({ aeTitle: 'DEID_NODE' }), {}).callingAet).toBe('DEID_NODE');
    expect(loadNodeConfig(configFile({ aeTitle: 'DEID_NODE', callingAet: 'OTHER' }), {}).callingAet).toBe('OTHER');
    expect(loadNodeConfig(configFile({ aeTitle: 'DEID_NODE' }), { callingAet: 'FLAG' }).callingAet).toBe('FLAG');
    expect(loadNodeConfig(undefined, {}).callingAet).toBe('DEID'); // the default node
  });

  it('reads strings and objects from the file, strings from the flag (which replaces the list)', () => {
    const file = configFile({
      forward: [
        'RESEARCH@10.0.0.5:104',
        { name: 'trial', aeTitle: 'TRIAL', host: 'pacs.example.org', port: 11112, callingAeTitle: 'DEID_TRIAL' },
      ],
    });
    expect(loadNodeConfig(file, {}).forward).toEqual([
      { name: 'RESEARCH@10.0.0.5:104', aeTitle: 'RESEARCH', host: '10.0.0.5', port: 104 },
      { name: 'trial', aeTitle: 'TRIAL', host: 'pacs.example.org', port: 11112, callingAeTitle: 'DEID_TRIAL' },
    ]);
    expect(loadNodeConfig(file, { forward: ['A@h:1', 'B@h:2'] }).forward.map((d) => d.name)).toEqual([
      'A@h:1',
      'B@h:2',
    ]);
    expect(loadNodeConfig(undefined, {}).forward).toEqual([]);
  });

  it('refuses a bad destination with one line naming it', () => {
    const bad: [unknown, RegExp][] = [
      ['RESEARCH@host', /^forward: destination "RESEARCH@host" must look like AET@host:port/],
      [
        { name: 'x', aeTitle: 'A', host: 'h', port: 1, tls: { keyFile: 'k' } },
        /^forward: destination "x": "tls.certFile"/,
      ],
      [{ aeTitle: 'A', host: 'h', port: 1 }, /^forward: a destination object: "name" must be/],
    ];
    for (const [item, re] of bad) {
      let err: unknown;
      try {
        loadNodeConfig(configFile({ forward: [item] }), {});
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(item)).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(re);
    }
  });
});

describe('node config: HTTPS for the HTTP side (httpTls)', () => {
  const tls = { port: 2762, cert: '/etc/deid/node.pem', key: '/etc/deid/node.key' };

  it('true takes the DICOM TLS certificate and key; an object its own (paths resolved); false or absent: none', () => {
    expect(loadNodeConfig(configFile({ tls, httpTls: true }), {}).httpTls).toEqual({
      cert: '/etc/deid/node.pem',
      key: '/etc/deid/node.key',
      sameAsDicomTls: true,
    });
    const own = loadNodeConfig(configFile({ httpTls: { cert: 'web.pem', key: '/etc/deid/web.key' } }), {}).httpTls;
    expect(own).toEqual({ cert: join(process.cwd(), 'web.pem'), key: '/etc/deid/web.key', sameAsDicomTls: false });
    expect(loadNodeConfig(configFile({ tls, httpTls: false }), {}).httpTls).toBeUndefined();
    expect(loadNodeConfig(configFile({ tls }), {}).httpTls).toBeUndefined();
  });

  it('flags override the file: --no-http-tls turns it off, a cert flag replaces one key of the object', () => {
    const file = configFile({ tls, httpTls: { cert: '/a.pem', key: '/a.key' } });
    expect(loadNodeConfig(file, { httpTls: false }).httpTls).toBeUndefined();
    expect(loadNodeConfig(file, { httpTls: true }).httpTls?.sameAsDicomTls).toBe(true);
    expect(loadNodeConfig(file, { httpTls: { cert: '/b.pem', key: undefined } }).httpTls).toEqual({
      cert: '/b.pem',
      key: '/a.key',
      sameAsDicomTls: false,
    });
  });

  it('refuses what cannot work, in one line', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ httpTls: true }, /^httpTls true serves HTTPS with the DICOM TLS certificate and key, and tls is not set/],
      [{ httpTls: { cert: '/a.pem' } }, /^httpTls needs cert and key/],
      [{ httpTls: { cert: '/a.pem', key: '' } }, /^httpTls\.key must be a file path$/],
      [{ httpTls: { cert: '/a.pem', key: '/a.key', ca: '/ca.pem' } }, /unknown setting "httpTls\.ca"/],
      [{ httpTls: 'yes' }, /"httpTls" must be true \(the DICOM TLS certificate and key\) or an object/],
    ];
    for (const [settings, re] of cases) {
      const load = () => loadNodeConfig(configFile(settings), {});
      expect(load).toThrow(ConfigError);
      expect(load).toThrow(re);
    }
  });
});

describe('node config: the state database', () => {
  it('refuses a db that is a folder or a device, in one line (SQLite left /dev/null-journal behind)', () => {
    const folder = tempDir('cfg-db');
    dirs.push(folder);
    for (const [db, re] of [
      [folder, /^db \(.*\) is a folder: give the database's file name$/],
      ['/dev/null', /^db \(\/dev\/null\) is a device or a pipe, not a file: give the database's file name$/],
    ] as const) {
      const load = () => loadNodeConfig(configFile({ db }), {});
      expect(load).toThrow(ConfigError);
      expect(load).toThrow(re);
    }
    expect(loadNodeConfig(configFile({ db: join(folder, 'state.sqlite') }), {}).db).toBe(join(folder, 'state.sqlite'));
  });
});
