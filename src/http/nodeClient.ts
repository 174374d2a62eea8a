// A client of a running node's HTTP API, for commands that hand their work to the node
// (`dicom-deid retrieve` when `dicom-deid serve` runs). It reaches the node where its config says
// (httpHost, httpPort; a wildcard host through loopback) with the config's access token, and
// turns the API's answers into values or errors whose message is the node's one-line reason.
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

/** The node's HTTP base URL from a config: "http://127.0.0.1:11180" (wildcards via loopback). */
export function nodeHttpUrl(config: Pick<NodeConfig, 'httpHost' | 'httpPort'>): string {
  let host = config.httpHost;
  if (host === '0.0.0.0' || host === '') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.httpPort}`;
}

/**
 * JSON over HTTP (Node's fetch) to a running node's API, with the config's bearer token; every method rejects
 * with NodeHttpError (see request()).
 */
export class NodeClient {
  readonly url: string;
  private readonly token: string;

  /** `timeoutMs`: the longest one request may take. */
  constructor(
    config: Pick<NodeConfig, 'httpHost' | 'httpPort' | 'httpToken'>,
    private readonly timeoutMs = 15_000,
  ) {
    this.url = nodeHttpUrl(config);
    this.token = config.httpToken;
  }

  /**
   * One request; resolves with the parsed JSON answer. Throws NodeHttpError: status 0 with the
   * reason in words when the node cannot be reached, else the node's status and error message.
   */
  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.token !== '') headers.authorization = `Bearer ${this.token}`;
    if (method === 'POST') headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(this.url + path, {
        method,
        headers,
        ...(method === 'POST' ? { body: JSON.stringify(body ?? {}) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code;
      const why =
        cause === 'ECONNREFUSED'
          ? 'connection refused'
          : (e as Error).name === 'TimeoutError'
            ? `no answer within ${Math.round(this.timeoutMs / 1000)} s`
            : (cause ?? (e as Error).message);
      throw new NodeHttpError(0, `cannot reach the node's HTTP side at ${this.url} (${why})`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new NodeHttpError(
        res.status,
        `the node at ${this.url} answered ${res.status} without JSON: is it a dicom-deid node?`,
      );
    }
    if (!res.ok) {
      const error = (json as { error?: unknown }).error;
      throw new NodeHttpError(res.status, typeof error === 'string' ? error : `HTTP ${res.status}`);
    }
    return json as T;
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
