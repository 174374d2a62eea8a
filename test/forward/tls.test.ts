// Forwarding over DICOM TLS (src/dimse/scu/tlsSocketFactory.ts, src/forward/destinationTls.ts)
// against dcmtk's storescp +tls: delivery with and without a client certificate, and every way a
// certificate can be wrong, each a transient failure with its reason in words, which the
// forwarder dead-letters only once it has been failing for its give-up time.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { destinationFromConfig, type Destination } from '../../src/forward/destination.js';
import { checkDestinationTls } from '../../src/forward/destinationTls.js';
import { Forwarder } from '../../src/forward/forwarder.js';
import { sendFiles } from '../../src/forward/storeScu.js';
import { openStateStore } from '../../src/state/openStateStore.js';
import {
  F,
  freePort,
  memoryLogger,
  rmrf,
  startStorescp,
  stopAllPeers,
  tempDir,
  waitFor,
} from '../helpers/forward-helpers.js';
import { makeTestPki, type TestPki } from '../helpers/tls-helpers.js';

let root = '';
let pki: TestPki;
const cleanups: (() => unknown)[] = [];

beforeAll(() => {
  root = tempDir('tls');
  pki = makeTestPki(join(root, 'pki'));
});

afterEach(async () => {
  await stopAllPeers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(() => {
  if (root) rmrf(root);
});

/** storescp +tls with `cert` as its certificate; requires a client certificate from the test CA when `requirePeer`. */
async function tlsPacs(
  cert: { key: string; cert: string },
  requirePeer: boolean,
): Promise<{ port: number; out: string }> {
  const port = await freePort();
  const out = tempDir('tls-pacs');
  cleanups.push(() => rmrf(out));
  const args = [
    '+tls',
    cert.key,
    cert.cert,
    '+cf',
    pki.ca.cert,
    requirePeer ? '--require-peer-cert' : '--verify-peer-cert',
  ];
  await startStorescp([...args, '-aet', 'RESEARCH'], port, out);
  return { port, out };
}

function destination(port: number, tls: Record<string, unknown>): Destination {
  return destinationFromConfig({ name: 'research', aeTitle: 'RESEARCH', host: '127.0.0.1', port, tls });
}

const received = (out: string) => readdirSync(out).length;
const send = (dest: Destination) =>
  sendFiles([F.ctExplicit], dest, { callingAet: 'DEID', connectTimeoutMs: 5000, associationTimeoutMs: 5000 });

describe('the TLS destination', () => {
  it('delivers with our client certificate to a peer that requires one, verifying its certificate', async () => {
    const { port, out } = await tlsPacs(pki.server, true);
    const dest = destination(port, { caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: pki.client.key });
    expect(checkDestinationTls(dest)).toEqual([]);
    const r = await send(dest);
    expect(r.outcomes[0]!.outcome).toEqual({ kind: 'delivered', status: 0 });
    expect(received(out)).toBe(1);
  });

  it('gives every wrong certificate a transient failure naming it: expired, untrusted, another name, none of ours', async () => {
    const expired = await tlsPacs(pki.expiredServer, false);
    const good = await tlsPacs(pki.server, false);
    const strict = await tlsPacs(pki.server, true);
    const cases: [Destination, RegExp][] = [
      [
        destination(expired.port, { caFile: pki.ca.cert }),
        /^cannot connect to research \(RESEARCH@127\.0\.0\.1:\d+, TLS\): TLS handshake failed: the server's certificate has expired \(CERT_HAS_EXPIRED\)$/,
      ],
      // No caFile: Node's public CAs, which do not know the test CA (storescp sends it in its chain).
      [
        destination(good.port, {}),
        /TLS handshake failed: the server's certificate is not trusted \(.*\) \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\)$/,
      ],
      [destination(good.port, { caFile: pki.otherCa.cert }), /the server's certificate is not trusted/],
      [
        destination(good.port, { caFile: pki.ca.cert, serverName: 'pacs.example.org' }),
        /TLS handshake failed: the server's certificate does not match the host name \(ERR_TLS_CERT_ALTNAME_INVALID\)$/,
      ],
      // The peer wants a client certificate and we have none (TLS 1.3: its alert comes after the handshake).
      [destination(strict.port, { caFile: pki.ca.cert }), /the peer requires a client certificate and we sent none/],
    ];
    for (const [dest, re] of cases) {
      const r = await send(dest);
      const o = r.outcomes[0]!.outcome;
      expect(o.kind, JSON.stringify(dest.tls)).toBe('transient-failure');
      expect((o as { reason: string }).reason).toMatch(re);
      expect(r.connectionProblem).toMatch(re);
    }
    expect(received(expired.out) + received(good.out) + received(strict.out)).toBe(0);
    // Verification off (tests only, with a warning at start): the expired certificate is accepted.
    const unverified = destination(expired.port, { verify: false });
    expect(checkDestinationTls(unverified)).toEqual([expect.stringMatching(/TLS certificate verification is off/)]);
    expect((await send(unverified)).outcomes[0]!.outcome.kind).toBe('delivered');
  });

  it('a plain DICOM peer, and a certificate file that went missing, fail the association with their reason', async () => {
    const port = await freePort();
    const out = tempDir('plain-pacs');
    cleanups.push(() => rmrf(out));
    await startStorescp(['-aet', 'RESEARCH'], port, out);
    const plain = await send(destination(port, { caFile: pki.ca.cert }));
    expect(plain.outcomes[0]!.outcome).toMatchObject({
      kind: 'transient-failure',
      reason: expect.stringMatching(/TLS handshake failed/),
    });
    const missing = destination(port, { caFile: join(root, 'gone.pem') });
    expect(() => checkDestinationTls(missing)).toThrow(
      /^destination "research": cannot read the CA file \S+gone\.pem: not found$/,
    );
    const r = await send(missing);
    expect(r.outcomes[0]!.outcome).toMatchObject({
      kind: 'transient-failure',
      reason: expect.stringMatching(/cannot read the CA file \S+gone\.pem: not found/),
    });
  });

  it('dead-letters an expired peer certificate only after the give-up time, with the reason', async () => {
    const { port } = await tlsPacs(pki.expiredServer, false);
    const db = await openStateStore(':memory:', { create: true });
    cleanups.push(() => db.close());
    const dest = destination(port, { caFile: pki.ca.cert });
    await db.enqueueForwards([{ filePath: F.ctExplicit, destination: dest.name }]);
    const logger = memoryLogger();
    const fwd = new Forwarder({
      state: db,
      destinations: [dest],
      callingAet: 'DEID',
      logger,
      backoff: { initialMs: 100, maxMs: 300 },
      giveUpAfterMs: 1500,
    });
    await fwd.start();
    cleanups.push(() => fwd.stop());
    // Retried first: pending, with the destination down for the reason.
    await waitFor(() => logger.lines.some((l) => /is down: .*certificate has expired/.test(l.msg)), 10_000, 'down');
    expect((await db.forwardCounts())[0]).toMatchObject({ dead: 0 });
    await waitFor(async () => (await db.forwardCounts())[0]!.dead === 1, 20_000, 'dead after giving up');
    const [dead] = await db.deadForwardReasons(10);
    expect(dead!.reason).toMatch(
      /^gave up after \d+(\.\d+)? s of failures; last: cannot connect .*: TLS handshake failed: the server's certificate has expired \(CERT_HAS_EXPIRED\)$/,
    );
    const attempts = (await db.forwardItems(dest.name))[0]!.attempts;
    expect(attempts).toBeGreaterThan(1);
  });
});
