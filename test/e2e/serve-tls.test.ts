// Security on the wire, end to end, with the node as a real process (`node dist/cli.js serve`):
// storescu +tls into its TLS port (with and without client certificates), certificates replaced
// on SIGHUP, start errors naming a bad file, AE titles bound to addresses, and forwarding over TLS
// to storescp +tls (an expired certificate keeps items queued until it is replaced) and to Orthanc
// configured for DICOM TLS; the HTTP side over HTTPS (its certificate reloaded on SIGHUP too) and
// refused handshakes counted in /metrics. Certificates are made in the test with the openssl CLI.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort,
  ORTHANC_BIN,
  receivedBySopInstance,
  rmrf,
  startOrthanc,
  startStorescp,
  stopAllPeers,
  tempDir,
  waitFor,
} from '../helpers/forward-helpers.js';
import { associateRq, CT_STORAGE, EXPLICIT_LE, rawClient } from '../helpers/raw-dicom.js';
import {
  ensureBuilt,
  listFilesRecursive,
  makeSamples,
  runCli,
  startNode,
  stopAllNodes,
  storescu,
  waitQueue,
  writeMappingCsv,
  type NodeProc,
} from '../helpers/serve-helpers.js';
import { makeTestPki, type TestPki } from '../helpers/tls-helpers.js';

let root = '';
let csv = '';
let pki: TestPki;
/** Uncompressed samples of one study (MRN777/ACC1 -> RS_07). */
let study: string[] = [];

beforeAll(() => {
  ensureBuilt();
  root = tempDir('serve-tls');
  pki = makeTestPki(join(root, 'pki'));
  csv = writeMappingCsv(join(root, 'map.csv'), [{ mrn: 'MRN777', accession: 'ACC1', researchId: 'RS_07' }]);
  study = makeSamples(join(root, 'in'), 'MRN777', 'ACC1', '1.2.826.0.1.3680043.8.498.777', 'a').filter((f) =>
    /CT_small|MR_small_implicit/.test(f),
  );
});

afterEach(async () => {
  await stopAllNodes();
  await stopAllPeers();
});

afterAll(() => {
  if (root) rmrf(root);
});

function testDir(name: string): string {
  return mkdtempSync(join(root, `${name}-`));
}

/** The TLS port from the node's "listening as ... (DICOM TLS...)" line. */
/**
 * The DICOM TLS port from its "listening as" line. startNode returns on the first such line; the
 * TLS one follows it and may come in a later read of the pipe (a flake under load): wait for it.
 */
