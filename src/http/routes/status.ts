// GET /api/status: identity, uptime, the config summary (no secret), each component's status
// (the status contract), the page's totals (filed since start, held in quarantine) and the disks. GET /api/studies?limit=N: the most recently filed studies
// (research ID, new accession, shifted study date, modalities, instance count, forward state per
// destination). Nothing original in either.
import type { FastifyInstance } from 'fastify';
import { allow } from '../access.js';
import type { RouteContext } from '../server.js';

/**
 * Registers GET /api/status (identity, uptime in seconds, the node's and each component's status, the disks)
 * and GET /api/studies (`limit` clamped to 1..500, default 50) on the fastify instance, both with 'read'
 * access (access.ts).
 */
export function statusRoutes(app: FastifyInstance, { api, policy }: RouteContext): void {
  app.get('/api/status', async (req, reply) => {
    if (!allow(req, reply, policy, 'read')) return reply;
    const identity = api.identity();
    const status = api.status();
    return {
      ...identity,
      uptimeSeconds: Math.round((Date.now() - Date.parse(identity.startedAt)) / 1000),
      state: status.state,
      at: status.at,
      components: status.components,
      totals: await api.totals(),
      disks: await api.disks(),
    };
  });
  app.get<{ Querystring: { limit?: string } }>('/api/studies', async (req, reply) => {
    if (!allow(req, reply, policy, 'read')) return reply;
    const limit = Math.min(500, Math.max(1, Number.parseInt(req.query.limit ?? '50', 10) || 50));
    return { studies: await api.studies(limit) };
  });
}
