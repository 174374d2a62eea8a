// A client of a running node's HTTP API, for commands that hand their work to the node
// (`dicom-deid retrieve` when `dicom-deid serve` runs). It reaches the node where its config says
// (httpHost, httpPort; a wildcard host through loopback) with the config's access token, and
// turns the API's answers into values or errors whose message is the node's one-line reason.
//
// With httpTls in the config it speaks HTTPS and trusts the certificate the config names
// (httpTls.cert, the one the node serves: it runs on this machine with this config), whatever
// its issuer or names, or else a certificate that chains to a public CA and names the host.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import tls, { type PeerCertificate } from 'node:tls';
import { describeSystemError } from '../errors.js';
import { describeTlsError } from '../dimse/tls.js';
import type { NodeConfig } from '../node/nodeConfig.js';
import type { RetrieveJobView, RetrieveResumeInput, RetrieveStartInput } from './nodeApi.js';

/** The node answered with an error (`status`: the HTTP status), or could not be reached (0). */
export class NodeHttpError extends Error {
  override name = 'NodeHttpError';
  /** `status`: the HTTP status the node answered, 0 when it could not be reached; `message`: one line. */
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** What /api/status tells a client about the node it reached. */
export interface NodeIdentityAnswer {
  aeTitle: string;
  pid: number;
  config: { port?: number; paths?: { db?: string } };
}

/**
 * The node's HTTP base URL from a config: "http://127.0.0.1:11180", "https://..." with httpTls
 * (wildcard hosts via loopback).
 */
export function nodeHttpUrl(config: Pick<NodeConfig, 'httpHost' | 'httpPort' | 'httpTls'>): string {
  let host = config.httpHost;
  if (host === '0.0.0.0' || host === '') host = '127.0.0.1';
  if (host === '::') host = '::1';
  const scheme = config.httpTls ? 'https' : 'http';
  return `${scheme}://${host.includes(':') ? `[${host}]` : host}:${config.httpPort}`;
}

/** How an HTTPS client trusts the node: its own certificate (pinned), or a public CA. */
interface NodeTrust {
  /** Trust anchors: the public CAs and the node's certificate file (its chain included). */
  ca: string[];
  /** SHA-256 fingerprint of the certificate the config names (X509Certificate form, "AB:CD:..."). */
  pinned: string;
  certPath: string;
}

/**
 * Reads the certificate the node serves (httpTls.cert) as the client's trust; throws
 * NodeHttpError (status 0) naming the file when it cannot be read or is no certificate.
 */
function nodeTrust(certPath: string): NodeTrust {
  let pem: string;
  let pinned: string;
  try {
    pem = readFileSync(certPath, 'latin1');
    pinned = new X509Certificate(pem).fingerprint256;
  } catch (e) {
    const why = (e as { code?: string }).code?.startsWith('ERR_') ? 'not a PEM certificate' : describeSystemError(e);
    throw new NodeHttpError(
      0,
      `cannot read the node's HTTPS certificate ${certPath} (httpTls.cert), which this command trusts: ${why}`,
    );
  }
  return { ca: [...tls.rootCertificates, pem], pinned, certPath };
}

/**
 * JSON over HTTP or HTTPS (node:http, node:https) to a running node's API, with the config's bearer
 * token; every method rejects with NodeHttpError (see request()).
 */
export class NodeClient {
  readonly url: string;
  private readonly token: string;
  private readonly certPath: string | undefined;
  private trust: NodeTrust | undefined;

  /** `timeoutMs`: the longest one request may take. */
  constructor(
    config: Pick<NodeConfig, 'httpHost' | 'httpPort' | 'httpToken' | 'httpTls'>,
    private readonly timeoutMs = 15_000,
  ) {
    this.url = nodeHttpUrl(config);
    this.token = config.httpToken;
    this.certPath = config.httpTls?.cert;
  }

