import { serve, type ServerType } from '@hono/node-server';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context } from 'hono';
import type { AddressInfo } from 'node:net';
import { createApiApp } from '../api/app.ts';
import type { ApiDeps } from '../../core/system.ts';

/** The caller's address: the socket's, or the first X-Forwarded-For hop behind a trusted proxy. */
export function nodeClientIp(trustProxy: boolean) {
  return (c: Context): string | null => {
    if (trustProxy) {
      const forwarded = c.req.header('x-forwarded-for')?.split(',')[0]?.trim();
      if (forwarded) return forwarded;
    }
    try {
      return getConnInfo(c).remote.address ?? null;
    } catch {
      return null;
    }
  };
}

/** Serves the control API on Node; resolves once listening, with the bound port. */
export function serveApi(
  deps: ApiDeps,
  options: { host: string; port: number; trustProxy: boolean },
): Promise<{ server: ServerType; port: number; close: () => Promise<void> }> {
  const app = createApiApp(deps, { clientIp: nodeClientIp(options.trustProxy) });
  return new Promise((resolve, reject) => {
    const server = serve(
      { fetch: app.fetch, hostname: options.host, port: options.port },
      (info: AddressInfo) => {
        resolve({
          server,
          port: info.port,
          close: () =>
            new Promise<void>((done) => {
              server.close(() => done());
              // Keep-alive sockets would hold close() open until they time out.
              (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
            }),
        });
      },
    );
    server.once('error', reject);
  });
}
