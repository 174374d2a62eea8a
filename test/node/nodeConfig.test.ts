// The node's configuration (src/node/nodeConfig.ts): forward destinations as strings and objects,
// and which calling AE title the node forwards with.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { DEFAULT_CONFIG_FILE, loadNodeConfig } from '../../src/node/nodeConfig.js';
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

describe('node config: number settings (checked before anything starts: exit 2, no restart loop)', () => {
  // Found by a fresh-user trial: --max-associations 0 / 3.5 and --max-pdu-length 10 passed here and
  // made the listener throw a RangeError (exit 1: systemd restarted the node forever).
  const bad: [string, unknown, string][] = [
    ['port', 70000, 'port (--port) is 70000: it must be a whole number from 0 to 65535 (a TCP port; 0 = any free one)'],
    ['port', 104.5, 'port (--port) is 104.5: it must be a whole number from 0 to 65535'],
    ['maxAssociations', 0, 'maxAssociations (--max-associations) is 0: it must be a whole number, 1 or more'],
    ['maxAssociations', 3.5, 'maxAssociations (--max-associations) is 3.5: it must be a whole number, 1 or more'],
    ['maxAssociationsPerAddress', 1.5, 'maxAssociationsPerAddress (--max-associations-per-address) is 1.5'],
    [
      'messageDeadlineSeconds',
      0,
      'messageDeadlineSeconds (--message-deadline-seconds) is 0: it must be a number more than 0',
    ],
    [
      'minReceiveBytesPerSecond',
      -1,
      'minReceiveBytesPerSecond (--min-receive-bytes-per-second) is -1: it must be a whole number, 0 or more',
    ],
    [
      'maxPduLength',
      10,
      'maxPduLength (--max-pdu-length) is 10: it must be a whole number from 4096 to 4294967295 (bytes)',
    ],
    ['maxPduLength', 4294967296, 'maxPduLength (--max-pdu-length) is 4294967296'],
    ['maxInstanceMB', 0, 'maxInstanceMB (--max-instance-mb) is 0: it must be a number more than 0 (MiB)'],
    ['forwardGiveUpHours', 0, 'forwardGiveUpHours (--forward-give-up-hours) is 0: it must be a number more than 0'],
    ['processingThreads', 17, 'processingThreads (--processing-threads) is 17: it must be a whole number from 1 to 16'],
    ['processingThreads', 1.5, 'processingThreads (--processing-threads) is 1.5'],
    ['spoolReserveMB', 0.5, 'spoolReserveMB (--spool-reserve-mb) is 0.5: it must be a whole number, 0 or more (MiB)'],
    ['httpPort', -1, 'httpPort (--http-port) is -1: it must be a whole number from 0 to 65535'],
    ['minFreeDiskMB', -5, 'minFreeDiskMB (--min-free-disk-mb) is -5: it must be a number, 0 or more (MiB)'],
    ['logMaxSizeMB', 0, 'logMaxSizeMB (--log-max-size-mb) is 0: it must be a number more than 0 (MiB)'],
    ['logMaxFiles', 0.5, 'logMaxFiles (--log-max-files) is 0.5: it must be a whole number, 1 or more'],
  ];

  it.each(bad)('refuses %s %s in one line naming the setting and its flag', (key, value, message) => {
    for (const load of [
      () => loadNodeConfig(undefined, { [key]: value }),
      () => loadNodeConfig(configFile({ [key]: value }), {}),
    ]) {
      let err: unknown;
      try {
        load();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain(message);
      expect((err as Error).message).not.toContain('\n');
    }
  });

  it('covers every number setting of config/default.json', () => {
    const defaults = JSON.parse(readFileSync(DEFAULT_CONFIG_FILE, 'utf8')) as Record<string, unknown>;
    const numbers = Object.keys(defaults).filter((k) => typeof defaults[k] === 'number');
    expect(numbers.length).toBeGreaterThan(10);
    for (const k of numbers) expect(bad.map(([key]) => key)).toContain(k);
  });

  it('refuses what is not a number, naming the flag', () => {
    expect(() => loadNodeConfig(undefined, { maxAssociations: Number.NaN })).toThrow(
      'command line: maxAssociations (--max-associations) must be a whole number, 1 or more',
    );
    expect(() => loadNodeConfig(configFile({ maxPduLength: 'big' }), {})).toThrow(
      /maxPduLength \(--max-pdu-length\) must be a whole number from 4096/,
    );
  });

  it('keeps the values that work (fractions where they make sense)', () => {
    const c = loadNodeConfig(undefined, {
      forwardGiveUpHours: 0.0003,
      maxInstanceMB: 0.5,
      port: 0,
      maxPduLength: 4096,
    });
    expect([c.forwardGiveUpHours, c.maxInstanceMB, c.port, c.maxPduLength]).toEqual([0.0003, 0.5, 0, 4096]);
  });
});