  /**
   * One request; resolves with the parsed JSON answer. Throws NodeHttpError: status 0 with the
   * reason in words when the node cannot be reached (refused, no answer, an HTTPS certificate not
   * trusted, HTTP against HTTPS or the reverse), else the node's status and error message.
   */
  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.token !== '') headers.authorization = `Bearer ${this.token}`;
    const payload = method === 'POST' ? JSON.stringify(body ?? {}) : undefined;
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    let res: { status: number; text: string };
    try {
      res = await this.send(method, path, headers, payload);
    } catch (e) {
      throw new NodeHttpError(0, `cannot reach the node's HTTP side at ${this.url} (${this.unreachable(e)})`);
    }
    let json: unknown;
    try {
      json = JSON.parse(res.text);
    } catch {
      throw new NodeHttpError(
        res.status,
        `the node at ${this.url} answered ${res.status} without JSON: is it a dicom-deid node?`,
      );
    }
    if (res.status < 200 || res.status > 299) {
      const error = (json as { error?: unknown } | null)?.error; // a body of `null` has no error
      throw new NodeHttpError(res.status, typeof error === 'string' ? error : `HTTP ${res.status}`);
    }
    return json as T;
  }

  /** One exchange over node:http or node:https (for the TLS options fetch does not take). */
  private send(
    method: string,
    path: string,
    headers: Record<string, string>,
    payload: string | undefined,
  ): Promise<{ status: number; text: string }> {
    let options: https.RequestOptions = { method, headers, agent: false, signal: AbortSignal.timeout(this.timeoutMs) };
    if (this.certPath !== undefined) {
      this.trust ??= nodeTrust(this.certPath);
      const trust = this.trust;
      options = {
        ...options,
        ca: trust.ca,
        // The pinned certificate is a trust anchor of its own, whoever issued it.
        allowPartialTrustChain: true,
        // Any name will do for the very certificate the config names (reached as 127.0.0.1, it
        // may be issued for the host's DNS name); any other must name the host.
        checkServerIdentity: (host: string, cert: PeerCertificate) =>
          cert.fingerprint256 === trust.pinned ? undefined : tls.checkServerIdentity(host, cert),
      };
    }
    const send = this.certPath !== undefined ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = send(this.url + path, options, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (s: string) => (text += s));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** Why a request got no answer, in words naming the setting to look at. */
  private unreachable(e: unknown): string {
    if (e instanceof NodeHttpError) return e.message;
    const err = e as NodeJS.ErrnoException;
    if (err.name === 'AbortError' || err.name === 'TimeoutError')
      return `no answer within ${Math.round(this.timeoutMs / 1000)} s`;
    if (err.code === 'ECONNREFUSED') return 'connection refused';
    const tlsWords = describeTlsError(err, 'server');
    if (this.certPath !== undefined) {
      if (err.code === 'ERR_SSL_WRONG_VERSION_NUMBER' || err.code === 'EPROTO')
        return `no TLS handshake: the node serves plain HTTP, while this config has httpTls`;
      if (tlsWords) {
        return `its HTTPS certificate is not trusted: ${tlsWords}; it is not httpTls.cert ${this.certPath} (the node reads that file again on SIGHUP) and no public CA vouches for it`;
      }
    } else if (err.code === 'ECONNRESET') {
      return 'the node closed the connection: does it serve HTTPS (httpTls) while this config has no httpTls?';
    }
    return tlsWords ?? (err.code ? describeSystemError(err) : err.message);
  }

  /** GET /api/status: which node answered (AE title, pid, port, state path). */
  identity(): Promise<NodeIdentityAnswer> {
    return this.request('GET', '/api/status');
  }

  /** POST /api/retrieve/jobs: starts (or continues) a retrieve job on the node. */
  startRetrieve(input: RetrieveStartInput): Promise<{ job: RetrieveJobView; resumed: boolean }> {
    return this.request('POST', '/api/retrieve/jobs', input);
  }

  /** POST /api/retrieve/jobs/:id/resume with new pace and timers. */
  resumeRetrieve(id: number, input: RetrieveResumeInput): Promise<RetrieveJobView> {
    return this.request('POST', `/api/retrieve/jobs/${id}/resume`, input);
  }

  /** GET /api/retrieve/jobs?limit=: the `limit` most recent jobs, newest first. */
  async retrieveJobs(limit: number): Promise<RetrieveJobView[]> {
    return (await this.request<{ jobs: RetrieveJobView[] }>('GET', `/api/retrieve/jobs?limit=${limit}`)).jobs;
  }

  /** GET /api/retrieve/jobs/:id; NodeHttpError 404 when there is none. */
  retrieveJob(id: number): Promise<RetrieveJobView> {
    return this.request('GET', `/api/retrieve/jobs/${id}`);
  }

  /** POST /api/retrieve/jobs/:id/cancel. */
  cancelRetrieve(id: number): Promise<RetrieveJobView> {
    return this.request('POST', `/api/retrieve/jobs/${id}/cancel`, {});
  }
}
