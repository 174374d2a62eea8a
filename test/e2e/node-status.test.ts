// The node's status (DeidNode.status(), src/node/nodeStatus.ts): a real node, in this process,
// pushed to by storescu; then what each part reports is read back and checked against what was
// sent. The node is loaded from dist/ (its processing threads are dist/node/processingWorker.js;
// `npm test` builds first, and ensureBuilt() builds a missing dist/).
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ComponentStatus } from '../../src/status.js';
import { overallState } from '../../src/node/nodeStatus.js';
import { freePort, startStorescp, stopAllPeers, tempDir, waitFor } from '../helpers/forward-helpers.js';
import {
  collectingLogger,
  inProcessNodeConfig,
  loadDeidNode,
  makeSamples,
  storescuAsync,
  writeMappingCsv,
} from '../helpers/serve-helpers.js';

const running: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  for (const n of running.splice(0)) await n.stop();
  await stopAllPeers();
});

const uncompressed = (f: string) => !/JPEG|RLE|dfl|jpeg/.test(f);

describe('DeidNode.status()', () => {
  it('reports what the receiver, the spool, the processing, the mapping and the forwarder did with a storescu push', async () => {
    const DeidNode = await loadDeidNode();
    const dir = tempDir('node-status-');
    const csv = writeMappingCsv(join(dir, 'map.csv'), [{ mrn: 'MRN777', accession: '', researchId: 'RS_07' }]);
    const studyUid = '1.2.826.0.1.3680043.8.498.31';
    const matched = makeSamples(join(dir, 'in'), 'MRN777', 'ACC1', studyUid, 'm').filter(uncompressed);
    const stranger = makeSamples(join(dir, 'in2'), 'MRN999', 'ACC9', '1.2.826.0.1.3680043.8.498.32', 'q')
      .filter(uncompressed)
      .slice(0, 1);
    expect(matched.length).toBeGreaterThan(2);
    const research = await startStorescp(['-aet', 'RESEARCH'], await freePort(), tempDir('node-status-pacs-'));
    const config = inProcessNodeConfig(dir, csv, { forward: [`RESEARCH@127.0.0.1:${research.port}`] });
    const logger = collectingLogger();
    const node = new DeidNode(config, logger);
    running.push(node);
    expect(node.status()).toMatchObject({ state: 'starting', components: {} });
    const { port } = await node.start();

    const idle = node.status();
    expect(idle.state).toBe('running');
    expect(idle.components.receiver).toMatchObject({
      name: 'receiver',
      state: 'running',
      counts: { associationsAccepted: 0, instancesStored: 0, bytesReceived: 0 },
      details: { aeTitle: 'DEID', port },
    });
    expect(idle.components.spool).toMatchObject({
      state: 'running',
      counts: { segments: 1, liveRecords: 0, reserveBytes: 64 * 1024 * 1024, reserveMissingBytes: 0 },
    });
    expect(idle.components.processing).toMatchObject({ state: 'running', counts: { workers: 1, filed: 0 } });
    expect(idle.components.mapping).toMatchObject({ state: 'running', counts: { rows: 1, refusedReloads: 0 } });
    expect(idle.components.forwarder).toMatchObject({ name: 'forwarder', counts: { destinations: 1 } });

    // Two associations that store (one instance of them has no mapping row), one rejected.
    expect(await storescuAsync(port, matched, ['-xe'])).toBe(0);
    expect(await storescuAsync(port, stranger, ['-xe'])).toBe(0);
    expect(await storescuAsync(port, matched.slice(0, 1), [], 'NOTUS')).not.toBe(0);
    await node.whenIdle();
    const receiverCount = (key: string) => node.status().components.receiver?.counts[key];
    await waitFor(() => receiverCount('associationsOpen') === 0, 5000, 'associations closed');
    const delivered = () => node.status().components.forwarder?.counts.deliveredSinceStart;
    await waitFor(() => delivered() === matched.length, 20_000, 'filed instances forwarded');

    const s = node.status();
    const sent = matched.length + stranger.length;
    const sentBytes = [...matched, ...stranger].reduce((n, f) => n + statSync(f).size, 0);
    const { receiver, spool, processing, mapping, forwarder } = s.components as Record<string, ComponentStatus>;
    expect(s.state).toBe('running');
    expect(receiver!.counts).toMatchObject({
      associationsAccepted: 2,
      associationsReleased: 2,
      associationsAborted: 0,
      associationsRejected: 1,
      'associationsRejected.calledAeTitle': 1,
      instancesStored: sent,
      instancesFailed: 0,
      acknowledgements: sent,
    });
    expect(receiver!.counts.bytesReceived).toBeGreaterThan(sentBytes * 0.9); // data sets + PDU framing
    const { ackLatencyMsP50: p50, ackLatencyMsP95: p95, ackLatencyMsMax: max } = receiver!.counts;
    expect(p50).toBeGreaterThan(0);
    expect(p95).toBeGreaterThanOrEqual(p50!);
    expect(max).toBeGreaterThanOrEqual(p95!);
    expect(receiver!.backlog).toBe(0);
    expect(spool!.counts.recordsWritten! + spool!.counts.fallbackFilesWritten!).toBe(sent);
    expect(spool!.counts).toMatchObject({ liveRecords: 0, liveFiles: 0, associations: 0 });
    expect(spool!.backlog).toBe(0);
    expect(processing!.counts).toMatchObject({
      filed: matched.length,
      quarantined: 1,
      failed: 0,
      held: 0,
      processing: 0,
      awaitingCheckpoint: 0,
      restarts: 0,
    });
    expect(processing!.backlog).toBe(0);
    expect(mapping!.counts).toMatchObject({ rows: 1, reloads: 0 });
    expect(forwarder).toMatchObject({ state: 'running', counts: { destinationsDown: 0, dead: 0 } });

    // Plain data, and nothing identifying in it.
    const json = JSON.stringify(s);
    expect(JSON.parse(json)).toEqual(s);
    for (const id of ['MRN777', 'MRN999', 'ACC1', 'ACC9', studyUid]) expect(json).not.toContain(id);

    await node.stop();
    const stopped = node.status();
    expect(stopped.state).toBe('stopped');
    for (const c of Object.values(stopped.components)) expect(c?.state, c?.name).toBe('stopped');
    expect(logger.lines.some((l) => l.startsWith(`info: stopped {"received":${sent},"filed":${matched.length}`))).toBe(
      true,
    );
  });
});

describe('overallState', () => {
  const c = (state: ComponentStatus['state']): ComponentStatus => ({ name: 'x', state, since: '', counts: {} });
  it('is the most telling of its components’ states', () => {
    expect(overallState([])).toBe('starting');
    expect(overallState([c('running'), c('running')])).toBe('running');
    expect(overallState([c('running'), c('starting')])).toBe('starting');
    expect(overallState([c('running'), c('degraded'), c('stopping')])).toBe('degraded');
    expect(overallState([c('degraded'), c('failed')])).toBe('failed');
    expect(overallState([c('running'), c('stopped')])).toBe('stopping');
    expect(overallState([c('stopped'), c('stopped')])).toBe('stopped');
  });
});
