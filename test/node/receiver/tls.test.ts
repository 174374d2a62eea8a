// The receiver's DICOM TLS endpoint (src/node/receiver/tlsServer.ts) against dcmtk's storescu and
// echoscu with +tls: the BCP 195 profile, client certificates when required, refusals logged once
// per peer with their reason and counted in the receiver's status, certificates replaced while
// listening. Certificates are made here with the openssl CLI (tls-helpers.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readTlsCredentials } from '../../../src/dimse/tlsCredentials.js';
import { DicomListener } from '../../../src/node/receiver/listener.js';
import type { ReceivedInstance } from '../../../src/node/receiver/storeSink.js';
import { TlsServer } from '../../../src/node/receiver/tlsServer.js';
import { Spool } from '../../../src/node/spool/spool.js';
import type { SpoolRef } from '../../../src/node/spool/spoolRef.js';
import { runAsync } from '../../helpers/forward-helpers.js';
import { makeTestPki, type TestPki } from '../../helpers/tls-helpers.js';

const AET = 'DEID_TLS';
const CT = '/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm';

describe('the DICOM TLS endpoint', () => {
  let tmp: string;
  let pki: TestPki;
  let spool: Spool | undefined;
  let listener: DicomListener<SpoolRef> | undefined;
  let tlsServer: TlsServer;
  const lines: string[] = [];
  const stored: ReceivedInstance<SpoolRef>[] = [];

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'receiver-tls-'));
    pki = makeTestPki(path.join(tmp, 'pki'));
  });

  afterEach(async () => {
    await listener?.stop();
    await spool?.close();
    listener = undefined;
    lines.length = 0;
    stored.length = 0;
  });

  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** A listener with a plain and a TLS endpoint; returns both ports. */
  async function start(name: string, requireClientCert: boolean, cert = pki.server) {
    spool = new Spool(path.join(tmp, name), { reserveBytes: 0 });
    await spool.recover();
    await spool.prepare();
    const { options } = readTlsCredentials({ cert: cert.cert, key: cert.key, ca: pki.ca.cert }, 'tls');
    tlsServer = new TlsServer({ credentials: options, requireClientCert });
    const rec = (level: string) => (msg: string, meta?: object) =>
      lines.push(`${level} ${msg} ${JSON.stringify(meta ?? {})}`);
    listener = new DicomListener<SpoolRef>({
      aeTitle: AET,
      host: '127.0.0.1',
      endpoints: [
        { name: 'dicom', port: 0 },
        { name: 'dicom-tls', port: 0, createServer: tlsServer.create },
      ],
      sinks: spool,
      logger: { info: rec('info'), warn: rec('warn'), error: rec('error'), debug: rec('debug') },
      onStore: async (inst) => {
        stored.push(inst);
        return 0;
      },
    });
    const { ports } = await listener.start();
    return { plain: ports.dicom!, tls: ports['dicom-tls']! };
  }

  const counts = () => listener!.status().counts;
  const refusals = () => lines.filter((l) => l.startsWith('warn TLS connection refused'));
  const storescu = (port: number, tlsArgs: string[]) =>
    runAsync('storescu', [...tlsArgs, '-aet', 'MODALITY', '-aec', AET, '127.0.0.1', String(port), CT]);

  it('stores over TLS 1.2 and 1.3 with the BCP 195 profile, beside the plain port; refuses older profiles and a peer that does not trust us', async () => {
    const { plain, tls } = await start('anonymous', false);
    // storescu verifies our certificate against the test CA (its default: --require-peer-cert).
    const r13 = await storescu(tls, ['+tla', '+cf', pki.ca.cert]);
    expect(r13.code, r13.out).toBe(0);
    // dcmtk's Extended BCP 195 profile negotiates TLS 1.2 only (with the profile's suites).
    const r12 = await storescu(tls, ['+tla', '+cf', pki.ca.cert, '--profile-bcp195-ex']);
    expect(r12.code, r12.out).toBe(0);
    expect(stored).toHaveLength(2);
    const accepted = lines.filter((l) => l.startsWith('info association accepted'));
    expect(accepted[0]).toContain('"tls":"TLSv1.3"');
    expect(accepted[1]).toContain('"tls":"TLSv1.2"');
    // The plain port serves as before.
    const plainStore = await storescu(plain, []);
    expect(plainStore.code, plainStore.out).toBe(0);
    expect(stored).toHaveLength(3);
    expect(refusals()).toEqual([]);
    // The retired AES profile (RSA key transport, CBC) has no suite in common with BCP 195.
    const aes = await storescu(tls, ['+tla', '+cf', pki.ca.cert, '--profile-aes']);
    expect(aes.code).not.toBe(0);
    // A peer that trusts another CA refuses our certificate: twice, logged once.
    for (let i = 0; i < 2; i++) {
      const untrusting = await storescu(tls, ['+tla', '+cf', pki.otherCa.cert]);
      expect(untrusting.code).not.toBe(0);
      expect(untrusting.out).toMatch(/certificate verify failed/);
    }
    // A plain DICOM peer on the TLS port.
    const plainOnTls = await runAsync('echoscu', ['-aec', AET, '127.0.0.1', String(tls)]);
    expect(plainOnTls.code).not.toBe(0);
    expect(stored).toHaveLength(3);
    const logged = refusals();
    expect(logged.filter((l) => l.includes('no cipher suite in common'))).toHaveLength(1);
    expect(logged.filter((l) => l.includes('the peer does not trust our certificate (unknown CA)'))).toHaveLength(1);
    expect(logged.filter((l) => l.includes('does not speak TLS here'))).toHaveLength(1);
    for (const l of logged) expect(l).toContain('"remoteAddress":"127.0.0.1"');
    expect(logged).toHaveLength(3);
    expect(counts().tlsRefused).toBe(4);
    expect(listener!.status().lastError?.message).toMatch(/^connection refused by TLS: /);
  });

  it('with client certificates required, only a certificate from the CA associates, and each refusal says why', async () => {
    const { tls } = await start('client-certs', true);
    const ok = await storescu(tls, ['+tls', pki.client.key, pki.client.cert, '+cf', pki.ca.cert]);
    expect(ok.code, ok.out).toBe(0);
    expect(stored).toHaveLength(1);
    expect(
      lines.some((l) => l.startsWith('info association accepted') && l.includes('"clientCertificate":"deid-client"')),
    ).toBe(true);
    const none = await storescu(tls, ['+tla', '+cf', pki.ca.cert]);
    expect(none.code).not.toBe(0);
    const otherCa = await storescu(tls, ['+tls', pki.otherClient.key, pki.otherClient.cert, '+cf', pki.ca.cert]);
    expect(otherCa.code).not.toBe(0);
    expect(stored).toHaveLength(1);
    const logged = refusals();
    expect(logged).toHaveLength(2);
    expect(logged[0]).toContain('the client sent no certificate');
    expect(logged[1]).toMatch(/the client's certificate is not trusted \(not signed by a CA we trust\)/);
    expect(counts().tlsRefused).toBe(2);
    expect(counts().associationsAccepted).toBe(1);
  });

  it('takes a new certificate while listening (setSecureContext): an expired one is refused by peers, its replacement accepted', async () => {
    const { tls } = await start('rotation', false, pki.expiredServer);
    const before = await storescu(tls, ['+tla', '+cf', pki.ca.cert]);
    expect(before.code).not.toBe(0);
    expect(before.out).toMatch(/certificate (has )?expired|certificate verify failed/);
    const { options } = readTlsCredentials({ cert: pki.server.cert, key: pki.server.key, ca: pki.ca.cert }, 'tls');
    tlsServer.setCredentials(options);
    const after = await storescu(tls, ['+tla', '+cf', pki.ca.cert]);
    expect(after.code, after.out).toBe(0);
    expect(stored).toHaveLength(1);
  });
});
