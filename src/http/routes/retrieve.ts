// The node's retrieve jobs (issue 17), for `dicom-deid retrieve` when a node runs and for the
// status page:
//   GET  /api/retrieve/jobs?limit=N       the newest jobs (counts, states, CSV line numbers)
//   GET  /api/retrieve/jobs/{id}          one job, with its progress while the node runs it
//   POST /api/retrieve/jobs               start (or continue) a job: { from, csv?, daysBefore?,
//                                         daysAfter?, modalities?, concurrency?, window?, dryRun?,
//                                         quietMs?, studyTimeoutMs?, pacsWaitMs?, maxAttempts? }
//   POST /api/retrieve/jobs/{id}/resume   run a paused or failed job again (pace and timers)
//   POST /api/retrieve/jobs/{id}/cancel   cancel a job for good ({})
// Access as the other changing routes (access.ts): JSON requests; loopback, or the token. No
// answer holds an identifier; the report (key material) is named by its path only.
import type { FastifyInstance } from 'fastify';
import { allow, who } from '../access.js';
import type { RetrieveResumeInput, RetrieveStartInput } from '../nodeApi.js';
import type { RouteContext } from '../server.js';

const whole = (minimum: number, maximum?: number) =>
  ({ type: 'integer', minimum, ...(maximum !== undefined ? { maximum } : {}) }) as const;
const ms = { type: 'number', minimum: 0 } as const;

const paceProperties = {
  concurrency: whole(1, 16),
  window: { type: 'string', minLength: 1, maxLength: 40 },
  quietMs: ms,
  studyTimeoutMs: ms,
  pacsWaitMs: ms,
  maxAttempts: whole(1),
} as const;

const startSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['from'],
  properties: {
    from: { type: 'string', minLength: 1, maxLength: 200 },
    csv: { type: 'string', minLength: 1, maxLength: 4096 },
    daysBefore: whole(0),
    daysAfter: whole(0),
    modalities: { type: 'array', maxItems: 64, items: { type: 'string', minLength: 1, maxLength: 16 } },
    dryRun: { type: 'boolean' },
    ...paceProperties,
  },
} as const;

const resumeSchema = { type: 'object', additionalProperties: false, properties: paceProperties } as const;
const emptySchema = { type: 'object', additionalProperties: false, properties: {} } as const;
const idParams = { type: 'object', required: ['id'], properties: { id: whole(1) } } as const;

/**
 * Registers the retrieve job routes above on the fastify instance, all with 'read' access (access.ts).
 * `limit` is clamped to 1..100 (default 10); ids and bodies are checked by fastify's JSON schema (400); a new
 * job answers 201, a continued one 200; ApiErrors (400, 404, 409, 503) become their status through the error
 * handler.
 */
export function retrieveRoutes(app: FastifyInstance, { api, policy }: RouteContext): void {
  app.get<{ Querystring: { limit?: string } }>('/api/retrieve/jobs', async (req, reply) => {
    if (!allow(req, reply, policy, 'read')) return reply;
    const limit = Math.min(100, Math.max(1, Number.parseInt(req.query.limit ?? '10', 10) || 10));
    return { jobs: await api.retrieveJobs(limit) };
  });
  app.get<{ Params: { id: number } }>(
    '/api/retrieve/jobs/:id',
    { schema: { params: idParams } },
    async (req, reply) => {
      if (!allow(req, reply, policy, 'read')) return reply;
      return api.retrieveJob(req.params.id);
    },
  );
  app.post<{ Body: RetrieveStartInput }>(
    '/api/retrieve/jobs',
    { schema: { body: startSchema } },
    async (req, reply) => {
      if (!allow(req, reply, policy, 'read')) return reply;
      const r = await api.startRetrieve(req.body, who(req, policy));
      return reply.code(r.resumed ? 200 : 201).send(r);
    },
  );
  app.post<{ Params: { id: number }; Body: RetrieveResumeInput }>(
    '/api/retrieve/jobs/:id/resume',
    { schema: { params: idParams, body: resumeSchema } },
    async (req, reply) => {
      if (!allow(req, reply, policy, 'read')) return reply;
      return api.resumeRetrieve(req.params.id, req.body ?? {}, who(req, policy));
    },
  );
  app.post<{ Params: { id: number } }>(
    '/api/retrieve/jobs/:id/cancel',
    { schema: { params: idParams, body: emptySchema } },
    async (req, reply) => {
      if (!allow(req, reply, policy, 'read')) return reply;
      return api.cancelRetrieve(req.params.id, who(req, policy));
    },
  );
}
