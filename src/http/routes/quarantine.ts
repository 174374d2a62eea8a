// GET /api/quarantine: quarantined instances grouped by study and reason. With
// ?identifiers=1 and the access token, each group also shows the keys the mapping was tried with
// and the CSV row to add (key material: the only place the HTTP side shows original identifiers).
// POST /api/quarantine/replay and /api/quarantine/delete, body { item?, study?, reason? }: replay
// (file with the current mapping) or delete (audited; needs the token) the items named.
import type { FastifyInstance } from 'fastify';
import { allow, who } from '../access.js';
import type { QuarantineSelectionInput } from '../nodeApi.js';
import type { RouteContext } from '../server.js';

const selectionSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    item: { type: 'string', maxLength: 300 },
    study: { type: 'string', maxLength: 64 },
    reason: { type: 'string', maxLength: 64 },
  },
} as const;

/**
 * Registers the quarantine routes above on the fastify instance: the listing and replay need 'read' access,
 * identifiers and delete the token (access.ts). Bodies are checked by fastify's JSON schema (400); ApiErrors
 * of the NodeApi become their status through the server's error handler.
 */
export function quarantineRoutes(app: FastifyInstance, { api, policy }: RouteContext): void {
  app.get<{ Querystring: { identifiers?: string } }>('/api/quarantine', async (req, reply) => {
    const identifiers = req.query.identifiers === '1' || req.query.identifiers === 'true';
    if (!allow(req, reply, policy, identifiers ? 'token' : 'read')) return reply;
    const groups = await api.quarantine({ identifiers });
    const totals: Record<string, number> = {};
    for (const g of groups) totals[g.reason] = (totals[g.reason] ?? 0) + g.count;
    if (identifiers) reply.header('x-key-material', 'original identifiers: do not log or share');
    return { identifiers, totals, groups };
  });
  app.post<{ Body: QuarantineSelectionInput }>(
    '/api/quarantine/replay',
    { schema: { body: selectionSchema } },
    async (req, reply) => {
      if (!allow(req, reply, policy, 'read')) return reply;
      return api.replayQuarantine(req.body ?? {}, who(req, policy));
    },
  );
  app.post<{ Body: QuarantineSelectionInput }>(
    '/api/quarantine/delete',
    { schema: { body: selectionSchema } },
    async (req, reply) => {
      if (!allow(req, reply, policy, 'token')) return reply;
      return { deleted: await api.deleteQuarantine(req.body ?? {}, who(req, policy)) };
    },
  );
}
