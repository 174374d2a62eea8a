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
