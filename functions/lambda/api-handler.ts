import type { Context } from 'hono';
import { getConnInfo, handle } from 'hono/aws-lambda';
import { createApiApp } from '../api/app.ts';
import type { ApiDeps } from '../../core/system.ts';

/** The caller's address as API Gateway saw it (requestContext.http.sourceIp). */
export function lambdaClientIp(c: Context): string | null {
  try {
    return getConnInfo(c).remote.address ?? null;
  } catch {
    return null;
  }
}

/**
 * The control API as a Lambda handler for API Gateway HTTP API (v2) events: the same Hono
 * app as the Node server, reached through hono's aws-lambda adapter.
 * @example export const handler = createApiHandler(system.api)
 */
export function createApiHandler(deps: ApiDeps) {
  return handle(createApiApp(deps, { clientIp: lambdaClientIp }));
}
