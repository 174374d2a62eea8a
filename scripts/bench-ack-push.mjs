// Driver of scripts/bench-node.sh (CONVERT=1): pushes Part 10 files to a C-STORE SCP on one
// association, as stored, with a built checkout's SCU (dist/), and times each C-STORE from its
// request to its response: what a modality waits for each acknowledgement. Prints one JSON line:
// seconds, files acknowledged, and the latency percentiles in ms (p50, p95, p99, max).
//   usage: node bench-ack-push.mjs <dist dir> <port> <called AE title> <file with one path per line>
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [dist, port, calledAeTitle, list] = process.argv.slice(2);
const load = (p) => import(pathToFileURL(join(resolve(dist), p)).href);
const { ScuAssociation } = await load('dimse/scu/association.js');
const { cStore } = await load('dimse/scu/cStore.js');
const { openFileDataSet } = await load('dimse/scu/dataSetSource.js');
const { readP10Header } = await load('dimse/part10.js');

const files = readFileSync(list, 'utf8').split('\n').filter(Boolean);
const headers = files.map((f) => readP10Header(f));
const contexts = [...new Set(headers.map((h) => `${h.sopClassUid}|${h.transferSyntaxUid}`))].map((k) => {
  const [abstractSyntaxUid, ts] = k.split('|');
  return { abstractSyntaxUid, transferSyntaxUids: [ts] };
});
const t0 = performance.now();
const association = await ScuAssociation.open({
  host: '127.0.0.1',
  port: Number(port),
  callingAeTitle: 'BENCH',
  calledAeTitle,
  presentationContexts: contexts,
});
const latencies = [];
for (const [i, h] of headers.entries()) {
  const ctx = association.acceptedContext(h.sopClassUid, h.transferSyntaxUid);
  if (!ctx) throw new Error(`not accepted: ${h.sopClassUid} in ${h.transferSyntaxUid}`);
  const dataSet = await openFileDataSet(files[i], h.dataSetOffset, h.fileSize - h.dataSetOffset);
  const start = performance.now();
  const rsp = await cStore(association, {
    contextId: ctx.id,
    sopClassUid: h.sopClassUid,
    sopInstanceUid: h.sopInstanceUid,
    dataSet,
  });
  latencies.push(performance.now() - start);
  await dataSet.close();
  if (rsp.status !== 0) throw new Error(`C-STORE status 0x${rsp.status.toString(16)}`);
}
await association.release();
const seconds = (performance.now() - t0) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] * 10) / 10;
process.stdout.write(
  JSON.stringify({
    seconds,
    acknowledged: latencies.length,
    p50: pct(0.5),
    p95: pct(0.95),
    p99: pct(0.99),
    max: pct(1),
  }) + '\n',
);