async function tlsPort(node: NodeProc): Promise<number> {
  const re = /listening as \S+ on [^\s:]+:(\d+) \(DICOM TLS/;
  await node.waitForLog(re);
  return Number(re.exec(node.logs())![1]);
}

function filed(node: NodeProc): string[] {
  return listFilesRecursive(node.paths.output).filter((f) => f.endsWith('.dcm'));
}

describe('receiving over DICOM TLS', () => {
  it('storescu +tls stores into the TLS port beside the plain one; a peer trusting another CA refuses us', async () => {
    const node = await startNode({
      dir: testDir('rx'),
      csv,
      config: { tls: { port: 0, cert: pki.server.cert, key: pki.server.key } },
    });
    const port = await tlsPort(node);
    expect(port).not.toBe(node.port);
    const r = storescu(port, study, { args: ['+tla', '+cf', pki.ca.cert] });
    expect(r.status, r.output).toBe(0);
    await waitFor(() => filed(node).length === study.length, 30_000, 'instances filed');
    const plain = storescu(node.port, study.slice(0, 1));
    expect(plain.status, plain.output).toBe(0);
    const wrongCa = storescu(port, study.slice(0, 1), { args: ['+tla', '+cf', pki.otherCa.cert] });
    expect(wrongCa.status).not.toBe(0);
    expect(wrongCa.output).toMatch(/certificate verify failed/);
    await node.waitForLog(/TLS connection refused .*the peer does not trust our certificate \(unknown CA\)/);
    expect(await node.stop()).toBe(0);
    expect(node.logs()).not.toMatch(/\berror\b/);
  });

  it('with client certificates required (TLS only): a certificate from our CA stores; none, or another CA, is refused with its reason', async () => {
    const node = await startNode({
      dir: testDir('rx-mtls'),
      csv,
      args: ['--tls-port', '0', '--tls-cert', pki.server.cert, '--tls-key', pki.server.key],
      config: { tls: { ca: pki.ca.cert, requireClientCert: true, only: true } },
    });
    expect(node.logs()).toMatch(/listening as DEID on 127\.0\.0\.1:\d+ \(DICOM TLS, client certificates required\)/);
    expect(node.logs().match(/listening as/g)).toHaveLength(1); // no plain port
    const port = await tlsPort(node);
    const ok = storescu(port, study, { args: ['+tls', pki.client.key, pki.client.cert, '+cf', pki.ca.cert] });
    expect(ok.status, ok.output).toBe(0);
    await node.waitForLog(/association accepted .*clientCertificate=deid-client/);
    const none = storescu(port, study.slice(0, 1), { args: ['+tla', '+cf', pki.ca.cert] });
    expect(none.status).not.toBe(0);
    await node.waitForLog(/TLS connection refused .*the client sent no certificate/);
    const other = storescu(port, study.slice(0, 1), {
      args: ['+tls', pki.otherClient.key, pki.otherClient.cert, '+cf', pki.ca.cert],
    });
    expect(other.status).not.toBe(0);
    await node.waitForLog(/TLS connection refused .*the client's certificate is not trusted/);
    await waitFor(() => filed(node).length === study.length, 30_000, 'instances filed');
    expect(await node.stop()).toBe(0);
  });

  it('reads new certificates on SIGHUP: an expired certificate (a warning at start) is replaced without a restart', async () => {
    const dir = testDir('rx-hup');
    const cert = join(dir, 'node.pem');
    copyFileSync(pki.expiredServer.cert, cert);
    const node = await startNode({ dir, csv, config: { tls: { port: 0, cert, key: pki.server.key } } });
    expect(node.logs()).toMatch(/warn\S*: tls: the certificate \S+node\.pem expired on 2020-01-02/);
    const port = await tlsPort(node);
    const before = storescu(port, study.slice(0, 1), { args: ['+tla', '+cf', pki.ca.cert] });
    expect(before.status).not.toBe(0);
    copyFileSync(pki.server.cert, cert);
    node.proc.kill('SIGHUP');
    await node.waitForLog(/TLS certificates reloaded/);
    const after = storescu(port, study.slice(0, 1), { args: ['+tla', '+cf', pki.ca.cert] });
    expect(after.status, after.output).toBe(0);
    // A file that went missing: the reload says so in one line and the current certificate stays.
    rmrf(cert);
    node.proc.kill('SIGHUP');
    await node.waitForLog(
      /TLS certificates not reloaded, the previous ones stay: tls: cannot read the certificate file \S+node\.pem: not found/,
    );
    const still = storescu(port, study.slice(0, 1), { args: ['+tla', '+cf', pki.ca.cert] });
    expect(still.status, still.output).toBe(0);
    expect(await node.stop()).toBe(0);
  });

  it('a missing or unusable certificate file is a one-line start error naming it', () => {
    const dir = testDir('rx-bad');
    mkdirSync(join(dir, 'out'), { recursive: true });
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { port: 0, cert: join(dir, 'missing.pem'), key: pki.server.key },
        /tls: cannot read the certificate file \S+missing\.pem: not found/,
      ],
      [
        { port: 0, cert: pki.server.cert, key: pki.client.key },
        /tls: the key \S+client\.key does not belong to the certificate \S+server\.pem/,
      ],
      [
        { port: 0, cert: pki.server.key, key: pki.server.key },
        /tls: the certificate file \S+server\.key holds no PEM certificate/,
      ],
      [{ port: 0, cert: pki.server.cert }, /tls needs cert and key/],
      [
        { port: 0, cert: pki.server.cert, key: pki.server.key, requireClientCert: true },
        /tls\.requireClientCert needs tls\.ca/,
      ],
    ];
    for (const [tls, re] of cases) {
      const config = join(dir, 'node.json');
      writeFileSync(
        config,
        JSON.stringify({
          host: '127.0.0.1',
          port: 0,
          csv,
          output: join(dir, 'out'),
          db: join(dir, 'state.sqlite'),
          quarantine: join(dir, 'q'),
          spool: join(dir, 'spool'),
          logDir: join(dir, 'logs'),
          spoolReserveMB: 0,
          tls,
        }),
      );
      const r = runCli(['serve', '--config', config]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(re);
      expect(
        r.stderr
          .trim()
          .split('\n')
          .filter((l) => /tls/.test(l)),
      ).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  });
});

/** GET over HTTPS trusting only the PEM file `ca` (node:https: a real TLS peer). Rejects when the handshake fails. */
function httpsGet(url: string, ca: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca: readFileSync(ca), agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
  });
}

