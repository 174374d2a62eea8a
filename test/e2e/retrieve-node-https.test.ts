// `dicom-deid retrieve` hands its work to a running node over the node's HTTP API; with httpTls
// that API is HTTPS, and the hand-off used to speak plain HTTP to it (and fail). The client now
// speaks HTTPS and trusts the certificate its config names (the one the node serves), whoever
// issued it and whatever names it carries; another certificate, or HTTP against HTTPS, is refused
// with one line saying which setting to look at. A real node process, certificates from
// test/helpers/tls-helpers.ts (made-up names).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nodeConfigFrom } from '../../src/commands/nodeOptions.js';
import { findRunningNode } from '../../src/commands/retrieveOnNode.js';
import { NodeClient, nodeHttpUrl } from '../../src/http/nodeClient.js';
import { freePort, rmrf, tempDir } from '../helpers/forward-helpers.js';
import { runCli, startNode, stopAllNodes, writeMappingCsv, type NodeProc } from '../helpers/serve-helpers.js';
import { makeTestPki, type TestPki } from '../helpers/tls-helpers.js';

let root = '';
let csv = '';
let pki: TestPki;

beforeAll(() => {
  root = tempDir('retrieve-https');
  csv = writeMappingCsv(join(root, 'map.csv'), [{ mrn: 'MRN7401', accession: 'ACC7401', researchId: 'RS_75' }]);
  pki = makeTestPki(join(root, 'pki'));
});

afterEach(async () => {
  await stopAllNodes();
});

afterAll(() => {
  rmrf(root);
});

/**
 * A node serving its HTTP side over HTTPS with `cert`/`key`, on fixed free ports; returns it and
 * the path of a config as another command on this machine would use it (the node's settings and
 * ports; `httpTls` replaced by `clientHttpTls` when given, `null` for none).
 */
async function httpsNode(
  name: string,
  server: { cert: string; key: string },
  clientHttpTls?: { cert: string; key: string } | null,
): Promise<{ node: NodeProc; clientConfig: string }> {
  const [port, httpPort] = [await freePort(), await freePort()];
  const node = await startNode({ dir: join(root, name), csv, port, config: { httpPort, httpTls: server } });
  expect(node.httpUrl).toBe(`https://127.0.0.1:${httpPort}`);
  const config = JSON.parse(readFileSync(node.configPath, 'utf8')) as Record<string, unknown>;
  if (clientHttpTls === null) delete config.httpTls;
  else if (clientHttpTls) config.httpTls = clientHttpTls;
  const clientConfig = join(root, `${name}-client.json`);
  writeFileSync(clientConfig, JSON.stringify(config));
  return { node, clientConfig };
}

const configOf = (path: string) => nodeConfigFrom({ config: path, _: [], $0: '' });

describe('retrieve hands off to a node whose HTTP side is HTTPS (httpTls)', () => {
  it('speaks HTTPS to it, trusting the certificate the config names; retrieve cancel goes through the node', async () => {
    const { node, clientConfig } = await httpsNode('ok', pki.server);
    const config = configOf(clientConfig);
    expect(nodeHttpUrl(config)).toBe(node.httpUrl);
    const identity = await new NodeClient(config).identity();
    expect(identity.aeTitle).toBe('DEID');
    expect(identity.pid).toBe(node.proc.pid);
    const found = await findRunningNode(config);
    expect(found?.refusal).toBeUndefined();
    expect(found?.client?.url).toBe(node.httpUrl);
    // The CLI: with no job, the node's own answer (not the state's "in <state>" one).
    const cancel = runCli(['retrieve', 'cancel', '--config', clientConfig]);
    expect(cancel.stderr).toContain(`no retrieve job to cancel on the node at ${node.httpUrl}`);
    expect(cancel.status).toBe(2);
  }, 60_000);

  it('trusts the very certificate the config names even when no CA vouches for it and it names another host', async () => {
    // CN=deid-client, signed by the test CA (which nobody here trusts), no 127.0.0.1 in it.
    const { node, clientConfig } = await httpsNode('pinned', pki.client);
    const identity = await new NodeClient(configOf(clientConfig)).identity();
    expect(identity.aeTitle).toBe('DEID');
    expect(identity.pid).toBe(node.proc.pid);
  }, 60_000);

  it('refuses, in one line, a node serving another certificate than the config names', async () => {
    const { node, clientConfig } = await httpsNode('other', pki.server, pki.otherClient);
    const found = await findRunningNode(configOf(clientConfig));
    expect(found?.client).toBeUndefined();
    expect(found?.refusal).toContain(
      `cannot reach the node's HTTP side at ${node.httpUrl} (its HTTPS certificate is not trusted: the server's`,
    );
    expect(found?.refusal).toContain(`it is not httpTls.cert ${pki.otherClient.cert}`);
    expect(found?.refusal).not.toContain('\n');
  }, 60_000);

  it('says so in one line when the config has no httpTls but the node serves HTTPS, or names a missing certificate', async () => {
    const { node, clientConfig } = await httpsNode('plain-client', pki.server, null);
    const plain = await findRunningNode(configOf(clientConfig));
    expect(plain?.refusal).toContain(
      `cannot reach the node's HTTP side at ${node.httpUrl.replace('https:', 'http:')} (the node closed the connection: does it serve HTTPS (httpTls) while this config has no httpTls?)`,
    );
    const missing = join(root, 'missing.pem');
    const config = {
      ...configOf(clientConfig),
      httpTls: { cert: missing, key: pki.server.key, sameAsDicomTls: false },
    };
    const refused = await findRunningNode(config);
    expect(refused?.refusal).toContain(
      `(cannot read the node's HTTPS certificate ${missing} (httpTls.cert), which this command trusts: not found)`,
    );
  }, 60_000);
});
