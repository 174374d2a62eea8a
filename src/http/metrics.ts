// /metrics: the node's status (src/status.ts, through NodeApi) as Prometheus metrics, with
// prom-client. Counters and gauges are read from the status at each scrape (collect()); the two
// latency histograms are fed by the node's latency events. Labels hold component names,
// destination names, quarantine reasons, rejection reasons and folder names: never an identifier.
//
// Names (all prefixed dicom_deid_):
//   instances_received_total, instances_filed_total, instances_quarantined_total{reason},
//   instances_failed_total{stage="receive"|"processing"}, received_bytes_total,
//   associations_open, associations_total{result="accepted"|"rejected",reason},
//   connections_refused_total{reason="tls-handshake"|"too-many-from-address"},
//   slow_peers_cut_off_total,
//   ack_latency_seconds, processing_latency_seconds (histograms),
//   spool_backlog_instances, processing_backlog_instances,
//   forward_queue_depth{destination}, forward_dead_items{destination},
//   forward_delivered_total{destination}, destination_up{destination},
//   quarantine_instances{reason}, disk_free_bytes{folder}, disk_total_bytes{folder},
//   mapping_rows, mapping_last_reload_timestamp_seconds, mapping_reloads_total{result},
//   component_state{component,state}, info{version,ae_title}, plus prom-client's process_* and
//   nodejs_* defaults under the same prefix.
import client from 'prom-client';
import type { DestinationStatus } from '../forward/forwarderStatus.js';
import type { ComponentStatus } from '../status.js';
import type { NodeApi } from './nodeApi.js';

const P = 'dicom_deid_';
const STATES = ['starting', 'running', 'degraded', 'stopping', 'stopped', 'failed'] as const;

/** Seconds: acknowledgements take ~0.3-50 ms; processing from receipt to filed, ms to minutes. */
const ACK_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const PROCESSING_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/** A counter set from a total the node keeps (reset, then incremented by the total). */
function setCounter(c: client.Counter<string>, value: number, labels: Record<string, string> = {}): void {
  if (value > 0) c.inc(labels, value);
  else c.inc(labels, 0);
}

export interface NodeMetrics {
  registry: client.Registry;
  /** The metrics in Prometheus' text format. */
  text(): Promise<string>;
  contentType: string;
}