describe('the HTTP side over HTTPS', () => {
  it('httpTls true: status and API over HTTPS with the DICOM TLS certificate, plain HTTP refused; a refused TLS handshake is counted in /metrics', async () => {
    const node = await startNode({
      dir: testDir('https'),
      csv,
      config: { tls: { port: 0, cert: pki.server.cert, key: pki.server.key }, httpTls: true },
    });
    expect(node.httpUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const health = await httpsGet(`${node.httpUrl}/healthz`, pki.ca.cert);
    expect(health.status).toBe(200);
    const status = await httpsGet(`${node.httpUrl}/api/status`, pki.ca.cert);
    expect(status.status).toBe(200);
    expect(JSON.parse(status.text).components.receiver.state).toBe('running');
    // A client trusting another CA refuses the node's certificate; plain HTTP gets no answer.
    await expect(httpsGet(`${node.httpUrl}/healthz`, pki.otherCa.cert)).rejects.toThrow(/self.signed|issuer|verify/i);
    const plain = await fetch(node.httpUrl.replace('https:', 'http:') + '/healthz').then(
      (r) => r.status,
      (e: Error) => e,
    );
    expect(plain).toBeInstanceOf(Error); // the TLS server drops a request that is no handshake

    const refusedBefore = /dicom_deid_connections_refused_total\{reason="tls-handshake"\} (\d+)/.exec(
      (await httpsGet(`${node.httpUrl}/metrics`, pki.ca.cert)).text,
    );
    expect(refusedBefore?.[1]).toBe('0');
    const wrongCa = storescu(await tlsPort(node), study.slice(0, 1), { args: ['+tla', '+cf', pki.otherCa.cert] });
    expect(wrongCa.status).not.toBe(0);
    await node.waitForLog(/TLS connection refused/);
    const metrics = (await httpsGet(`${node.httpUrl}/metrics`, pki.ca.cert)).text;
    expect(metrics).toMatch(/^dicom_deid_connections_refused_total\{reason="tls-handshake"\} 1$/m);
    expect(metrics).toMatch(/^dicom_deid_connections_refused_total\{reason="too-many-from-address"\} 0$/m);
    expect(metrics).toMatch(/^dicom_deid_slow_peers_cut_off_total 0$/m);
    expect(await node.stop()).toBe(0);
  });

  it('a certificate of its own (--http-tls-cert, --http-tls-key) is read again on SIGHUP: an expired one is replaced without a restart', async () => {
    const dir = testDir('https-hup');
    const cert = join(dir, 'http.pem');
    copyFileSync(pki.expiredServer.cert, cert);
    const node = await startNode({ dir, csv, args: ['--http-tls-cert', cert, '--http-tls-key', pki.server.key] });
    expect(node.logs()).toMatch(/warn\S*: httpTls: the certificate \S+http\.pem expired on 2020-01-02/);
    await expect(httpsGet(`${node.httpUrl}/healthz`, pki.ca.cert)).rejects.toThrow(/expired/);
    copyFileSync(pki.server.cert, cert);
    node.proc.kill('SIGHUP');
    await node.waitForLog(/HTTPS certificate reloaded/);
    expect((await httpsGet(`${node.httpUrl}/healthz`, pki.ca.cert)).status).toBe(200);
    rmrf(cert);
    node.proc.kill('SIGHUP');
    await node.waitForLog(
      /HTTPS certificate not reloaded, the previous one stays: httpTls: cannot read the certificate file \S+http\.pem: not found/,
    );
    expect((await httpsGet(`${node.httpUrl}/healthz`, pki.ca.cert)).status).toBe(200);
    expect(await node.stop()).toBe(0);
  });

  it('a wrong HTTPS certificate path, or httpTls true without tls, is a one-line start error', () => {
    const dir = testDir('https-bad');
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { httpTls: { cert: join(dir, 'missing.pem'), key: pki.server.key } },
        /httpTls: cannot read the certificate file \S+missing\.pem: not found/,
      ],
      [{ httpTls: true }, /httpTls true serves HTTPS with the DICOM TLS certificate and key, and tls is not set/],
      [{ httpTls: { cert: pki.server.cert } }, /httpTls needs cert and key/],
    ];
    for (const [settings, re] of cases) {
      const config = join(dir, 'node.json');
      writeFileSync(
        config,
        JSON.stringify({
          host: '127.0.0.1',
          port: 0,
          httpPort: 0,
          csv,
          output: join(dir, 'out'),
          db: join(dir, 'state.sqlite'),
          quarantine: join(dir, 'q'),
          spool: join(dir, 'spool'),
          logDir: join(dir, 'logs'),
          spoolReserveMB: 0,
          ...settings,
        }),
      );
      const r = runCli(['serve', '--config', config]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toMatch(re);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('who may connect', () => {
  it('an AE title bound to an address is rejected from another ("calling AE title not recognized", logged with the address) and accepted from it', async () => {
    const node = await startNode({
      dir: testDir('aet-bound'),
      csv,
      config: { allowedAets: ['MODALITY@127.0.0.2', 'TRUSTED@127.0.0.0/30', 'WS1@localhost'] },
    });
    // storescu connects from 127.0.0.1.
    const wrong = storescu(node.port, study.slice(0, 1), { callingAet: 'MODALITY' });
    expect(wrong.status).not.toBe(0);
    expect(wrong.output).toMatch(/Calling AE Title Not Recognized/i);
    await node.waitForLog(
      /association rejected .*reason="calling AE title not recognized from this address" callingAet=MODALITY .*remoteAddress=127\.0\.0\.1/,
    );
    const network = storescu(node.port, study.slice(0, 1), { callingAet: 'TRUSTED' });
    expect(network.status, network.output).toBe(0);
    const named = storescu(node.port, study.slice(0, 1), { callingAet: 'WS1' }); // localhost resolved at start
    expect(named.status, named.output).toBe(0);
    expect(node.logs()).toMatch(/allowed AE host resolved: WS1@localhost -> .*127\.0\.0\.1/);
    // MODALITY from its own address (a raw association from 127.0.0.2): accepted.
    const raw = rawClient(node.port, { localAddress: '127.0.0.2' });
    raw.sock.write(associateRq('MODALITY', 'DEID', CT_STORAGE, EXPLICIT_LE));
    await raw.waitBytes(6, 10_000);
    expect(raw.received()[0]).toBe(0x02); // A-ASSOCIATE-AC
    raw.sock.destroy();
    expect(await node.stop()).toBe(0);
  });

  it('an empty allow-list on a reachable interface: a warning at start, or every association rejected with openAccess "reject"', async () => {
    const warned = await startNode({ dir: testDir('open-warn'), csv, config: { host: '0.0.0.0' } });
    expect(warned.logs()).toMatch(
      /warn\S*: any calling AE title may store into this node: allowedAets is empty and it listens on 0\.0\.0\.0/,
    );
    expect(storescu(warned.port, study.slice(0, 1)).status).toBe(0);
    await warned.stop();
    const loopback = await startNode({ dir: testDir('open-loop'), csv });
    expect(loopback.logs()).not.toMatch(/any calling AE title may store/);
    await loopback.stop();
    const closed = await startNode({
      dir: testDir('open-reject'),
      csv,
      config: { host: '0.0.0.0' },
      args: ['--open-access', 'reject'],
    });
    expect(closed.logs()).toMatch(/openAccess is "reject": every association is rejected/);
    const r = storescu(closed.port, study.slice(0, 1));
    expect(r.status).not.toBe(0);
    expect(r.output).toMatch(/Calling AE Title Not Recognized/i);
    expect(await closed.stop()).toBe(0);
  });
});

describe('forwarding over DICOM TLS', () => {
  it('reaches storescp +tls (client certificate required); an expired certificate keeps items queued with the reason until it is replaced', async () => {
    const dir = testDir('fwd-storescp');
    const port = await freePort();
    const out = join(dir, 'pacs');
    mkdirSync(out);
    const storescpArgs = (cert: { key: string; cert: string }) => [
      '+tls',
      cert.key,
      cert.cert,
      '+cf',
      pki.ca.cert,
      '--require-peer-cert',
      '-aet',
      'RESEARCH',
    ];
    let pacs = await startStorescp(storescpArgs(pki.expiredServer), port, out);
    const node = await startNode({
      dir,
      csv,
      forward: [
        {
          name: 'research',
          aeTitle: 'RESEARCH',
          host: '127.0.0.1',
          port,
          tls: { caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: pki.client.key },
        },
      ],
    });
    const r = storescu(node.port, study);
    expect(r.status, r.output).toBe(0);
    await node.waitForLog(
      /forward destination research \(RESEARCH@127\.0\.0\.1:\d+, TLS\) is down: cannot connect to research \(RESEARCH@127\.0\.0\.1:\d+, TLS\): TLS handshake failed: the server's certificate has expired \(CERT_HAS_EXPIRED\)/,
      30_000,
    );
    await waitQueue(node, (c) => c.pending === study.length && c.dead === 0, 10_000, 'items queued');
    expect(receivedBySopInstance(out).size).toBe(0);
    // The PACS gets a valid certificate: the items go out on the next retry.
    await pacs.stop();
    pacs = await startStorescp(storescpArgs(pki.server), port, out);
    await waitQueue(node, (c) => c.delivered === study.length && c.pending === 0, 60_000, 'delivered');
    await node.waitForLog(/forward destination research .* is back after/);
    expect(receivedBySopInstance(out).size).toBe(study.length);
    expect(await node.stop()).toBe(0);
  });

  it.skipIf(!ORTHANC_BIN)('reaches Orthanc configured for DICOM TLS (it requires our client certificate)', async () => {
    const dir = testDir('fwd-orthanc');
    const orthanc = await startOrthanc(join(dir, 'orthanc'), 'ORTHANC', {
      DicomTlsEnabled: true,
      DicomTlsCertificate: pki.server.cert,
      DicomTlsPrivateKey: pki.server.key,
      DicomTlsTrustedCertificates: pki.ca.cert,
      DicomTlsRemoteCertificateRequired: true,
    });
    const node = await startNode({
      dir,
      csv,
      forward: [
        {
          name: 'orthanc',
          aeTitle: 'ORTHANC',
          host: '127.0.0.1',
          port: orthanc.dicomPort,
          tls: { caFile: pki.ca.cert, certFile: pki.client.cert, keyFile: pki.client.key },
        },
      ],
    });
    const r = storescu(node.port, study);
    expect(r.status, r.output).toBe(0);
    await waitQueue(node, (c) => c.delivered === study.length, 60_000, 'delivered to Orthanc');
    expect(await orthanc.get<string[]>('/instances')).toHaveLength(study.length);
    // A plain association to Orthanc's TLS port gets nowhere.
    const plain = storescu(orthanc.dicomPort, study.slice(0, 1), { calledAet: 'ORTHANC', timeoutMs: 15_000 });
    expect(plain.status).not.toBe(0);
    expect(await node.stop()).toBe(0);
    expect(node.logs()).not.toMatch(/\b(warn|error)\b/);
  });
});
