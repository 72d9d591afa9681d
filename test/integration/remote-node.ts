/**
 * The scenario both remote-node suites share (TLS and SSH): a control plane with workers and
 * a real Caddy, a signed-up org, one node registered through the API with its credentials,
 * and one service; deploys are followed to their end through the API.
 */
import http from 'node:http';
import { expect } from 'vitest';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import type { Requester } from '../support/http.ts';

export interface RemoteNodeScenario {
  api: ApiHarness & { url: string };
  req: Requester;
  token: string;
  nodeId: string;
  service: { id: string; host: string };
  /** Deploys `image` and waits for the release to end (completed, failed or rolled_back). */
  deploy(image: string): Promise<{
    status: string;
    error?: string;
    steps: { name: string; status: string; attempt: number }[];
  }>;
  /** `PATCH /api/nodes/{id}` with new credentials (`{tls}` or `{ssh}`). */
  rotate(credentials: Record<string, unknown>): Promise<void>;
  /** GET /version of the service through Caddy. */
  viaCaddy(): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

export async function startRemoteNodeScenario(options: {
  /** Names the org's user and the node. */
  name: string;
  dockerHost: string;
  /** The node's credentials as `POST /api/nodes` takes them: `{tls}` or `{ssh}`. */
  credentials: Record<string, unknown>;
  deployTimeoutMs: number;
}): Promise<RemoteNodeScenario> {
  await ensureTestImages();
  const caddy: TestCaddy = await startCaddy();
  const api = await startSelfhostApi({
    workers: true,
    caddyAdminUrl: caddy.adminUrl,
    caddyServer: caddy.serverName,
    release: { maxStepAttempts: 2, migrationTimeoutMs: 10_000 },
  });
  const req = api.request;
  let orgId: string | undefined;
  const close = async () => {
    await api.close();
    await caddy.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  };
  try {
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: `${options.name}@example.com`, password: 'correct horse battery' },
    });
    const token: string = s.body.token;
    orgId = s.body.org.id;
    const projectId = (await req('POST', '/api/projects', { token, body: { name: 'remote' } })).body
      .id;
    const node = await req('POST', '/api/nodes', {
      token,
      body: {
        name: options.name,
        dockerHost: options.dockerHost,
        address: '127.0.0.1',
        ...options.credentials,
      },
    });
    expect(node.status, node.text).toBe(201);
    const svc = await req('POST', '/api/services', {
      token,
      body: {
        projectId,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 2, deadlineMs: 8_000, timeoutMs: 1_000 },
        warmSeconds: 600,
        drainSeconds: 1,
      },
    });
    expect(svc.status, svc.text).toBe(201);
    const service = { id: svc.body.id as string, host: svc.body.hosts[0].host as string };
    const nodeId: string = node.body.id;
    return {
      api,
      req,
      token,
      nodeId,
      service,
      async deploy(image) {
        const res = await req('POST', '/api/releases', {
          token,
          body: { serviceId: service.id, image },
        });
        expect(res.status, res.text).toBe(202);
        const end = Date.now() + options.deployTimeoutMs;
        for (;;) {
          const r = await req('GET', `/api/releases/${res.body.id}`, { token });
          if (['completed', 'failed', 'rolled_back'].includes(r.body.status)) return r.body;
          if (Date.now() > end)
            throw new Error(
              `release ${res.body.id} still ${r.body.status} after ${options.deployTimeoutMs / 1000} s`,
            );
          await new Promise((x) => setTimeout(x, 100));
        }
      },
      async rotate(credentials) {
        const res = await req('PATCH', `/api/nodes/${nodeId}`, { token, body: credentials });
        expect(res.status, res.text).toBe(200);
      },
      viaCaddy: () =>
        new Promise((resolve, reject) => {
          const r = http.get(
            {
              host: '127.0.0.1',
              port: caddy.httpPort,
              path: '/version',
              headers: { host: service.host },
              agent: false,
            },
            (res) => {
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (c: string) => (body += c));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
            },
          );
          r.on('error', reject);
        }),
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
