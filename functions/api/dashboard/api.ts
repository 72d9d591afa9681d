import type { Context } from 'hono';
import { getCookie } from 'hono/cookie';
import type { Page } from '../../../core/models.ts';

/** How the dashboard reaches the public API: in process, through the same Hono app. */
export type ApiFetch = (request: Request, env: unknown) => Response | Promise<Response>;

export const sessionCookie = 'sdo_session';
export const orgCookie = 'sdo_org';

/** An API error reply, kept as the API worded it. */
export class ApiFailure extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * The dashboard's API client for one browser request: the user's session token from the
 * HttpOnly cookie becomes the bearer token, the org cookie becomes X-Org-Id, and the call
 * goes through the API app itself, so the dashboard can do nothing the API would refuse.
 */
export class DashboardApi {
  private readonly c: Context;
  private readonly fetchApi: ApiFetch;
  readonly token: string | undefined;
  orgId: string | undefined;

  constructor(
    c: Context,
    fetchApi: ApiFetch,
    options: { token?: string; orgId?: string | null } = {},
  ) {
    this.c = c;
    this.fetchApi = fetchApi;
    this.token = options.token ?? getCookie(c, sessionCookie);
    this.orgId = options.orgId === null ? undefined : (options.orgId ?? getCookie(c, orgCookie));
  }

  /** The raw API response (for streams); headers carry the caller's credentials. */
  raw(
    method: string,
    path: string,
    init: {
      body?: unknown;
      /** A body passed on as a stream (a backup object), never read here. */
      stream?: ReadableStream<Uint8Array> | null;
      headers?: Record<string, string>;
      org?: string | null;
    } = {},
  ) {
    const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const org = init.org === null ? undefined : (init.org ?? this.orgId);
    if (org) headers['x-org-id'] = org;
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    if (init.stream) headers['content-type'] = 'application/octet-stream';
    // The login rate limiter keys on the caller's address; behind a trusted proxy it reads this.
    const forwarded = this.c.req.header('x-forwarded-for');
    if (forwarded) headers['x-forwarded-for'] = forwarded;
    const request = new Request(new URL(path, this.c.req.url), {
      method,
      headers,
      body: init.stream ?? (init.body === undefined ? undefined : JSON.stringify(init.body)),
      signal: this.c.req.raw.signal,
      ...(init.stream ? { duplex: 'half' } : {}),
    } as RequestInit);
    // The same env (Node's incoming socket, the Lambda event) so the API sees the real caller.
    return this.fetchApi(request, this.c.env);
  }

  // Replies are JSON of the shapes API.md documents; each view states what it reads.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async call<T = any>(
    method: string,
    path: string,
    body?: unknown,
    options: { org?: string | null } = {},
  ): Promise<T> {
    const res = await this.raw(method, path, { body, org: options.org });
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    if (!res.ok) {
      const error = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
      throw new ApiFailure(
        res.status,
        error?.code ?? 'http_error',
        error?.message ?? `the API answered ${res.status}`,
      );
    }
    return parsed as T;
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.call<T>('POST', path, body);
  }

  /** Every item of a paginated collection, bounded to 10 pages of 200. */
  async all<T>(path: string): Promise<T[]> {
    const items: T[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 10; i++) {
      const sep = path.includes('?') ? '&' : '?';
      const page: Page<T> = await this.get(
        `${path}${sep}limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      items.push(...page.items);
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    return items;
  }
}
