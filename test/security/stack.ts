/**
 * The real stack for the security replays: the self-hosted API with its workers on a fresh
 * PostgreSQL database, a real Caddy, and tenants deploying to the local Docker Engine.
 */
import { expect } from 'vitest';
import type { ReleaseStatus } from '../../core/models.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { dockerTarget, ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import type { SelfhostTestSettings } from '../support/selfhost-config.ts';
import type { Requester } from '../support/http.ts';

export interface Tenant {
  token: string;
  orgId: string;
  userId: string;
  projectId: string;
}

export interface ReleaseBody {
  id: string;
  status: ReleaseStatus;
  error: string | null;
  steps: { name: string; status: string; attempt: number; error: string | null }[];
}

export interface Stack {
  api: Awaited<ReturnType<typeof startSelfhostApi>>;
  caddy: TestCaddy;
  req: Requester;
  tenant(email: string): Promise<Tenant>;
  service(t: Tenant, name: string, body?: Record<string, unknown>): Promise<string>;
  deploy(t: Tenant, serviceId: string, image: string): Promise<string>;
  release(t: Tenant, id: string): Promise<ReleaseBody>;
  /** Polls until the release reaches one of `statuses`, or throws after `deadlineMs`. */
  until(t: Tenant, id: string, statuses: ReleaseStatus[], deadlineMs: number): Promise<ReleaseBody>;
  close(): Promise<void>;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startStack(settings: Partial<SelfhostTestSettings> = {}): Promise<Stack> {
  await ensureTestImages();
  const caddy = await startCaddy();
  const api = await startSelfhostApi({
    caddyAdminUrl: caddy.adminUrl,
    caddyServer: caddy.serverName,
    workers: true,
    ...settings,
  });
  const req = api.request;
  const orgs: string[] = [];
  const stack: Stack = {
    api,
    caddy,
    req,
    async tenant(email) {
      const s = await req('POST', '/api/auth/local/signup', {
        body: { email, password: 'correct horse battery' },
      });
      expect(s.status, s.text).toBe(201);
      const token = s.body.token as string;
      orgs.push(s.body.org.id);
      const project = await req('POST', '/api/projects', { token, body: { name: 'shop' } });
      expect(project.status, project.text).toBe(201);
      const node = await req('POST', '/api/nodes', {
        token,
        body: { name: 'local', dockerHost: dockerTarget.dockerHost, address: '127.0.0.1' },
      });
      expect(node.status, node.text).toBe(201);
      return { token, orgId: s.body.org.id, userId: s.body.user.id, projectId: project.body.id };
    },
    async service(t, name, body = {}) {
      const created = await req('POST', '/api/services', {
        token: t.token,
        body: {
          projectId: t.projectId,
          name,
          image: 'selfdevop-test/app:v1',
          containerPort: 8080,
          healthcheckPath: '/health',
          health: { intervalMs: 100, successes: 2, deadlineMs: 10_000, timeoutMs: 1_000 },
          warmSeconds: 0,
          drainSeconds: 1,
          ...body,
        },
      });
      expect(created.status, created.text).toBe(201);
      return created.body.id as string;
    },
    async deploy(t, serviceId, image) {
      const r = await req('POST', '/api/releases', { token: t.token, body: { serviceId, image } });
      expect(r.status, r.text).toBe(202);
      return r.body.id as string;
    },
    async release(t, id) {
      const r = await req('GET', `/api/releases/${id}`, { token: t.token });
      expect(r.status, r.text).toBe(200);
      return r.body as ReleaseBody;
    },
    async until(t, id, statuses, deadlineMs) {
      const end = Date.now() + deadlineMs;
      for (;;) {
        const r = await stack.release(t, id);
        if (statuses.includes(r.status)) return r;
        if (Date.now() > end)
          throw new Error(
            `release ${id} is ${r.status} after ${deadlineMs} ms, not ${statuses.join('|')}: ${r.error ?? ''}`,
          );
        await sleep(100);
      }
    },
    async close() {
      await api.close();
      await caddy.stop();
      for (const orgId of orgs) await removeContainersByLabel({ 'selfdevop.org': orgId });
    },
  };
  return stack;
}
