/**
 * The one harness for the security replays (test/security/*). Two shapes of the real
 * self-hosted stack:
 * - `startStack`: the API with its workers on a fresh PostgreSQL database, a real Caddy,
 *   and tenants deploying to the local Docker Engine (attacks on releases and the edge);
 * - `sharedDatabase` + `startApiProcess`: API processes of their own on one migrated
 *   database (attacks on counters and caches that several processes must share).
 * `test/security/stack.ts` re-exports this file, so older imports keep working.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { migrate } from '../../../adapters/db/migrator.ts';
import { ensureKeyFile } from '../../../adapters/vault/aes-file.ts';
import type { ReleaseStatus } from '../../../core/models.ts';
import { startSelfhostApi } from '../../support/api.ts';
import { startCaddy, type TestCaddy } from '../../support/caddy.ts';
import { createTestDatabase } from '../../support/db.ts';
import { dockerTarget, ensureTestImages, removeContainersByLabel } from '../../support/docker.ts';
import { httpRequester, type Requester } from '../../support/http.ts';
import type { SelfhostTestSettings } from '../../support/selfhost-config.ts';

// ---------------------------------------------------------------- API processes on one database

const serverScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'api-server.ts');

export interface ApiProcess {
  url: string;
  request: Requester;
  stop(): Promise<void>;
}

/** A migrated database and the settings every API process on it shares (one JWT secret). */
export async function sharedDatabase(
  overrides: Partial<SelfhostTestSettings> = {},
): Promise<{ settings: SelfhostTestSettings; drop(): Promise<void> }> {
  const db = await createTestDatabase('security');
  await migrate(db.url);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-sec-'));
  const encryptionKeyFile = path.join(dir, 'encryption.key');
  await ensureKeyFile(encryptionKeyFile);
  const settings: SelfhostTestSettings = {
    databaseUrl: db.url,
    jwtSecret: randomBytes(32).toString('base64url'),
    encryptionKeyFile,
    signupMode: 'open',
    edgeDomain: 'localhost',
    caddyAdminUrl: 'http://127.0.0.1:1',
    maxBodyBytes: 256 * 1024,
    dbPoolMax: 5,
    version: 'test',
    bcryptCost: 4,
    queue: { pollingIntervalSeconds: 0.5, retryDelaySeconds: 1 },
    edgeDns: { listen: '127.0.0.1:0', refreshMs: 100 },
    ...overrides,
  } as SelfhostTestSettings;
  return {
    settings,
    async drop() {
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Starts an API process on the shared settings; it trusts X-Forwarded-For, so tests pick sources. */
export async function startApiProcess(settings: SelfhostTestSettings): Promise<ApiProcess> {
  const child: ChildProcess = spawn(process.execPath, [serverScript], {
    env: { ...process.env, SDO_API_SETTINGS: JSON.stringify(settings) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`API process did not start: ${stderr}`)),
      30_000,
    );
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`API process exited with ${code}: ${stderr}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    request: httpRequester(url),
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A source address, as a trusted proxy would report it. */
export const from = (ip: string) => ({ 'x-forwarded-for': ip });

// ---------------------------------------------------------------- one API, its workers, Caddy and Docker

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
