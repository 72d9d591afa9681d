/** A tiny JSON client for API tests: one call, parsed body, status and headers. */
// Tests read whatever JSON came back; assertions give it shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export interface ApiResponse<T = any> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

export type Requester = (
  method: string,
  path: string,
  options?: { body?: unknown; rawBody?: string; token?: string; headers?: Record<string, string> },
) => Promise<ApiResponse>;

/** Requests against a base URL over real HTTP. */
export function httpRequester(baseUrl: string): Requester {
  return async (method, path, options = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined;
    if (options.rawBody !== undefined) body = options.rawBody;
    else if (options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const res = await fetch(baseUrl + path, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON (metrics, docs page): keep the text
    }
    return { status: res.status, body: parsed, text, headers: res.headers };
  };
}