/** Builds the registry over `api` (one per server; nothing is registered globally). */
export function createMetrics(api: NodeApi): NodeMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: P });
  const counts = (c: ComponentStatus | undefined, key: string): number => c?.counts[key] ?? 0;
  const components = () => api.status().components;

  const counter = (name: string, help: string, labelNames: string[], collect: (m: client.Counter<string>) => void) =>
    new client.Counter({
      name: P + name,
      help,
      labelNames,
      registers: [registry],
      collect(this: client.Counter<string>) {
        this.reset();
        collect(this);
      },
    });
  const gauge = (
    name: string,
    help: string,
    labelNames: string[],
    collect: (m: client.Gauge<string>) => void | Promise<void>,
  ) =>
    new client.Gauge({
      name: P + name,
      help,
      labelNames,
      registers: [registry],
      async collect(this: client.Gauge<string>) {
        this.reset();
        await collect(this);
      },
    });

  const identity = api.identity();
  gauge('info', 'The node: dicom-deid version and AE title (always 1).', ['version', 'ae_title'], (m) =>
    m.set({ version: identity.version, ae_title: identity.aeTitle }, 1),
  );
  gauge('component_state', 'Each component state (1 for its current state).', ['component', 'state'], (m) => {
    for (const c of Object.values(components())) {
      if (!c) continue;
      for (const s of STATES) m.set({ component: c.name, state: s }, c.state === s ? 1 : 0);
    }
  });

  counter('instances_received_total', 'Instances received and acknowledged (durable in the spool).', [], (m) =>
    setCounter(m, counts(components().receiver, 'instancesStored')),
  );
  counter('instances_filed_total', 'Instances de-identified and filed since start.', [], (m) =>
    setCounter(m, counts(components().processing, 'filed')),
  );
  counter('instances_quarantined_total', 'Instances quarantined since start, by reason.', ['reason'], (m) => {
    const by = (components().processing?.details?.quarantinedByReason ?? {}) as Record<string, number>;
    for (const [reason, n] of Object.entries(by)) setCounter(m, n, { reason });
  });
  counter(
    'leak_guard_warnings_total',
    'Instances filed with a leak guard hit in a warn-only attribute (config leakGuardWarnOnly) since start.',
    [],
    (m) => setCounter(m, counts(components().processing, 'leakGuardWarned')),
  );
  counter(
    'instances_failed_total',
    'Failures: C-STOREs answered with a failure (receive), processing attempts that failed and will be retried (processing).',
    ['stage'],
    (m) => {
      setCounter(m, counts(components().receiver, 'instancesFailed'), { stage: 'receive' });
      setCounter(m, counts(components().processing, 'failed'), { stage: 'processing' });
    },
  );
  counter('received_bytes_total', 'Bytes read from DICOM associations.', [], (m) =>
    setCounter(m, counts(components().receiver, 'bytesReceived')),
  );
  gauge('associations_open', 'DICOM associations open now.', [], (m) =>
    m.set(counts(components().receiver, 'associationsOpen')),
  );
  counter('associations_total', 'DICOM associations: accepted, or rejected by reason.', ['result', 'reason'], (m) => {
    const r = components().receiver;
    setCounter(m, counts(r, 'associationsAccepted'), { result: 'accepted', reason: '' });
    for (const [k, v] of Object.entries(r?.counts ?? {})) {
      if (k.startsWith('associationsRejected.')) {
        setCounter(m, v, { result: 'rejected', reason: k.slice('associationsRejected.'.length) });
      }
    }
  });

  // Refused before any association: a TLS handshake or client certificate that failed (the
  // receiver's tlsRefused), or one address holding too many connections (connectionsDropped).
  counter(
    'connections_refused_total',
    'Connections refused before an association: failed TLS handshakes (tls-handshake), too many from one address (too-many-from-address).',
    ['reason'],
    (m) => {
      const r = components().receiver;
      setCounter(m, counts(r, 'tlsRefused'), { reason: 'tls-handshake' });
      setCounter(m, counts(r, 'connectionsDropped'), { reason: 'too-many-from-address' });
    },
  );
  counter(
    'slow_peers_cut_off_total',
    'Associations aborted because a message arrived too slowly (messageDeadlineSeconds, minReceiveBytesPerSecond).',
    [],
    (m) => setCounter(m, counts(components().receiver, 'slowPeersCutOff')),
  );

  const ack = new client.Histogram({
    name: P + 'ack_latency_seconds',
    help: 'C-STORE acknowledgement latency: last data fragment received to C-STORE-RSP sent.',
    buckets: ACK_BUCKETS,
    registers: [registry],
  });
  const processing = new client.Histogram({
    name: P + 'processing_latency_seconds',
    help: 'Receipt of an instance to its outcome (filed or quarantined).',
    buckets: PROCESSING_BUCKETS,
    registers: [registry],
  });
  api.onLatency((kind, ms) => (kind === 'ack' ? ack : processing).observe(ms / 1000));

  gauge('spool_backlog_instances', 'Acknowledged instances in the spool, not yet filed.', [], (m) =>
    m.set(components().spool?.backlog ?? 0),
  );
  gauge('processing_backlog_instances', 'Instances handed to processing and not yet released.', [], (m) =>
    m.set(components().processing?.backlog ?? 0),
  );

  const destinations = (): DestinationStatus[] =>
    (components().forwarder?.details as { destinations?: DestinationStatus[] } | undefined)?.destinations ?? [];
  gauge('forward_queue_depth', 'Forward queue items pending or in flight, per destination.', ['destination'], (m) => {
    for (const d of destinations()) m.set({ destination: d.name }, d.pending + d.inFlight);
  });
  gauge('forward_dead_items', 'Forward queue items dead (need a retry), per destination.', ['destination'], (m) => {
    for (const d of destinations()) m.set({ destination: d.name }, d.dead);
  });
  counter('forward_delivered_total', 'Instances delivered since start, per destination.', ['destination'], (m) => {
    for (const d of destinations()) setCounter(m, d.deliveredSinceStart, { destination: d.name });
  });
  gauge(
    'destination_up',
    'Destination reachable at its last round (1) or down (0); absent until the first round.',
    ['destination'],
    (m) => {
      for (const d of destinations())
        if (d.health !== 'unknown') m.set({ destination: d.name }, d.health === 'up' ? 1 : 0);
    },
  );

  gauge('quarantine_instances', 'Instances in the quarantine now, by reason.', ['reason'], async (m) => {
    for (const [reason, n] of Object.entries(await api.quarantineCounts())) m.set({ reason }, n);
  });
  gauge('disk_free_bytes', 'Free disk space for the node, per folder.', ['folder'], async (m) => {
    for (const d of await api.disks()) m.set({ folder: d.name }, d.freeBytes);
  });
  gauge('disk_total_bytes', 'Size of the disk of each folder.', ['folder'], async (m) => {
    for (const d of await api.disks()) m.set({ folder: d.name }, d.totalBytes);
  });

  gauge('mapping_rows', 'Rows of the mapping CSV in use.', [], (m) => m.set(counts(components().mapping, 'rows')));
  gauge('mapping_last_reload_timestamp_seconds', 'When the mapping in use was loaded (Unix time).', [], (m) => {
    const at = components().mapping?.details?.loadedAt;
    if (typeof at === 'string') m.set(Date.parse(at) / 1000);
  });
  counter(
    'mapping_reloads_total',
    'Mapping CSV reloads since start: taken, or refused (invalid edit).',
    ['result'],
    (m) => {
      setCounter(m, counts(components().mapping, 'reloads'), { result: 'taken' });
      setCounter(m, counts(components().mapping, 'refusedReloads'), { result: 'refused' });
    },
  );

  return { registry, text: () => registry.metrics(), contentType: registry.contentType };
}
