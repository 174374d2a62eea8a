// Probes and metrics: GET /healthz (200 while the process runs), GET /readyz (200 when the node
// can take work, else 503 with the reasons), GET /metrics (Prometheus text).
import type { FastifyInstance } from 'fastify';
import { allow } from '../access.js';
import type { NodeMetrics } from '../metrics.js';
import type { RouteContext } from '../server.js';

/**
 * Registers GET /healthz (always 200 {status:'ok'}), GET /readyz (200 or 503 with NodeApi.readiness's
 * reasons; open to anyone) and GET /metrics (prom-client text from `metrics`; 'read' access, access.ts) on
 * the fastify instance.
 */
export function healthRoutes(app: FastifyInstance, { api, policy }: RouteContext, metrics: NodeMetrics): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const r = await api.readiness();
    return reply.code(r.ready ? 200 : 503).send(r);
  });
  app.get('/metrics', async (req, reply) => {
    if (!allow(req, reply, policy, 'read')) return reply;
    return reply.header('content-type', metrics.contentType).send(await metrics.text());
  });
}
