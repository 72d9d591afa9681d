/**
 * Turns the API suite's requests into API Gateway HTTP API (payload v2.0) events, calls a
 * Lambda handler with them, and turns its results back into responses.
 */
import { randomUUID } from 'node:crypto';
import type { ApiResponse, Requester } from '../support/http.ts';

export interface LambdaHttpResult {
  statusCode: number;
  headers?: Record<string, string | number | boolean>;
  multiValueHeaders?: Record<string, string[]>;
  cookies?: string[];
  body: string;
  isBase64Encoded: boolean;
}

export type LambdaHttpHandler = (
  event: ProxyEventV2,
  context?: unknown,
) => Promise<LambdaHttpResult>;

export interface ProxyEventV2 {
  version: '2.0';
  routeKey: string;
  rawPath: string;
  rawQueryString: string;
  cookies?: string[];
  headers: Record<string, string>;
  queryStringParameters?: Record<string, string>;
  requestContext: {
    accountId: string;
    apiId: string;
    domainName: string;
    domainPrefix: string;
    http: { method: string; path: string; protocol: string; sourceIp: string; userAgent: string };
    requestId: string;
    routeKey: string;
    stage: string;
    time: string;
    timeEpoch: number;
  };
  body?: string;
  isBase64Encoded: boolean;
}

/** The v2 event API Gateway would send for this request. */
export function toProxyEventV2(
  method: string,
  pathAndQuery: string,
  headers: Record<string, string>,
  body: string | undefined,
  sourceIp = '198.51.100.7',
): ProxyEventV2 {
  const url = new URL(pathAndQuery, 'https://api.example.com');
  const lower: Record<string, string> = {
    host: 'api.example.com',
    'user-agent': 'selfdevop-tests',
  };
  // API Gateway lowercases header names and joins repeated values with commas.
  for (const [k, v] of Object.entries(headers))
    lower[k.toLowerCase()] =
      lower[k.toLowerCase()] && k.toLowerCase() !== 'host' ? `${lower[k.toLowerCase()]},${v}` : v;
  if (body !== undefined) lower['content-length'] = String(Buffer.byteLength(body));
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = query[k] === undefined ? v : `${query[k]},${v}`;
  const now = new Date();
  const cookies = lower.cookie?.split(/;\s*/);
  delete lower.cookie;
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    ...(cookies ? { cookies } : {}),
    headers: lower,
    ...(url.search ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: '111122223333',
      apiId: 'a1b2c3d4e5',
      domainName: 'api.example.com',
      domainPrefix: 'api',
      http: {
        method,
        path: url.pathname,
        protocol: 'HTTP/1.1',
        sourceIp,
        userAgent: lower['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey: '$default',
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    ...(body !== undefined ? { body: Buffer.from(body).toString('base64') } : {}),
    // API Gateway sends bodies it does not know to be text as base64; sending every body
    // that way makes the adapter's decoding part of what is tested.
    isBase64Encoded: body !== undefined,
  };
}

/** A Requester for the API suite that goes through a Lambda handler instead of a socket. */
export function lambdaRequester(handler: LambdaHttpHandler): Requester {
  return async (method, path, options = {}) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined;
    if (options.rawBody !== undefined) body = options.rawBody;
    else if (options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const result = await handler(toProxyEventV2(method, path, headers, body));
    const responseHeaders = new Headers();
    for (const [k, v] of Object.entries(result.headers ?? {})) responseHeaders.set(k, String(v));
    for (const [k, values] of Object.entries(result.multiValueHeaders ?? {}))
      for (const v of values) responseHeaders.append(k, v);
    for (const c of result.cookies ?? []) responseHeaders.append('set-cookie', c);
    const text = result.isBase64Encoded
      ? Buffer.from(result.body, 'base64').toString('utf8')
      : result.body;
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      // not JSON (metrics, docs page): keep the text
    }
    const response: ApiResponse = {
      status: result.statusCode,
      body: parsed,
      text,
      headers: responseHeaders,
    };
    return response;
  };
}
