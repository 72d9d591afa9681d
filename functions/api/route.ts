import type { z } from 'zod';
import type { Principal, RequestContext } from '../../core/deps.ts';
import type { Permission } from '../../core/roles.ts';
import type { ApiDeps } from '../../core/system.ts';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface RouteInput<B, Q> {
  deps: ApiDeps;
  principal: Principal;
  body: B;
  query: Q;
  params: Record<string, string>;
  ctx: RequestContext;
  /** The raw request, for handlers that negotiate (Accept) or stream; built on first read. */
  readonly request: Request;
}

/**
 * One API operation: the same record registers the Hono handler and writes its entry in
 * the OpenAPI document, so the document cannot drift from the routes.
 */
export interface RouteDef<B = unknown, Q = unknown> {
  method: Method;
  /** OpenAPI-style path: `/api/projects/{id}`. */
  path: string;
  summary: string;
  tag: string;
  /** false for signup, login and the health endpoints. */
  auth: boolean;
  /**
   * What the caller's role must allow (core/roles.ts), as the use case enforces it;
   * `signed-in` needs credentials but no role in an org, `anyone` not even those,
   * `operator` an operator of the installation (a person, whatever their org role). Stated
   * here for the OpenAPI document and for the role × endpoint test, which checks that
   * the core answers 403 exactly to the roles this excludes.
   */
  permission: Permission | 'signed-in' | 'anyone' | 'operator';
  body?: z.ZodType<B>;
  /**
   * The handler reads the raw body as a stream (a backup object): the request-size limit does
   * not apply, and the body is never buffered.
   */
  streamsBody?: true;
  query?: z.ZodType<Q>;
  /** Success status: 200, 201, 202 or 204. */
  status: 200 | 201 | 202 | 204;
  /** The JSON body of the reply; a Response is sent as it is (streams). */
  handle(input: RouteInput<B, Q>): Promise<unknown>;
}

/** Keeps B and Q inferred from the schemas while the list holds mixed routes. */
export const route = <B = undefined, Q = undefined>(def: RouteDef<B, Q>): RouteDef =>
  def as unknown as RouteDef;
