// GET /api/queue: the forward queue per destination (configured, or left by a removed one).
// POST /api/queue/retry { destination? }: dead items pending again. POST /api/queue/drop
// { destination }: delete the items of a destination no longer configured (needs the token).
// POST /api/destinations/{name}/echo: a C-ECHO to a configured destination.
import type { FastifyInstance } from 'fastify';
import { allow, who } from '../access.js';
import type { RouteContext } from '../server.js';

const destinationSchema = (required: boolean) =>
  ({
    type: 'object',
    additionalProperties: false,
    ...(required ? { required: ['destination'] } : {}),
    properties: { destination: { type: 'string', minLength: 1, maxLength: 200 } },
  }) as const;

/**
 * Registers the queue and echo routes above on the fastify instance: 'read' access except drop, which needs
 * the token (access.ts). Bodies are checked by fastify's JSON schema (400); ApiErrors (404 unknown
 * destination, 409 configured one) become their status through the error handler.
 */
export function queueRoutes(app: FastifyInstance, { api, policy }: RouteContext): void {
  app.get('/api/queue', async (req, reply) => {
    if (!allow(req, reply, policy, 'read')) return reply;
    return { destinations: await api.queue() };
  });
  app.post<{ Body: { destination?: string } }>(
    '/api/queue/retry',
    { schema: { body: destinationSchema(false) } },
    async (req, reply) => {
      if (!allow(req, reply, policy, 'read')) return reply;
      return { retried: await api.retryDead(req.body?.destination, who(req, policy)) };
    },
  );
  app.post<{ Body: { destination: string } }>(
    '/api/queue/drop',
    { schema: { body: destinationSchema(true) } },
    async (req, reply) => {
      if (!allow(req, reply, policy, 'token')) return reply;
      return { dropped: await api.dropDestination(req.body.destination, who(req, policy)) };
    },
  );
  app.post<{ Params: { name: string } }>('/api/destinations/:name/echo', async (req, reply) => {
    if (!allow(req, reply, policy, 'read')) return reply;
    return api.echo(req.params.name);
  });
}
