// Who may do what on the node's HTTP side.
//
// - /healthz and /readyz: anyone who reaches the port (probes; they reveal nothing).
// - The node bound to a loopback address (the default, 127.0.0.1): reading the status, studies,
//   queue and the quarantine *without* identifiers, replaying, retrying and C-ECHO need nothing
//   more (whoever reaches the port is on this machine). Two things always need the access token
//   (config httpToken / httpTokenFile, sent as `Authorization: Bearer <token>`): the quarantine
//   view *with* original identifiers (they are key material), and deleting (quarantined
//   instances, queue items of a removed destination). Without a configured token these answer
//   403 saying how to set one.
// - The node bound to any other address: every request but the probes needs the token (the
//   config refuses such a binding without one).
//
// Browsers: a request whose Host header is not the loopback address the node listens on is
// refused when bound to loopback (a DNS-rebinding page cannot reach it), and requests that change
// something must be JSON (`Content-Type: application/json`), which a page of another origin
// cannot send without a CORS preflight that this server never answers.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

export interface AccessPolicy {
  /** The configured token, '' when none. */
  token: string;
  /** The server listens on a loopback address. */
  loopback: boolean;
}

/** What a request may do. */
export type Need = 'open' | 'read' | 'token';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Whether the request carries the configured token (constant-time comparison). */
export function hasValidToken(req: FastifyRequest, policy: AccessPolicy): boolean {
  if (policy.token === '') return false;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return m !== null && timingSafeEqual(digest(m[1]!), digest(policy.token));
}

const LOOPBACK_HOST = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])(:\d+)?$/i;

/**
 * Checks a request against `need`; answers it (401/403/421) and returns false when refused.
 * `who` names the caller for logs: the remote address, and "with token" when it carried one.
 */
export function allow(req: FastifyRequest, reply: FastifyReply, policy: AccessPolicy, need: Need): boolean {
  if (need === 'open') return true;
  if (policy.loopback && !LOOPBACK_HOST.test(req.headers.host ?? '')) {
    void reply.code(421).send({ error: 'this node answers only requests addressed to its loopback address' });
    return false;
  }
  const valid = hasValidToken(req, policy);
  if (valid) return true;
  if (need === 'read' && policy.loopback) return true;
  if (policy.token === '') {
    void reply.code(403).send({
      error:
        'this needs the access token, and none is configured: set httpToken (or httpTokenFile) in the node config and restart',
    });
    return false;
  }
  void reply
    .code(401)
    .header('www-authenticate', 'Bearer realm="dicom-deid"')
    .send({ error: 'send the access token: Authorization: Bearer <token>' });
  return false;
}

/** How logs name the caller of an operation (address, and whether it proved the token). */
export function who(req: FastifyRequest, policy: AccessPolicy): string {
  return `HTTP ${req.ip}${hasValidToken(req, policy) ? ' (token)' : ''}`;
}
