/**
 * The one client of Caddy's admin API: every read and write of Caddy config in the tree,
 * the edge router's, the control route's and the tests', goes through `CaddyAdmin`.
 * It is the only file that speaks HTTP to Caddy.
 */
import http from 'node:http';
import { Unavailable } from '../../core/errors.ts';

/** Caddy answered, but refused the change (bad config, conflicting id, lost race). */
export class CaddyRejected extends Error {
  readonly status: number;
  constructor(what: string, status: number, body: string) {
    super(`caddy refused ${what}: ${status} ${errorText(body)}`);
    this.name = 'CaddyRejected';
    this.status = status;
  }
}

export interface AdminResponse {
  status: number;
  /** Caddy's ETag of the config at the path read; send it back as If-Match to write it. */
  etag: string | undefined;
  body: string;
}

export interface CaddyAdminOptions {
  /** Per request; a config load with thousands of routes takes a while. */
  timeoutMs?: number;
  /** Attempts of a request whose connection was reset or refused (Caddy reloading). */
  maxAttempts?: number;
}

const defaultTimeoutMs = 30_000;
const defaultMaxAttempts = 5;

/** Caddy's message in an error body (`{"error": "…"}`), or the body itself. */
export function errorText(body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null && 'error' in parsed)
      return String(parsed.error);
  } catch {
    // not JSON: Caddy's message is the body itself
  }
  return body.trim() || 'no message';
}

/**
 * @example
 * const admin = new CaddyAdmin('http://127.0.0.1:2019');
 * const res = await admin.request('GET', '/config/apps/http/servers');
 */
export class CaddyAdmin {
  readonly url: URL;
  readonly #timeoutMs: number;
  readonly #maxAttempts: number;

  constructor(adminUrl: string, options: CaddyAdminOptions = {}) {
    this.url = new URL(adminUrl);
    this.#timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
    this.#maxAttempts = options.maxAttempts ?? defaultMaxAttempts;
  }

  get origin(): string {
    return this.url.origin;
  }

  /** Throws CaddyRejected unless `res` has `status`. */
  expect(what: string, res: AdminResponse, status = 200): void {
    if (res.status !== status) throw new CaddyRejected(what, res.status, res.body);
  }

  /** Replaces the whole running config (`POST /load`), e.g. a base config after a lost autosave. */
  async load(config: unknown): Promise<void> {
    this.expect('POST /load', await this.request('POST', '/load', config));
  }

  /** The JSON at a config path (`/config/...`), or undefined when Caddy has nothing there. */
  async read(path: string): Promise<{ value: unknown; etag: string | undefined } | undefined> {
    const res = await this.request('GET', path);
    // Caddy answers 400 "invalid traversal path" when a parent of the path is missing.
    if (res.status === 404 || (res.status === 400 && /invalid traversal path/.test(res.body)))
      return undefined;
    this.expect(`GET ${path}`, res);
    const value: unknown = JSON.parse(res.body);
    return value === null ? undefined : { value, etag: res.etag };
  }

  /**
   * Caddy restarts its admin listener on every config load, so a request that lands during
   * another writer's reload can see its connection reset or refused. Every call made here is
   * safe to repeat (PATCH and DELETE by position carry If-Match, loads are whole), so such
   * failures are retried a few times before the edge counts as down.
   */
  async request(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<AdminResponse> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.#requestOnce(method, path, body, headers);
      } catch (error) {
        const code = (error as { cause?: { code?: unknown } }).cause?.code;
        if (attempt >= this.#maxAttempts || (code !== 'ECONNRESET' && code !== 'ECONNREFUSED'))
          throw error;
        await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** (attempt - 1)));
      }
    }
  }

  // node:http, not fetch: Caddy 2.11's admin refuses requests carrying browser fetch
  // metadata (Sec-Fetch-*), which undici's fetch sends.
  #requestOnce(
    method: string,
    path: string,
    body: unknown,
    headers: Record<string, string>,
  ): Promise<AdminResponse> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname,
          port: this.url.port,
          method,
          path,
          headers: {
            ...headers,
            ...(payload === undefined
              ? {}
              : {
                  'Content-Type': 'application/json',
                  'Content-Length': Buffer.byteLength(payload),
                }),
          },
          timeout: this.#timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const etag = res.headers.etag;
            resolve({
              status: res.statusCode ?? 0,
              etag: typeof etag === 'string' ? etag : undefined,
              body: Buffer.concat(chunks).toString('utf8'),
            });
          });
          res.on('error', (e) => reject(this.#unavailable(e)));
        },
      );
      req.on('timeout', () =>
        req.destroy(new Error(`${method} ${path} got no answer within ${this.#timeoutMs} ms`)),
      );
      req.on('error', (e) => reject(this.#unavailable(e)));
      req.end(payload);
    });
  }

  #unavailable(cause: Error): Unavailable {
    const error = new Unavailable('caddy', `${this.url.origin}: ${cause.message}`);
    error.cause = cause;
    return error;
  }
}
