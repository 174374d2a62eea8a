// The node's HTTP side: the status page, the JSON API, /metrics and the probes, on fastify.
// Served by the node itself (DeidNode starts it after taking its locks), on config httpHost and
// httpPort (127.0.0.1:11180 by default). See access.ts for who may do what.
//
// The server is created in one place (createFastify): plain HTTP, or HTTPS (config httpTls) on
// the same BCP 195 profile as DICOM TLS (src/dimse/tls.ts), its certificate replaceable without a
// restart (setCredentials, on SIGHUP).
import type https from 'node:https';
import Fastify, { type FastifyInstance } from 'fastify';
import { bcp195Options } from '../dimse/tls.js';
import type { Logger } from '../log.js';
import type { AccessPolicy } from './access.js';
import { createMetrics } from './metrics.js';
import { ApiError, type NodeApi } from './nodeApi.js';
import { healthRoutes } from './routes/health.js';
import { pageRoutes } from './routes/page.js';
import { quarantineRoutes } from './routes/quarantine.js';
import { queueRoutes } from './routes/queue.js';
import { retrieveRoutes } from './routes/retrieve.js';
import { statusRoutes } from './routes/status.js';

export interface HttpServerOptions {
  host: string;
  /** 0: any free port (see HttpServer.port). */
  port: number;
  /** The access token ('' when none; required by the config for a non-loopback host). */
  token: string;
  loopback: boolean;
  logger: Logger;
  /** HTTPS (key and certificate, PEM; check them first with readTlsCredentials), when given; plain HTTP otherwise. */
  https?: HttpsCredentials;
}

/** The HTTPS certificate (PEM, with its chain) and its private key (PEM). */
export interface HttpsCredentials {
  key: string | Buffer;
  cert: string | Buffer;
}

export interface HttpServer {
  /** The bound port. */
  port: number;
  /** "http://127.0.0.1:11180" ("https://..." with HTTPS). */
  url: string;
  /**
   * HTTPS only: new connections use these (open ones keep theirs). Throws (OpenSSL's error) when
   * they cannot be used together: check them first with readTlsCredentials.
   */
  setCredentials?(credentials: HttpsCredentials): void;
  close(): Promise<void>;
}

/** Everything a route module needs. */
export interface RouteContext {
  api: NodeApi;
  policy: AccessPolicy;
  logger: Logger;
}

/** The one place the fastify instance is created (plain or HTTPS). */
function createFastify(o: HttpServerOptions): FastifyInstance {
  const common = {
    logger: false as const,
    bodyLimit: 64 * 1024,
  };
  return (o.https
    ? Fastify({ ...common, https: { ...bcp195Options(), ...o.https } })
    : Fastify(common)) as unknown as FastifyInstance;
}

/** Builds the server with every route (not listening yet); for tests and startHttpServer. */
export function buildHttpServer(api: NodeApi, o: HttpServerOptions): FastifyInstance {
  const app = createFastify(o);
  const ctx: RouteContext = { api, policy: { token: o.token, loopback: o.loopback }, logger: o.logger };
  const metrics = createMetrics(api);
  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('cache-control', 'no-store');
    return payload;
  });
  // Changes must be JSON requests: a form or a "simple" request from another origin cannot be
  // (it would need a CORS preflight, never answered here).
  app.addHook('preValidation', async (req, reply) => {
    if (
      req.method !== 'GET' &&
      req.method !== 'HEAD' &&
      !/^application\/json\b/i.test(req.headers['content-type'] ?? '')
    ) {
      return reply.code(415).send({ error: 'send a JSON request (Content-Type: application/json)' });
    }
  });
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).send({ error: err.message });
    const status = err.statusCode;
    if (status && status >= 400 && status < 500) return reply.code(status).send({ error: err.message.split('\n')[0] });
    // Our own failure: its code only in the log (a message could quote a path).
    o.logger.error('HTTP request failed', { code: err.code ?? err.name });
    return reply.code(500).send({ error: 'internal error (see the node log)' });
  });
  healthRoutes(app, ctx, metrics);
  statusRoutes(app, ctx);
  quarantineRoutes(app, ctx);
  queueRoutes(app, ctx);
  retrieveRoutes(app, ctx);
  pageRoutes(app, ctx);
  return app;
}

/**
 * Starts listening; rejects with the listen error (EADDRINUSE, EACCES, EADDRNOTAVAIL) when it
 * cannot.
 */
export async function startHttpServer(api: NodeApi, o: HttpServerOptions): Promise<HttpServer> {
  const app = buildHttpServer(api, o);
  await app.listen({ host: o.host, port: o.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : o.port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  const server: HttpServer = {
    port,
    url: `${o.https ? 'https' : 'http'}://${host}:${port}`,
    close: () => app.close(),
  };
  if (o.https) {
    server.setCredentials = (credentials) =>
      (app.server as https.Server).setSecureContext({ ...bcp195Options(), ...credentials });
  }
  return server;
}
