/**
 * The control API's behaviour, written once against a Requester so it can run against
 * every way a request reaches the app (the Node server here; the Lambda handler with
 * API Gateway v2 events in cloud mode).
 */
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestPki, type TestPki } from '../support/docker-tls.ts';
import type { Requester } from '../support/http.ts';

export interface ApiHarness {
  request: Requester;
  /** Every JSON log line the app wrote so far. */
  logLines(): string[];
  /** HS256 secret the app signs sessions with, to forge tokens for negative tests. */
  jwtSecret: string;
  close(): Promise<void>;
}

const password = 'correct horse battery';
let counter = 0;
const uniqueEmail = () => `user${Date.now()}${++counter}@example.com`;

const b64url = (o: unknown) =>
  Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');
function hs256(
  secret: string,
  payload: Record<string, unknown>,
  header: Record<string, unknown> = { alg: 'HS256', typ: 'JWT' },
) {
  const unsigned = `${b64url(header)}.${b64url(payload)}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

/** An OpenSSH public key line (`ssh-ed25519 <base64 blob>`) of a fresh key, as ssh-keyscan prints. */
function sshPublicKeyLine(): string {
  const spki = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' });
  const field = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  return `ssh-ed25519 ${Buffer.concat([field(Buffer.from('ssh-ed25519')), field(spki.subarray(-32))]).toString('base64')}`;
}

export function runApiSuite(
  name: string,
  start: (opts: { signupMode: 'open' | 'first-user' }) => Promise<ApiHarness>,
) {
  describe(`control API (${name})`, () => {
    let api: ApiHarness;
    let req: Requester;
    // Org A: an owner with a session, plus keys of each role. Org B: another owner.
    let a: { token: string; orgId: string; userId: string };
    let b: { token: string; orgId: string };
    const keys: Record<string, string> = {};

    async function signup(email = uniqueEmail()) {
      const res = await req('POST', '/api/auth/local/signup', { body: { email, password } });
      expect(res.status, res.text).toBe(201);
      return {
        token: res.body.token as string,
        orgId: res.body.org.id as string,
        userId: res.body.user.id as string,
        email,
      };
    }

    beforeAll(async () => {
      api = await start({ signupMode: 'open' });
      req = api.request;
      a = await signup();
      b = await signup();
      for (const role of ['admin', 'deployer', 'viewer'] as const) {
        const res = await req('POST', `/api/orgs/${a.orgId}/api-keys`, {
          token: a.token,
          body: { name: `k-${role}`, role },
        });
        expect(res.status, res.text).toBe(201);
        keys[role] = res.body.key;
      }
    });
    afterAll(async () => api?.close());

    describe('health and meta', () => {
      it('answers /health and /health/ready', async () => {
        expect((await req('GET', '/health')).body).toMatchObject({ status: 'ok' });
        const ready = await req('GET', '/health/ready');
        expect(ready.status).toBe(200);
        expect(ready.body.checks).toMatchObject({ database: 'ok', queue: 'ok' });
      });

      it('serves Prometheus metrics that count requests', async () => {
        await req('GET', '/health');
        await req('PROPFIND' as 'GET', '/health');
        const res = await req('GET', '/metrics');
        expect(res.status).toBe(200);
        expect(res.text).toMatch(/selfdevop_http_requests_total\{[^}]*route="\/health"/);
        // A made-up method is counted, under one label rather than a series of its own.
        expect(res.text).toMatch(
          /selfdevop_http_requests_total\{method="OTHER",route="[^"]+",status="404"\}/,
        );
        expect(res.text).not.toContain('PROPFIND');
      });

      it('serves an OpenAPI 3.1 document covering the routes, and a docs page', async () => {
        const doc = (await req('GET', '/openapi.json')).body;
        expect(doc.openapi).toBe('3.1.0');
        for (const p of [
          '/api/auth/local/signup',
          '/api/projects',
          '/api/services',
          '/api/nodes',
          '/api/orgs/{orgId}/api-keys',
          '/api/webhooks/{id}/test',
          '/api/webhooks/{id}/deliveries',
        ]) {
          expect(doc.paths[p], p).toBeDefined();
        }
        const serviceBody =
          doc.paths['/api/services'].post.requestBody.content['application/json'].schema;
        // A web service needs its port (the schema's refinement says so, with a 400 naming
        // it); a worker (kind: worker) has none, so the document lists it as optional.
        expect(Object.keys(serviceBody.properties)).toEqual(
          expect.arrayContaining(['containerPort', 'kind', 'workerHealth']),
        );
        // An image, or a git source to build it from (one of them, checked by the use case).
        expect(Object.keys(serviceBody.properties)).toEqual(
          expect.arrayContaining(['image', 'git']),
        );
        expect(doc.paths['/api/services/{id}'].patch).toBeDefined();
        expect(doc.paths['/api/services/{id}/deploy-key'].post).toBeDefined();
        const docs = await req('GET', '/docs');
        expect(docs.status).toBe(200);
        expect(docs.text).toContain('/openapi.json');
      });

      it('gives every response a request id, and reuses a sane incoming one', async () => {
        const res = await req('GET', '/health');
        expect(res.headers.get('x-request-id')).toMatch(/.+/);
        const echoed = await req('GET', '/health', {
          headers: { 'x-request-id': 'trace-abc-123' },
        });
        expect(echoed.headers.get('x-request-id')).toBe('trace-abc-123');
        const line = api.logLines().find((l) => l.includes('trace-abc-123'));
        expect(line && JSON.parse(line)).toMatchObject({ requestId: 'trace-abc-123', status: 200 });
      });

      it('serves the dashboard, counted under its own route patterns, with the JSON 404 for a method it lacks', async () => {
        const login = await req('GET', '/dashboard/login');
        expect(login.status).toBe(200);
        expect(login.text).toContain('<form');
        expect(login.headers.get('x-request-id')).toMatch(/.+/);
        const put = await req('PUT', '/dashboard/login');
        expect(put.status).toBe(404);
        expect(put.body.error.code).toBe('route_not_found');
        const metrics = await req('GET', '/metrics');
        expect(metrics.text).toMatch(
          /selfdevop_http_requests_total\{[^}]*route="\/dashboard\/login"[^}]*status="200"/,
        );
        expect(metrics.text).toMatch(
          /selfdevop_http_requests_total\{[^}]*route="\/dashboard\/\*"[^}]*status="404"/,
        );
      });

      it('answers unknown routes with a JSON 404', async () => {
        const res = await req('GET', '/api/nope');
        expect(res.status).toBe(404);
        expect(res.body.error.code).toBe('route_not_found');
      });
    });

    describe('signup and login', () => {
      it('signs up a user who owns a new org', async () => {
        const email = uniqueEmail();
        const res = await req('POST', '/api/auth/local/signup', { body: { email, password } });
        expect(res.status).toBe(201);
        expect(res.body).toMatchObject({
          user: { email },
          org: { id: expect.any(String), name: expect.any(String) },
        });
        const me = await req('GET', '/api/me', { token: res.body.token });
        expect(me.body).toMatchObject({
          orgId: res.body.org.id,
          role: 'owner',
          userId: res.body.user.id,
        });
      });

      it('refuses a duplicate email with 409, case-insensitively, without naming it', async () => {
        const email = uniqueEmail();
        await signup(email);
        const res = await req('POST', '/api/auth/local/signup', {
          body: { email: email.toUpperCase(), password },
        });
        expect(res.status).toBe(409);
        expect(res.body.error.code).toBe('signup_refused');
        expect(res.text.toLowerCase()).not.toContain(email.toLowerCase());
      });

      it.each([
        [{ email: 'not-an-email', password }, 'email'],
        [{ email: uniqueEmail(), password: 'short' }, 'password'],
        [{ email: uniqueEmail(), password: 'x'.repeat(73) }, 'password'],
        [{ email: uniqueEmail() }, 'password'],
        [{ email: 42, password }, 'email'],
        [{ email: uniqueEmail(), password, admin: true }, 'admin'],
      ])('rejects %j with a 400 naming %s', async (body, field) => {
        const res = await req('POST', '/api/auth/local/signup', { body });
        expect(res.status).toBe(400);
        expect(res.body.error.message).toContain(field);
      });

      it('logs in with the right password and refuses a wrong one or an unknown user with 401', async () => {
        const u = await signup();
        const ok = await req('POST', '/api/auth/local/login', {
          body: { email: u.email, password },
        });
        expect(ok.status).toBe(200);
        expect((await req('GET', '/api/me', { token: ok.body.token })).status).toBe(200);
        const wrong = await req('POST', '/api/auth/local/login', {
          body: { email: u.email, password: 'wrong password' },
        });
        expect(wrong.status).toBe(401);
        expect(wrong.body.error.code).toBe('invalid_credentials');
        const unknown = await req('POST', '/api/auth/local/login', {
          body: { email: uniqueEmail(), password },
        });
        expect(unknown.status).toBe(401);
        expect(unknown.body.error.message).toBe(wrong.body.error.message);
      });

      it('rate-limits login per account with a clear 429 and Retry-After', async () => {
        const u = await signup();
        const statuses: number[] = [];
        for (let i = 0; i < 12; i++) {
          statuses.push(
            (
              await req('POST', '/api/auth/local/login', {
                body: { email: u.email, password: 'nope nope nope' },
              })
            ).status,
          );
        }
        expect(statuses.slice(0, 10).every((s) => s === 401)).toBe(true);
        const limited = await req('POST', '/api/auth/local/login', {
          body: { email: u.email, password },
        });
        expect(limited.status).toBe(429);
        expect(limited.body.error.code).toBe('too_many_attempts');
        expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      });
    });

    describe('credentials', () => {
      const now = () => Math.floor(Date.now() / 1000);

      it.each([
        ['no header', undefined],
        ['garbage', 'not-a-token'],
        ['an unknown API key', 'sdo_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
      ])('refuses %s with 401', async (_, token) => {
        const res = await req('GET', '/api/projects', token ? { token } : {});
        expect(res.status).toBe(401);
        expect(res.body.error.code).toBe('unauthenticated');
      });

      it('refuses a malformed Authorization header with 401', async () => {
        const res = await req('GET', '/api/projects', { headers: { authorization: 'Basic abc' } });
        expect(res.status).toBe(401);
      });

      it('refuses expired, tampered, alg:none and wrong-key tokens with 401', async () => {
        const claims = { sub: a.userId, iss: 'selfdevop', aud: 'selfdevop-api', iat: now() - 100 };
        const expired = hs256(api.jwtSecret, { ...claims, exp: now() - 10 });
        const wrongKey = hs256('another-secret-that-is-long-enough-123456', {
          ...claims,
          exp: now() + 600,
        });
        const none = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ ...claims, exp: now() + 600 })}.`;
        const [h, , s] = a.token.split('.');
        const tampered = `${h}.${b64url({ ...claims, sub: 'usr_someoneelse', exp: now() + 600 })}.${s}`;
        for (const token of [expired, wrongKey, none, tampered]) {
          const res = await req('GET', '/api/projects', { token });
          expect(res.status, token).toBe(401);
        }
      });

      it('refuses a revoked API key with 401', async () => {
        const created = await req('POST', `/api/orgs/${a.orgId}/api-keys`, {
          token: a.token,
          body: { name: 'short-lived', role: 'viewer' },
        });
        expect((await req('GET', '/api/projects', { token: created.body.key })).status).toBe(200);
        const revoked = await req('DELETE', `/api/orgs/${a.orgId}/api-keys/${created.body.id}`, {
          token: a.token,
        });
        expect(revoked.status).toBe(204);
        const res = await req('GET', '/api/projects', { token: created.body.key });
        expect(res.status).toBe(401);
        expect(res.body.error.message).toMatch(/revoked/);
      });

      it('shows an API key once and lists keys without it', async () => {
        const list = await req('GET', `/api/orgs/${a.orgId}/api-keys`, { token: a.token });
        expect(list.status).toBe(200);
        expect(list.body.items.length).toBeGreaterThanOrEqual(3);
        expect(list.text).not.toContain(keys.admin);
        expect(list.body.items[0]).not.toHaveProperty('keyHash');
      });
    });

    describe('roles', () => {
      it('lets a viewer read but not create', async () => {
        expect((await req('GET', '/api/projects', { token: keys.viewer })).status).toBe(200);
        const res = await req('POST', '/api/projects', {
          token: keys.viewer,
          body: { name: 'nope' },
        });
        expect(res.status).toBe(403);
        expect(res.body.error.code).toBe('forbidden');
      });

      it('lets a deployer create projects but not manage keys or nodes', async () => {
        expect(
          (
            await req('POST', '/api/projects', {
              token: keys.deployer,
              body: { name: 'by-deployer' },
            })
          ).status,
        ).toBe(201);
        expect(
          (
            await req('POST', `/api/orgs/${a.orgId}/api-keys`, {
              token: keys.deployer,
              body: { name: 'x', role: 'viewer' },
            })
          ).status,
        ).toBe(403);
        expect(
          (
            await req('POST', '/api/nodes', {
              token: keys.deployer,
              body: { name: 'n1', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
            })
          ).status,
        ).toBe(403);
      });

      it('does not let an admin mint an owner key', async () => {
        const res = await req('POST', `/api/orgs/${a.orgId}/api-keys`, {
          token: keys.admin,
          body: { name: 'escalate', role: 'owner' },
        });
        expect(res.status).toBe(403);
      });
    });

    describe('orgs', () => {
      it('creates an org; a user in two orgs must pick one with X-Org-Id', async () => {
        const u = await signup();
        const created = await req('POST', '/api/orgs', {
          token: u.token,
          body: { name: 'Second org' },
        });
        expect(created.status).toBe(201);
        const ambiguous = await req('GET', '/api/projects', { token: u.token });
        expect(ambiguous.status).toBe(400);
        expect(ambiguous.body.error.code).toBe('org_required');
        const picked = await req('GET', '/api/projects', {
          token: u.token,
          headers: { 'x-org-id': created.body.id },
        });
        expect(picked.status).toBe(200);
        const foreign = await req('GET', '/api/projects', {
          token: u.token,
          headers: { 'x-org-id': b.orgId },
        });
        expect(foreign.status).toBe(404);
      });

      it('answers another org in a path with 404, never its data', async () => {
        const res = await req('GET', `/api/orgs/${b.orgId}/api-keys`, { token: a.token });
        expect(res.status).toBe(404);
        expect(
          (
            await req('POST', `/api/orgs/${b.orgId}/api-keys`, {
              token: a.token,
              body: { name: 'x', role: 'viewer' },
            })
          ).status,
        ).toBe(404);
      });

      it("answers another org's, an unknown or a viewer's webhook test and deliveries with the error shape", async () => {
        // No receiver is reached: every call below is refused before anything is sent. An
        // address literal (TEST-NET-3) needs no DNS look-up to be judged at creation.
        const hook = await req('POST', '/api/webhooks', {
          token: b.token,
          body: { url: 'https://203.0.113.10/in', events: ['release.failed'] },
        });
        expect(hook.status, hook.text).toBe(201);
        const id = hook.body.id as string;
        for (const path of [`/api/webhooks/${id}/test`, '/api/webhooks/whk_unknown/test']) {
          const res = await req('POST', path, { token: a.token });
          expect(res.status, path).toBe(404);
          expect(res.body.error.code).toBe('webhook_not_found');
        }
        const list = await req('GET', `/api/webhooks/${id}/deliveries`, { token: a.token });
        expect(list.status).toBe(404);
        expect(list.body.error.message).toBe(`webhook ${id} not found`);
        const viewer = await req('GET', `/api/webhooks/${id}/deliveries`, {
          token: keys.viewer,
        });
        expect(viewer.status).toBe(403);
        const badLimit = await req('GET', `/api/webhooks/${id}/deliveries?limit=nope`, {
          token: b.token,
        });
        expect(badLimit.status).toBe(400);
        expect(badLimit.body.error.message).toMatch(/limit/);
      });

      it('stores SQL-looking and unicode names verbatim', async () => {
        const u = await signup();
        for (const name of ["Robert'); DROP TABLE orgs;--", 'Ünïcödé 🚀 組織', '  padded  ']) {
          const res = await req('POST', '/api/orgs', { token: u.token, body: { name } });
          expect(res.status).toBe(201);
          expect(res.body.name).toBe(name.trim());
        }
      });
    });

    describe('projects, environments, services, nodes', () => {
      let projectId: string;
      let serviceId: string;

      it('creates a project with a production environment and refuses a duplicate with 409', async () => {
        const res = await req('POST', '/api/projects', { token: a.token, body: { name: 'shop' } });
        expect(res.status).toBe(201);
        expect(res.body).toMatchObject({
          id: expect.any(String),
          name: 'shop',
          environments: [{ id: expect.any(String), name: 'production' }],
        });
        projectId = res.body.id;
        const dup = await req('POST', '/api/projects', { token: a.token, body: { name: 'shop' } });
        expect(dup.status).toBe(409);
        // Another org may use the same name.
        expect(
          (await req('POST', '/api/projects', { token: b.token, body: { name: 'shop' } })).status,
        ).toBe(201);
      });

      it('rejects names that are not DNS labels', async () => {
        for (const name of [
          'Shop',
          'a b',
          "x'; drop table projects;--",
          '-lead',
          'a'.repeat(41),
          '',
        ]) {
          const res = await req('POST', '/api/projects', { token: a.token, body: { name } });
          expect(res.status, name).toBe(400);
          expect(res.body.error.message).toContain('name');
        }
      });

      it('pages through projects with limit and cursor', async () => {
        for (let i = 0; i < 5; i++)
          await req('POST', '/api/projects', { token: a.token, body: { name: `page-${i}` } });
        const seen: string[] = [];
        let cursor: string | null = null;
        do {
          const res: Awaited<ReturnType<Requester>> = await req(
            'GET',
            `/api/projects?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
            { token: a.token },
          );
          expect(res.status).toBe(200);
          expect(res.body.items.length).toBeLessThanOrEqual(2);
          seen.push(...res.body.items.map((p: { id: string }) => p.id));
          cursor = res.body.nextCursor;
        } while (cursor);
        expect(new Set(seen).size).toBe(seen.length);
        expect(seen.length).toBeGreaterThanOrEqual(6);
        expect((await req('GET', '/api/projects?limit=0', { token: a.token })).status).toBe(400);
        expect((await req('GET', '/api/projects?limit=abc', { token: a.token })).status).toBe(400);
      });

      it('answers a repeated query string as it did the first time, and a bad one with 400 each time', async () => {
        // Each route remembers its recent query strings' parses (functions/api/app.ts).
        for (let i = 0; i < 3; i++) {
          const res = await req('GET', '/api/projects?limit=2', { token: a.token });
          expect(res.status).toBe(200);
          expect(res.body.items).toHaveLength(2);
          expect(res.body.nextCursor).toEqual(expect.any(String));
          const bad = await req('GET', '/api/projects?limit=0', { token: a.token });
          expect(bad.status).toBe(400);
          expect(bad.body.error.message).toContain('limit');
        }
        // More distinct strings than a route keeps: the ones asked again still answer right.
        for (let limit = 1; limit <= 110; limit++) {
          const res = await req('GET', `/api/projects?limit=${limit}&x=${limit}`, {
            token: a.token,
          });
          expect(res.body.items.length).toBeLessThanOrEqual(limit);
        }
        const again = await req('GET', '/api/projects?limit=1', { token: a.token });
        expect(again.body.items).toHaveLength(1);
        const defaulted = await req('GET', '/api/projects', { token: a.token });
        expect(defaulted.body.items.length).toBeGreaterThan(2);
      });

      it("hides one org's projects from another (404 and lists)", async () => {
        expect((await req('GET', `/api/projects/${projectId}`, { token: a.token })).status).toBe(
          200,
        );
        const res = await req('GET', `/api/projects/${projectId}`, { token: b.token });
        expect(res.status).toBe(404);
        expect(res.text).not.toContain('shop"');
        const list = await req('GET', '/api/projects?limit=200', { token: b.token });
        expect(list.body.items.map((p: { id: string }) => p.id)).not.toContain(projectId);
        expect((await req('GET', '/api/projects/garbage%00id', { token: a.token })).status).toBe(
          404,
        );
      });

      it("creates environments, refusing duplicates and other orgs' projects", async () => {
        const res = await req('POST', '/api/environments', {
          token: a.token,
          body: { projectId, name: 'staging' },
        });
        expect(res.status).toBe(201);
        expect(
          (
            await req('POST', '/api/environments', {
              token: a.token,
              body: { projectId, name: 'staging' },
            })
          ).status,
        ).toBe(409);
        expect(
          (
            await req('POST', '/api/environments', {
              token: b.token,
              body: { projectId, name: 'qa' },
            })
          ).status,
        ).toBe(404);
      });

      it('creates a service with its default hosts and validates every field', async () => {
        const body = {
          projectId,
          name: 'web',
          image: 'selfdevop-test/app:v1',
          containerPort: 8080,
          healthcheckPath: '/health',
        };
        const res = await req('POST', '/api/services', { token: keys.deployer, body });
        expect(res.status, res.text).toBe(201);
        expect(res.body.hosts.map((h: { environment: string }) => h.environment).sort()).toEqual([
          'production',
          'staging',
        ]);
        expect(res.body.hosts[0].host).toMatch(/^web-(production|staging)-[0-9a-z]{6}\.localhost$/);
        expect(res.body).toMatchObject({
          strategy: 'blue_green',
          health: { successes: expect.any(Number) },
        });
        expect((await req('POST', '/api/services', { token: keys.deployer, body })).status).toBe(
          409,
        );
        const bad: [Record<string, unknown>, string][] = [
          [{ image: 'UPPER/case:tag' }, 'image'],
          [{ image: 'x:y:z' }, 'image'],
          [{ containerPort: 0 }, 'containerPort'],
          [{ containerPort: '8080' }, 'containerPort'],
          [{ containerPort: undefined }, 'containerPort'],
          [{ kind: 'worker' }, 'containerPort'],
          [{ healthcheckPath: 'health' }, 'healthcheckPath'],
          [{ strategy: 'canary' }, 'strategy'],
          [{ env: { 'BAD-NAME': 'x' } }, 'env'],
          [{ migrateCommand: 'line1\nline2' }, 'migrateCommand'],
          [{ projectId: 'nope' }, 'projectId'],
        ];
        for (const [patch, field] of bad) {
          const r = await req('POST', '/api/services', {
            token: keys.deployer,
            body: { ...body, name: 'other', ...patch },
          });
          expect(r.status, JSON.stringify(patch)).toBe(400);
          expect(r.body.error.message).toContain(field);
        }
        expect(
          (await req('POST', '/api/services', { token: b.token, body: { ...body, name: 'steal' } }))
            .status,
        ).toBe(404);
        serviceId = res.body.id;
        const got = await req('GET', `/api/services/${res.body.id}`, { token: keys.viewer });
        expect(got.body).toMatchObject({
          id: res.body.id,
          image: body.image,
          hosts: res.body.hosts,
        });
        expect((await req('GET', `/api/services/${res.body.id}`, { token: b.token })).status).toBe(
          404,
        );
      });

      it('keeps secrets write-only: set, list names, delete; values never come back', async () => {
        const value = 'sk_live_do-not-leak-4242';
        const set = await req('POST', `/api/services/${serviceId}/secrets`, {
          token: keys.deployer,
          body: { name: 'STRIPE_KEY', value },
        });
        expect(set.status, set.text).toBe(201);
        expect(set.body).toEqual({
          name: 'STRIPE_KEY',
          environment: 'production',
          updatedAt: expect.any(String),
        });
        const staging = await req('POST', `/api/services/${serviceId}/secrets`, {
          token: keys.deployer,
          body: { name: 'STRIPE_KEY', value: 'other', environment: 'staging' },
        });
        expect(staging.status).toBe(201);
        const replaced = await req('POST', `/api/services/${serviceId}/secrets`, {
          token: keys.deployer,
          body: { name: 'STRIPE_KEY', value: value + '2' },
        });
        expect(replaced.status).toBe(201);
        const list = await req('GET', `/api/services/${serviceId}/secrets`, { token: keys.viewer });
        expect(list.body.items).toEqual([
          { name: 'STRIPE_KEY', environment: 'production', updatedAt: expect.any(String) },
        ]);
        const audit = await req('GET', `/api/audit-events?action=secret.set&limit=200`, {
          token: a.token,
        });
        expect(audit.body.items.length).toBe(3);
        for (const text of [list.text, audit.text, api.logLines().join('\n')])
          expect(text).not.toContain(value);

        expect(
          (
            await req('POST', `/api/services/${serviceId}/secrets`, {
              token: keys.viewer,
              body: { name: 'X', value: 'y' },
            })
          ).status,
        ).toBe(403);
        const badName = await req('POST', `/api/services/${serviceId}/secrets`, {
          token: keys.deployer,
          body: { name: '1-bad', value: 'y' },
        });
        expect(badName.status).toBe(400);
        expect(badName.body.error.message).toContain('name');
        expect(
          (
            await req('POST', `/api/services/${serviceId}/secrets`, {
              token: keys.deployer,
              body: { name: 'X', value: 'y', environment: 'nope' },
            })
          ).status,
        ).toBe(404);
        expect(
          (
            await req('POST', `/api/services/${serviceId}/secrets`, {
              token: b.token,
              body: { name: 'X', value: 'y' },
            })
          ).status,
        ).toBe(404);
        expect(
          (await req('GET', `/api/services/${serviceId}/secrets`, { token: b.token })).status,
        ).toBe(404);

        expect(
          (
            await req('DELETE', `/api/services/${serviceId}/secrets/STRIPE_KEY`, {
              token: keys.deployer,
            })
          ).status,
        ).toBe(204);
        expect(
          (
            await req('DELETE', `/api/services/${serviceId}/secrets/STRIPE_KEY`, {
              token: keys.deployer,
            })
          ).status,
        ).toBe(404);
        expect(
          (
            await req('DELETE', `/api/services/${serviceId}/secrets/bad-name`, {
              token: keys.deployer,
            })
          ).status,
        ).toBe(400);
        expect(
          (
            await req('GET', `/api/services/${serviceId}/secrets?environment=staging`, {
              token: keys.viewer,
            })
          ).body.items,
        ).toHaveLength(1);
      });

      it('registers nodes (admin) and validates the docker host', async () => {
        // The local engine is the operator's: the install's first account, not its keys.
        const byKey = await req('POST', '/api/nodes', {
          token: keys.admin,
          body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
        });
        expect(byKey.status, byKey.text).toBe(400);
        expect(byKey.body.error).toMatchObject({
          code: 'node_address_refused',
          details: {
            issues: [
              { field: 'dockerHost', message: expect.stringContaining('operator') },
              { field: 'address', message: expect.stringContaining('loopback') },
            ],
          },
        });
        const remote = await req('POST', '/api/nodes', {
          token: keys.admin,
          body: {
            name: 'remote',
            dockerHost: 'ssh://deploy@203.0.113.10',
            address: '203.0.113.10',
            ssh: {
              privateKey: generateKeyPairSync('ed25519').privateKey.export({
                type: 'pkcs8',
                format: 'pem',
              }) as string,
              insecureIgnoreHostKey: true,
            },
          },
        });
        expect(remote.status, remote.text).toBe(201);
        expect(remote.body.operatorRegistered).toBe(false);
        const res = await req('POST', '/api/nodes', {
          token: a.token,
          body: {
            name: 'local',
            dockerHost: 'unix:///var/run/docker.sock',
            address: '127.0.0.1',
            labels: { zone: 'a' },
          },
        });
        expect(res.status, res.text).toBe(201);
        expect(res.body).toMatchObject({
          name: 'local',
          drainMode: false,
          labels: { zone: 'a' },
          operatorRegistered: true,
          // Until the workers' node checks first reach its engine.
          reachability: 'unknown',
          reachabilitySince: null,
          lastSeenAt: null,
        });
        for (const dockerHost of ['http://x', 'tcp://host', 'unix://relative', 'ssh://host']) {
          const r = await req('POST', '/api/nodes', {
            token: keys.admin,
            body: { name: 'n2', dockerHost, address: '127.0.0.1' },
          });
          expect(r.status, dockerHost).toBe(400);
          expect(r.body.error.message).toContain('dockerHost');
        }
        expect((await req('GET', `/api/nodes/${res.body.id}`, { token: b.token })).status).toBe(
          404,
        );
      });
    });

    describe('git sources', () => {
      let projectId: string;
      // An ed25519 key ssh-keygen made, and the fingerprint `ssh-keygen -lf` printed for it.
      const hostKeyLine =
        '[git.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPeh9cZ4g/6yNZX/HvDBe2LW8BI/Zi2R+gCwr+C2wewc';

      beforeAll(async () => {
        const res = await req('POST', '/api/projects', { token: a.token, body: { name: 'built' } });
        expect(res.status, res.text).toBe(201);
        projectId = res.body.id;
      });

      const service = (name: string, extra: Record<string, unknown>) =>
        req('POST', '/api/services', {
          token: a.token,
          body: { projectId, name, containerPort: 8080, healthcheckPath: '/health', ...extra },
        });

      it('creates a service built from git, its fields normalised and its token write-only', async () => {
        const token = `tok-${Date.now()}-write-only`;
        const res = await service('api', {
          git: {
            url: 'https://git.example.com/shop/api.git',
            subdir: './services/api/',
            buildArgs: { NODE_ENV: 'production' },
            token,
          },
        });
        expect(res.status, res.text).toBe(201);
        expect(res.body.git).toEqual({
          url: 'https://git.example.com/shop/api.git',
          ref: 'main',
          subdir: 'services/api',
          dockerfile: 'Dockerfile',
          buildArgs: { NODE_ENV: 'production' },
          knownHosts: null,
          pollIntervalSeconds: null,
        });
        expect(res.body.gitCredentialKind).toBe('token');
        expect(res.body.image).toMatch(/^api-[0-9a-z]{1,6}$/);
        const shown = [
          res.text,
          (await req('GET', `/api/services/${res.body.id}`, { token: a.token })).text,
          (await req('GET', `/api/services?projectId=${projectId}`, { token: a.token })).text,
          (await req('GET', '/api/audit-events?limit=200', { token: a.token })).text,
          api.logLines().join('\n'),
        ];
        for (const text of shown) {
          expect(text).not.toContain(token);
          expect(text).not.toContain('sealedGitCredential');
        }
        // Another org sees nothing of it.
        expect(
          (
            await req('PATCH', `/api/services/${res.body.id}`, {
              token: b.token,
              body: { git: null },
            })
          ).status,
        ).toBe(404);
        expect(
          (await req('POST', `/api/services/${res.body.id}/deploy-key`, { token: b.token })).status,
        ).toBe(404);
      });

      it('makes an SSH deploy key and shows its public half only; PATCH changes and removes the source', async () => {
        const res = await service('worker', {
          git: { url: 'git@git.example.com:shop/worker.git' },
        });
        expect(res.status, res.text).toBe(201);
        const id = res.body.id as string;
        const key = await req('POST', `/api/services/${id}/deploy-key`, { token: a.token });
        expect(key.status, key.text).toBe(201);
        expect(key.body).toEqual({
          serviceId: id,
          publicKey: expect.stringMatching(
            /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\S+ selfdevop-worker$/,
          ),
        });
        const got = await req('GET', `/api/services/${id}`, { token: a.token });
        expect(got.body).toMatchObject({
          gitCredentialKind: 'deploy_key',
          gitPublicKey: key.body.publicKey,
        });
        expect(got.text).not.toContain('PRIVATE KEY');

        const patched = await req('PATCH', `/api/services/${id}`, {
          token: a.token,
          body: {
            git: {
              url: 'git@git.example.com:shop/worker.git',
              ref: 'release',
              dockerfile: 'ops/Dockerfile',
            },
          },
        });
        expect(patched.status, patched.text).toBe(200);
        expect(patched.body.git).toMatchObject({ ref: 'release', dockerfile: 'ops/Dockerfile' });
        expect(patched.body.gitPublicKey).toBe(key.body.publicKey);

        const viewer = await req('PATCH', `/api/services/${id}`, {
          token: keys.viewer,
          body: { git: null },
        });
        expect(viewer.status).toBe(403);
        const removed = await req('PATCH', `/api/services/${id}`, {
          token: a.token,
          body: { git: null },
        });
        expect(removed.status, removed.text).toBe(200);
        expect(removed.body).toMatchObject({
          git: null,
          gitCredentialKind: null,
          gitPublicKey: null,
        });
        const noSource = await req('POST', `/api/services/${id}/deploy-key`, { token: a.token });
        expect(noSource.status).toBe(400);
        expect(noSource.body.error.message).toMatch(/^git: the service has no git source/);
        const noRef = await req('POST', '/api/releases', {
          token: a.token,
          body: { serviceId: id, gitRef: 'main' },
        });
        expect(noRef.status).toBe(400);
        expect(noRef.body.error.message).toMatch(/^gitRef: the service has no git source/);
      });

      it('pins the SSH host keys given, shows their fingerprints, forgets them when the server moves, and sets the poll interval', async () => {
        const res = await service('pinned', {
          git: {
            url: 'ssh://git@git.example.com:2222/shop/pinned.git',
            knownHosts: `# ssh-keyscan -p 2222 git.example.com\n${hostKeyLine}\n`,
            pollIntervalSeconds: 120,
          },
        });
        expect(res.status, res.text).toBe(201);
        expect(res.body.git).toMatchObject({ knownHosts: hostKeyLine, pollIntervalSeconds: 120 });
        expect(res.body.gitHostKeys).toEqual([
          {
            hosts: '[git.example.com]:2222',
            type: 'ssh-ed25519',
            fingerprint: 'SHA256:uux2rzujDeovjh6R8QNzx0k16wYDVFNTwRCUd9t7/dQ',
          },
        ]);
        const got = await req('GET', `/api/services/${res.body.id}`, { token: a.token });
        expect(got.body).toMatchObject({ gitPoll: null, gitHostKeys: res.body.gitHostKeys });
        // Another path on the same server keeps the pin; another server forgets it.
        const samePlace = await req('PATCH', `/api/services/${res.body.id}`, {
          token: a.token,
          body: { git: { url: 'ssh://git@git.example.com:2222/shop/other.git' } },
        });
        expect(samePlace.body.git).toMatchObject({
          knownHosts: hostKeyLine,
          pollIntervalSeconds: 120,
        });
        const moved = await req('PATCH', `/api/services/${res.body.id}`, {
          token: a.token,
          body: {
            git: { url: 'ssh://git@git2.example.com/shop/other.git', pollIntervalSeconds: null },
          },
        });
        expect(moved.status, moved.text).toBe(200);
        expect(moved.body.git).toMatchObject({ knownHosts: null, pollIntervalSeconds: null });
        expect(moved.body.gitHostKeys).toEqual([]);
      });

      it('refuses bad git input with a 400 naming the field', async () => {
        const cases: [Record<string, unknown>, RegExp][] = [
          [{}, /^image: is required unless the service has a git source/],
          [{ git: { url: 'file:///etc/passwd' } }, /^git\.url: /],
          [{ git: { url: 'ext::sh -c id' } }, /^git\.url: /],
          [
            { git: { url: 'https://u:p@example.com/r.git' } },
            /^git\.url: must not carry credentials/,
          ],
          [{ git: { url: 'https://example.com/r.git', subdir: 'a/../../b' } }, /^git\.subdir: /],
          [{ git: { url: 'https://example.com/r.git', dockerfile: '' } }, /^git\.dockerfile: /],
          [{ git: { url: 'https://example.com/r.git', ref: '-x' } }, /^git\.ref: /],
          [
            { git: { url: 'https://example.com/r.git', buildArgs: { 'A B': 'x' } } },
            /^git\.buildArgs/,
          ],
          [{ git: { url: 'https://example.com/r.git', extra: 1 } }, /extra/],
          [
            { git: { url: 'http://git.example.com/r.git', token: 'x' } },
            /^git\.token: a token is sent only over https/,
          ],
          [
            { git: { url: 'https://example.com/r.git', pollIntervalSeconds: 30 } },
            /^git\.pollIntervalSeconds: must be at least 60/,
          ],
          [
            { git: { url: 'https://example.com/r.git', pollIntervalSeconds: '60' } },
            /^git\.pollIntervalSeconds: /,
          ],
          [
            { git: { url: 'https://example.com/r.git', knownHosts: hostKeyLine } },
            /^git\.knownHosts: only an ssh repository has host keys/,
          ],
          [
            { git: { url: 'git@git.example.com:r.git', knownHosts: 'not a key' } },
            /^git\.knownHosts: line 1: /,
          ],
        ];
        for (const [extra, message] of cases) {
          const res = await service('bad', extra);
          expect(res.status, JSON.stringify(extra)).toBe(400);
          expect(res.body.error.message, JSON.stringify(extra)).toMatch(message);
        }
        const empty = await req('PATCH', '/api/services/svc_000000nope', {
          token: a.token,
          body: {},
        });
        expect(empty.status).toBe(400);
      });
    });

    describe('push hooks', () => {
      let serviceId: string;
      let hook: { id: string; path: string; secret: string };
      const sha = (c: string) => c.repeat(40);
      const payload = (ref: string, after: string) =>
        JSON.stringify({ ref, after, before: sha('0'), repository: { name: 'web' } });
      const hmacHex = (secret: string, body: string) =>
        createHmac('sha256', secret).update(body).digest('hex');
      let delivery = 0;
      const send = (
        provider: 'github' | 'gitlab' | 'gitea',
        body: string,
        opts: { secret?: string; id?: string; event?: string; path?: string } = {},
      ) => {
        const secret = opts.secret ?? hook.secret;
        const id = opts.id ?? `d-${++delivery}`;
        const headers: Record<string, string> =
          provider === 'github'
            ? {
                'x-github-event': opts.event ?? 'push',
                'x-github-delivery': id,
                'x-hub-signature-256': `sha256=${hmacHex(secret, body)}`,
              }
            : provider === 'gitea'
              ? {
                  'x-gitea-event': opts.event ?? 'push',
                  'x-gitea-delivery': id,
                  'x-gitea-signature': hmacHex(secret, body),
                }
              : {
                  'x-gitlab-event': opts.event ?? 'Push Hook',
                  'x-gitlab-event-uuid': id,
                  'x-gitlab-token': secret,
                };
        return req('POST', opts.path ?? hook.path, { rawBody: body, headers });
      };

      beforeAll(async () => {
        const project = await req('POST', '/api/projects', {
          token: a.token,
          body: { name: 'pushed' },
        });
        expect(project.status, project.text).toBe(201);
        const svc = await req('POST', '/api/services', {
          token: a.token,
          body: {
            projectId: project.body.id,
            name: 'web',
            containerPort: 8080,
            healthcheckPath: '/health',
            git: { url: 'https://git.example.com/shop/web.git', ref: 'main' },
          },
        });
        expect(svc.status, svc.text).toBe(201);
        serviceId = svc.body.id;
        // Somewhere to place the release (the suite runs no worker: it stays queued). This
        // machine's engine is the operator's: the first account's session registers it.
        const node = await req('POST', '/api/nodes', {
          token: a.token,
          body: {
            name: 'push-node',
            dockerHost: 'unix:///var/run/docker.sock',
            address: '127.0.0.1',
          },
        });
        expect(node.status, node.text).toBe(201);
        const made = await req('POST', `/api/services/${serviceId}/push-hook`, { token: a.token });
        expect(made.status, made.text).toBe(201);
        expect(made.body.path).toBe(`/api/hooks/push/${made.body.id}`);
        expect(made.body.secret).toMatch(/^sdph_/);
        hook = made.body;
      });

      it('refuses forged and missing signatures of each host with a 401', async () => {
        const body = payload('refs/heads/main', sha('a'));
        for (const provider of ['github', 'gitlab', 'gitea'] as const) {
          const forged = await send(provider, body, { secret: 'sdph_guessed' });
          expect(forged.status, `${provider}: ${forged.text}`).toBe(401);
          expect(forged.body.error.code).toBe('push_signature_invalid');
        }
        const unsigned = await req('POST', hook.path, {
          rawBody: body,
          headers: { 'x-github-event': 'push' },
        });
        expect(unsigned.status).toBe(401);
        expect(unsigned.body.error.message).toMatch(/missing X-Hub-Signature-256/);
        const anonymous = await req('POST', hook.path, { rawBody: body });
        expect(anonymous.status).toBe(401);
        // A signature made with the secret over another body does not pass.
        const tampered = await req('POST', hook.path, {
          rawBody: payload('refs/heads/main', sha('b')),
          headers: {
            'x-github-event': 'push',
            'x-hub-signature-256': `sha256=${hmacHex(hook.secret, body)}`,
          },
        });
        expect(tampered.status).toBe(401);
        const releases = await req('GET', `/api/releases?serviceId=${serviceId}`, {
          token: a.token,
        });
        expect(releases.body.items).toEqual([]);
      });

      it('answers 404 for an unknown hook, signed or not, naming no org', async () => {
        const body = payload('refs/heads/main', sha('a'));
        const unknown = await send('github', body, { path: '/api/hooks/push/ph_000000nope' });
        expect(unknown.status).toBe(404);
        expect(unknown.text).not.toContain(a.orgId);
      });

      it('does nothing for another branch, a tag, a deletion or a ping, and says why', async () => {
        const other = await send('gitea', payload('refs/heads/feature', sha('c')));
        expect(other.status, other.text).toBe(202);
        expect(other.body).toEqual({
          status: 'ignored',
          reason: 'branch feature is not the followed branch main; nothing to deploy',
        });
        const tag = await send('gitlab', payload('refs/tags/v1', sha('c')), {
          event: 'Tag Push Hook',
        });
        expect(tag.status).toBe(202);
        expect(tag.body.reason).toMatch(/is not a push/);
        const deleted = await send('github', payload('refs/heads/main', sha('0')));
        expect(deleted.body.reason).toBe('branch main was deleted; nothing to deploy');
        const ping = await send('github', JSON.stringify({ zen: 'hi' }), { event: 'ping' });
        expect(ping.status).toBe(202);
        expect(ping.body.status).toBe('ignored');
        const releases = await req('GET', `/api/releases?serviceId=${serviceId}`, {
          token: a.token,
        });
        expect(releases.body.items).toEqual([]);
      });

      it('deploys a push to the followed branch once, a replayed delivery doing nothing', async () => {
        const body = payload('refs/heads/main', sha('d'));
        const first = await send('github', body, { id: 'gh-delivery-1' });
        expect(first.status, first.text).toBe(202);
        expect(first.body).toMatchObject({ status: 'deploying', gitSha: sha('d') });
        const release = await req('GET', `/api/releases/${first.body.releaseId}`, {
          token: a.token,
        });
        expect(release.body).toMatchObject({ serviceId, gitSha: sha('d'), gitRef: sha('d') });
        const replay = await send('github', body, { id: 'gh-delivery-1' });
        expect(replay.status).toBe(202);
        expect(replay.body).toEqual({
          status: 'ignored',
          reason: 'delivery gh-delivery-1 was received before; nothing to deploy again',
        });
        const releases = await req('GET', `/api/releases?serviceId=${serviceId}`, {
          token: a.token,
        });
        expect(releases.body.items).toHaveLength(1);
        await req('POST', `/api/releases/${first.body.releaseId}/cancel`, { token: a.token });
      });

      it('refuses a body over the size limit (413) and more than 60 deliveries a minute per hook (429)', async () => {
        const huge = payload('refs/heads/main', sha('f')).replace(
          '"web"',
          JSON.stringify('x'.repeat(300 * 1024)),
        );
        // The server answers before reading the whole body, then closes that connection.
        const tooBig = await req('POST', hook.path, {
          rawBody: huge,
          headers: {
            connection: 'close',
            'x-github-event': 'push',
            'x-hub-signature-256': `sha256=${hmacHex(hook.secret, huge)}`,
          },
        });
        expect(tooBig.status).toBe(413);
        expect(tooBig.body.error.code).toBe('payload_too_large');
        // A hook of its own, so this burst does not limit the other tests' hook.
        const other = await req('POST', '/api/services', {
          token: a.token,
          body: {
            projectId: (await req('GET', `/api/services/${serviceId}`, { token: a.token })).body
              .projectId,
            name: 'burst',
            containerPort: 8080,
            healthcheckPath: '/health',
            git: { url: 'https://git.example.com/shop/burst.git' },
          },
        });
        expect(other.status, other.text).toBe(201);
        const burst = await req('POST', `/api/services/${other.body.id}/push-hook`, {
          token: a.token,
        });
        const statuses: number[] = [];
        for (let i = 0; i < 61; i++) {
          const r = await send('gitlab', payload('refs/heads/feature', sha('f')), {
            path: burst.body.path,
            secret: burst.body.secret,
          });
          statuses.push(r.status);
        }
        expect(statuses.slice(0, 60).every((st) => st === 202)).toBe(true);
        expect(statuses[60]).toBe(429);
        // The limit is the hook's own: the other hook still answers.
        expect((await send('gitea', payload('refs/heads/feature', sha('f')))).status).toBe(202);
      });

      it('rotates the secret, keeping the URL; the old secret no longer passes', async () => {
        const old = hook.secret;
        const rotated = await req('POST', `/api/services/${serviceId}/push-hook`, {
          token: a.token,
        });
        expect(rotated.status).toBe(201);
        expect(rotated.body.id).toBe(hook.id);
        expect(rotated.body.secret).not.toBe(old);
        hook = rotated.body;
        const stale = await send('gitea', payload('refs/heads/feature', sha('e')), { secret: old });
        expect(stale.status).toBe(401);
        const fresh = await send('gitea', payload('refs/heads/feature', sha('e')));
        expect(fresh.status).toBe(202);
        // Another org's caller and a viewer cannot make or read it; the secret is in no log.
        expect(
          (await req('POST', `/api/services/${serviceId}/push-hook`, { token: b.token })).status,
        ).toBe(404);
        expect(
          (
            await req('POST', `/api/services/${serviceId}/push-hook`, {
              token: keys.viewer!,
            })
          ).status,
        ).toBe(403);
        expect(api.logLines().join('\n')).not.toContain(hook.secret);
        expect(api.logLines().join('\n')).not.toContain(old);
      });
    });

    describe('node credentials', () => {
      let pki: TestPki;
      const hostKey = sshPublicKeyLine();
      const sshKey = generateKeyPairSync('ed25519').privateKey.export({
        type: 'pkcs8',
        format: 'pem',
      }) as string;
      const tls = () => ({ ca: pki.ca, cert: pki.clientCert, key: pki.clientKey });
      const addNode = (body: Record<string, unknown>, token = keys.admin) =>
        req('POST', '/api/nodes', { token, body: { address: '203.0.113.9', ...body } });
      const material = () =>
        [pki.clientKey, pki.otherClientKey, sshKey].map((pem) => pem.split('\n')[1]!);

      beforeAll(async () => {
        pki = await makeTestPki();
      }, 60_000);

      it('registers a tcp:// node with TLS and never shows the material', async () => {
        const res = await addNode({
          name: 'remote-tls',
          dockerHost: 'tcp://203.0.113.9:2376',
          tls: tls(),
        });
        expect(res.status, res.text).toBe(201);
        expect(res.body).toMatchObject({
          tls: { configured: true },
          ssh: { configured: false },
          credentialsUpdatedAt: expect.any(String),
        });
        const one = await req('GET', `/api/nodes/${res.body.id}`, { token: keys.viewer });
        expect(one.body).toMatchObject({
          id: res.body.id,
          tls: { configured: true },
          ssh: { configured: false },
        });
        const list = await req('GET', '/api/nodes?limit=200', { token: keys.viewer });
        const audit = await req('GET', `/api/audit-events?targetId=${res.body.id}`, {
          token: keys.viewer,
        });
        expect(audit.body.items).toEqual([
          expect.objectContaining({
            action: 'node.created',
            data: expect.objectContaining({ credentials: ['tls'] }),
          }),
        ]);
        for (const text of [res.text, one.text, list.text, audit.text]) {
          expect(text).not.toContain('BEGIN');
          expect(text).not.toMatch(/sealed/i);
        }
        // The unix socket and a loopback engine need no credentials, and are the operator's.
        const local = await addNode(
          { name: 'loopback-tcp', dockerHost: 'tcp://127.0.0.1:2375', address: '127.0.0.1' },
          a.token,
        );
        expect(local.status, local.text).toBe(201);
        expect(local.body).toMatchObject({
          tls: { configured: false },
          ssh: { configured: false },
          credentialsUpdatedAt: null,
        });
      });

      it('registers an ssh:// node with a pinned host key, or explicitly without', async () => {
        const pinned = await addNode({
          name: 'remote-ssh',
          dockerHost: 'ssh://deploy@203.0.113.9',
          ssh: { privateKey: sshKey, hostKey: `203.0.113.9 ${hostKey} root@node` },
        });
        expect(pinned.status, pinned.text).toBe(201);
        expect(pinned.body).toMatchObject({
          tls: { configured: false },
          ssh: { configured: true },
        });
        const unpinned = await addNode({
          name: 'remote-ssh-2',
          dockerHost: 'ssh://deploy@203.0.113.9',
          ssh: { privateKey: sshKey, insecureIgnoreHostKey: true },
        });
        expect(unpinned.status, unpinned.text).toBe(201);
      });

      it('refuses credentials that do not fit the docker host, naming the field', async () => {
        const cases: [Record<string, unknown>, string][] = [
          [{ dockerHost: 'tcp://203.0.113.9:2376' }, 'tls: is required for tcp://203.0.113.9'],
          [
            { dockerHost: 'tcp://docker.internal:2375' },
            'tls: is required for tcp://docker.internal',
          ],
          [
            { dockerHost: 'unix:///var/run/docker.sock', tls: tls() },
            'tls: applies only to a tcp:// docker host',
          ],
          [
            {
              dockerHost: 'ssh://deploy@203.0.113.9',
              tls: tls(),
              ssh: { privateKey: sshKey, hostKey },
            },
            'tls: applies only to a tcp:// docker host',
          ],
          [
            {
              dockerHost: 'tcp://203.0.113.9:2376',
              tls: tls(),
              ssh: { privateKey: sshKey, hostKey },
            },
            'ssh: applies only to an ssh:// docker host',
          ],
          [{ dockerHost: 'ssh://deploy@203.0.113.9' }, 'ssh: is required'],
          [
            { dockerHost: 'ssh://deploy@203.0.113.9', ssh: { privateKey: sshKey } },
            'ssh.hostKey: is required',
          ],
          [
            {
              dockerHost: 'ssh://deploy@203.0.113.9',
              ssh: { privateKey: sshKey, hostKey, insecureIgnoreHostKey: true },
            },
            'ssh.insecureIgnoreHostKey: cannot be set together with hostKey',
          ],
          [
            {
              dockerHost: 'ssh://deploy@203.0.113.9',
              ssh: { privateKey: sshKey, hostKey: 'not a key' },
            },
            'ssh.hostKey: must be one OpenSSH public key line',
          ],
          [
            { dockerHost: 'ssh://deploy@203.0.113.9', ssh: { privateKey: 'hunter2', hostKey } },
            'ssh.privateKey: must be one PEM private key',
          ],
          [
            { dockerHost: 'tcp://203.0.113.9:2376', tls: { ...tls(), cert: 'not a certificate' } },
            'tls.cert: must be PEM certificates',
          ],
          [
            {
              dockerHost: 'tcp://203.0.113.9:2376',
              tls: { ...tls(), ca: `${pki.ca}\ntrailing junk` },
            },
            'tls.ca: must be PEM certificates',
          ],
          [
            { dockerHost: 'tcp://203.0.113.9:2376', tls: { ...tls(), key: pki.clientCert } },
            'tls.key: must be one PEM private key',
          ],
          [
            {
              dockerHost: 'tcp://203.0.113.9:2376',
              tls: { ...tls(), key: pki.clientKey + pki.otherClientKey },
            },
            'tls.key: must be one PEM private key',
          ],
          [
            {
              dockerHost: 'tcp://203.0.113.9:2376',
              tls: {
                ...tls(),
                key: '-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n',
              },
            },
            'tls.key: must not be encrypted',
          ],
          [
            { dockerHost: 'tcp://203.0.113.9:2376', tls: { ca: pki.ca, cert: pki.clientCert } },
            'tls.key: is required',
          ],
          [
            { dockerHost: 'tcp://203.0.113.9:2376', tls: { ...tls(), pass: 'x' } },
            'tls.pass: unknown field',
          ],
        ];
        for (const [body, message] of cases) {
          const res = await addNode({ name: 'refused', ...body });
          expect(res.status, `${message}: ${res.text}`).toBe(400);
          expect(res.body.error.message, message).toContain(message);
          for (const m of material()) expect(res.text).not.toContain(m);
        }
        const none = await req('GET', '/api/nodes?limit=200', { token: keys.viewer });
        expect(none.body.items.map((n: { name: string }) => n.name)).not.toContain('refused');
      });

      it('rotates credentials with PATCH, audited, and still write-only', async () => {
        const node = (
          await addNode({ name: 'rotating', dockerHost: 'tcp://203.0.113.9:2376', tls: tls() })
        ).body;
        const rotated = await req('PATCH', `/api/nodes/${node.id}`, {
          token: keys.admin,
          body: { tls: { ca: pki.ca, cert: pki.otherClientCert, key: pki.otherClientKey } },
        });
        expect(rotated.status, rotated.text).toBe(200);
        expect(rotated.body).toMatchObject({
          id: node.id,
          tls: { configured: true },
          ssh: { configured: false },
        });
        expect(rotated.body.credentialsUpdatedAt >= node.credentialsUpdatedAt).toBe(true);
        const audit = await req('GET', `/api/audit-events?targetId=${node.id}`, {
          token: keys.viewer,
        });
        expect(audit.body.items.map((e: { action: string }) => e.action)).toEqual([
          'node.created',
          'node.credentials_rotated',
        ]);
        expect(audit.body.items[1]).toMatchObject({
          actorType: 'api_key',
          data: { name: 'rotating', credentials: ['tls'] },
        });
        for (const text of [rotated.text, audit.text])
          for (const m of material()) expect(text).not.toContain(m);

        const patch = (body: unknown, token = keys.admin, id = node.id) =>
          req('PATCH', `/api/nodes/${id}`, { token, body });
        const ssh = await patch({ ssh: { privateKey: sshKey, hostKey } });
        expect(ssh.status).toBe(400);
        expect(ssh.body.error.message).toContain('ssh: applies only to an ssh:// docker host');
        const empty = await patch({});
        expect(empty.status).toBe(400);
        expect(empty.body.error.message).toContain(
          'give at least one of name, labels, address, tls or ssh',
        );
        const bad = await patch({ tls: { ...tls(), cert: 'nope' } });
        expect(bad.status).toBe(400);
        expect(bad.body.error.message).toContain('tls.cert');
        expect((await patch({ tls: tls() }, keys.deployer)).status).toBe(403);
        expect((await patch({ tls: tls() }, b.token)).status).toBe(404);
        expect((await patch({ tls: tls() }, keys.admin, 'node_doesnotexist')).status).toBe(404);
      });

      it('never writes key material to the logs', () => {
        const all = api.logLines().join('\n');
        expect(all.length).toBeGreaterThan(0);
        for (const m of material()) expect(all).not.toContain(m);
      });
    });

    describe('registries', () => {
      it('stores a credential write-only: the password is never answered, listed or audited', async () => {
        const created = await req('POST', '/api/registries', {
          token: a.token,
          body: {
            server: 'https://Registry.Example.test:5000/v2/',
            username: 'ci',
            password: 'registry-secret-password',
          },
        });
        expect(created.status, created.text).toBe(201);
        expect(created.body).toMatchObject({
          server: 'registry.example.test:5000',
          username: 'ci',
        });
        expect(created.text).not.toContain('registry-secret-password');
        expect(created.body).not.toHaveProperty('sealedPassword');
        const listed = await req('GET', '/api/registries', { token: keys.viewer });
        expect(listed.status, listed.text).toBe(200);
        expect(listed.body.items.map((r: { id: string }) => r.id)).toContain(created.body.id);
        expect(listed.text).not.toContain('registry-secret-password');
        const audit = await req('GET', `/api/audit-events?targetId=${created.body.id}`, {
          token: a.token,
        });
        expect(audit.status, audit.text).toBe(200);
        expect(audit.body.items.map((e: { action: string }) => e.action)).toEqual([
          'registry.created',
        ]);
        for (const text of [audit.text, api.logLines().join('\n')])
          expect(text).not.toContain('registry-secret-password');
        // Docker Hub answers to several names: one credential covers them all.
        const hub = await req('POST', '/api/registries', {
          token: a.token,
          body: { server: 'index.docker.io', username: 'ci', password: 'p' },
        });
        expect(hub.status, hub.text).toBe(201);
        expect(hub.body.server).toBe('docker.io');
      });

      it('refuses a second credential for the same server, and a server that is not a host', async () => {
        const body = { server: 'twice.example.test', username: 'ci', password: 'p' };
        expect((await req('POST', '/api/registries', { token: a.token, body })).status).toBe(201);
        const again = await req('POST', '/api/registries', {
          token: a.token,
          body: { ...body, server: 'TWICE.example.test' },
        });
        expect(again.status, again.text).toBe(409);
        expect(again.body.error.message).toContain('twice.example.test');
        for (const server of ['not a host', 'registry.example.test:99999', 'a/b', '']) {
          const bad = await req('POST', '/api/registries', {
            token: a.token,
            body: { server, username: 'ci', password: 'p' },
          });
          expect(bad.status, `${server}: ${bad.text}`).toBe(400);
          expect(bad.text).toContain('server');
        }
        const noPassword = await req('POST', '/api/registries', {
          token: a.token,
          body: { server: 'nopass.example.test', username: 'ci', password: '' },
        });
        expect(noPassword.status, noPassword.text).toBe(400);
        expect(noPassword.text).toContain('password');
      });

      it('keeps orgs apart: another org neither sees nor deletes a credential; a deployer cannot add one', async () => {
        const mine = await req('POST', '/api/registries', {
          token: a.token,
          body: { server: 'apart.example.test', username: 'ci', password: 'p' },
        });
        expect(mine.status, mine.text).toBe(201);
        const theirs = await req('GET', '/api/registries', { token: b.token });
        expect(theirs.text).not.toContain(mine.body.id);
        const del = await req('DELETE', `/api/registries/${mine.body.id}`, { token: b.token });
        expect(del.status, del.text).toBe(404);
        const deployer = await req('POST', '/api/registries', {
          token: keys.deployer,
          body: { server: 'deployer.example.test', username: 'ci', password: 'p' },
        });
        expect(deployer.status, deployer.text).toBe(403);
        const gone = await req('DELETE', `/api/registries/${mine.body.id}`, { token: a.token });
        expect(gone.status, gone.text).toBe(204);
        const again = await req('DELETE', `/api/registries/${mine.body.id}`, { token: a.token });
        expect(again.status, again.text).toBe(404);
      });
    });

    describe('changing and deleting (issue 14)', () => {
      let projectId: string;
      let productionId: string;
      let nodeId: string;
      const base = {
        name: 'shop',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
      };
      const service = async (name: string) => {
        const res = await req('POST', '/api/services', {
          token: a.token,
          body: { ...base, projectId, name },
        });
        expect(res.status, res.text).toBe(201);
        return res.body.id as string;
      };

      beforeAll(async () => {
        const project = await req('POST', '/api/projects', {
          token: a.token,
          body: { name: 'changing' },
        });
        expect(project.status, project.text).toBe(201);
        projectId = project.body.id;
        productionId = project.body.environments[0].id;
        // Somewhere to place releases (no worker runs here: they stay queued, in flight).
        const node = await req('POST', '/api/nodes', {
          token: a.token,
          body: {
            name: 'change-node',
            dockerHost: 'unix:///var/run/docker.sock',
            address: '127.0.0.1',
          },
        });
        expect(node.status, node.text).toBe(201);
        nodeId = node.body.id;
      });

      it('changes a service, saying per field when it applies; health merges', async () => {
        const id = await service('patched');
        const res = await req('PATCH', `/api/services/${id}`, {
          token: keys.deployer,
          body: {
            name: 'renamed',
            image: 'selfdevop-test/app:v2',
            containerPort: 9090,
            env: { MODE: 'fast' },
            memoryMb: 256,
            cpus: 0.5,
            health: { successes: 3 },
            strategy: 'replace',
            warmSeconds: 30,
            drainSeconds: 10,
            sticky: true,
          },
        });
        expect(res.status, res.text).toBe(200);
        expect(res.body.applies).toEqual({
          name: 'now',
          image: 'next_release',
          containerPort: 'next_release',
          env: 'next_release',
          memoryMb: 'next_release',
          cpus: 'next_release',
          health: 'next_release',
          strategy: 'next_release',
          warmSeconds: 'next_release',
          drainSeconds: 'next_release',
          sticky: 'next_release',
        });
        const got = await req('GET', `/api/services/${id}`, { token: keys.viewer });
        expect(got.body).toMatchObject({
          name: 'renamed',
          image: 'selfdevop-test/app:v2',
          containerPort: 9090,
          env: { MODE: 'fast' },
          memoryMb: 256,
          cpus: 0.5,
          strategy: 'replace',
          warmSeconds: 30,
          drainSeconds: 10,
          sticky: true,
          // The other health settings keep their values.
          health: { successes: 3, intervalMs: 100, deadlineMs: 60_000 },
        });
        expect(got.body.hosts[0].host).toMatch(/^renamed-production-/);
        const audit = await req('GET', `/api/audit-events?targetId=${id}`, { token: a.token });
        const updated = audit.body.items.find(
          (e: { action: string }) => e.action === 'service.updated',
        );
        expect(updated.data).toMatchObject({
          name: { from: 'patched', to: 'renamed' },
          envNames: ['MODE'],
        });
        expect(JSON.stringify(updated.data)).not.toContain('fast');
      });

      it('refuses bad changes with a 400 naming the field, applying none of them', async () => {
        const id = await service('guarded');
        const bad: [Record<string, unknown>, string][] = [
          [{ replicas: 3 }, 'replicas'],
          [{ colour: 'blue' }, 'colour'],
          [{}, 'at least one field'],
          [{ name: 'Not A Label' }, 'name'],
          [{ image: 'UPPER/case:tag' }, 'image'],
          [{ containerPort: 0 }, 'containerPort'],
          [{ containerPort: 70000 }, 'containerPort'],
          [{ healthcheckPath: 'health' }, 'healthcheckPath'],
          [{ strategy: 'canary' }, 'strategy'],
          [{ warmSeconds: -1 }, 'warmSeconds'],
          [{ drainSeconds: 99_999 }, 'drainSeconds'],
          [{ sticky: 'yes' }, 'sticky'],
          [{ memoryMb: 1 }, 'memoryMb'],
          [{ health: { successes: 0 } }, 'health'],
          [{ env: { 'BAD-NAME': 'x' } }, 'env'],
          // One good field beside a bad one: nothing of it is applied.
          [{ containerPort: 9999, strategy: 'canary' }, 'strategy'],
        ];
        for (const [body, field] of bad) {
          const r = await req('PATCH', `/api/services/${id}`, { token: a.token, body });
          expect(r.status, JSON.stringify(body)).toBe(400);
          expect(r.body.error.message, JSON.stringify(body)).toContain(field);
        }
        const got = await req('GET', `/api/services/${id}`, { token: a.token });
        expect(got.body).toMatchObject({ name: 'guarded', containerPort: 8080 });
        expect(
          (await req('PATCH', `/api/services/${id}`, { token: b.token, body: { sticky: true } }))
            .status,
        ).toBe(404);
        expect(
          (
            await req('PATCH', `/api/services/${id}`, {
              token: keys.viewer,
              body: { sticky: true },
            })
          ).status,
        ).toBe(403);
        await service('taken');
        const clash = await req('PATCH', `/api/services/${id}`, {
          token: a.token,
          body: { name: 'taken' },
        });
        expect(clash.status, clash.text).toBe(409);
        expect(clash.body.error.code).toBe('service_exists');
      });

      it('refuses changes a release reads and deletes while one is in flight, naming it', async () => {
        const id = await service('busy');
        const release = await req('POST', '/api/releases', {
          token: keys.deployer,
          body: { serviceId: id, image: base.image },
        });
        expect(release.status, release.text).toBe(202);
        const patch = await req('PATCH', `/api/services/${id}`, {
          token: a.token,
          body: { containerPort: 9000 },
        });
        expect(patch.status, patch.text).toBe(409);
        expect(patch.body.error.code).toBe('release_in_flight');
        expect(patch.body.error.message).toContain(release.body.id);
        // A name is read by no release step.
        const renamed = await req('PATCH', `/api/services/${id}`, {
          token: a.token,
          body: { name: 'busy-2' },
        });
        expect(renamed.status, renamed.text).toBe(200);
        const del = await req('DELETE', `/api/services/${id}?confirm=busy-2`, { token: a.token });
        expect(del.status, del.text).toBe(409);
        expect(del.body.error.message).toContain(release.body.id);
        const redeploy = await req('POST', `/api/services/${id}/redeploy`, {
          token: a.token,
          body: {},
        });
        expect(redeploy.status, redeploy.text).toBe(409);
        expect(redeploy.body.error.code).toBe('nothing_deployed');
        const delEnv = await req('DELETE', `/api/environments/${productionId}?confirm=production`, {
          token: a.token,
        });
        expect(delEnv.status, delEnv.text).toBe(409);
        expect(delEnv.body.error.message).toContain(release.body.id);
        const delProject = await req('DELETE', `/api/projects/${projectId}?confirm=changing`, {
          token: a.token,
        });
        expect(delProject.status, delProject.text).toBe(409);
        expect(
          (await req('GET', `/api/services/${id}`, { token: a.token })).body.containerPort,
        ).toBe(8080);
        const cancelled = await req('POST', `/api/releases/${release.body.id}/cancel`, {
          token: a.token,
        });
        expect(cancelled.status, cancelled.text).toBe(200);
        expect(
          (await req('PATCH', `/api/services/${id}`, { token: a.token, body: { cpus: 1 } })).status,
        ).toBe(200);
      });

      it('deletes a service after its name is typed again, with its releases and secrets', async () => {
        const id = await service('doomed');
        await req('POST', `/api/services/${id}/secrets`, {
          token: a.token,
          body: { name: 'TOKEN', value: 'x' },
        });
        const release = await req('POST', '/api/releases', {
          token: a.token,
          body: { serviceId: id, image: 'selfdevop-test/app:v1' },
        });
        expect(release.status).toBe(202);
        await req('POST', `/api/releases/${release.body.id}/cancel`, { token: a.token });
        for (const q of ['', '?confirm=', '?confirm=DOOMED', '?confirm=other']) {
          const r = await req('DELETE', `/api/services/${id}${q}`, { token: a.token });
          expect(r.status, q).toBe(400);
          expect(r.body.error.message).toContain('doomed');
        }
        expect(
          (await req('DELETE', `/api/services/${id}?confirm=doomed`, { token: b.token })).status,
        ).toBe(404);
        expect(
          (await req('DELETE', `/api/services/${id}?confirm=doomed`, { token: keys.viewer }))
            .status,
        ).toBe(403);
        const del = await req('DELETE', `/api/services/${id}?confirm=doomed`, {
          token: keys.deployer,
        });
        expect(del.status, del.text).toBe(204);
        expect((await req('GET', `/api/services/${id}`, { token: a.token })).status).toBe(404);
        expect(
          (await req('GET', `/api/releases/${release.body.id}`, { token: a.token })).status,
        ).toBe(404);
        expect(
          (await req('DELETE', `/api/services/${id}?confirm=doomed`, { token: a.token })).status,
        ).toBe(404);
        const audit = await req('GET', `/api/audit-events?targetId=${id}`, { token: a.token });
        expect(audit.body.items.map((e: { action: string }) => e.action)).toContain(
          'service.deleted',
        );
      });

      it('renames and deletes environments; production keeps its name', async () => {
        const staging = await req('POST', '/api/environments', {
          token: a.token,
          body: { projectId, name: 'staging' },
        });
        expect(staging.status).toBe(201);
        const envId = staging.body.id as string;
        const renamed = await req('PATCH', `/api/environments/${envId}`, {
          token: keys.deployer,
          body: { name: 'qa' },
        });
        expect(renamed.status, renamed.text).toBe(200);
        expect(renamed.body).toMatchObject({ name: 'qa', applies: { name: 'now' } });
        const bad: [string, Record<string, unknown>, number][] = [
          [productionId, { name: 'prod' }, 400],
          [envId, { name: 'production' }, 409],
          [envId, { name: 'Q A' }, 400],
          [envId, { name: 'qa', colour: 'x' }, 400],
          [envId, {}, 400],
        ];
        for (const [target, body, status] of bad) {
          const r = await req('PATCH', `/api/environments/${target}`, { token: a.token, body });
          expect(r.status, JSON.stringify(body)).toBe(status);
        }
        expect(
          (
            await req('PATCH', `/api/environments/${envId}`, {
              token: b.token,
              body: { name: 'x' },
            })
          ).status,
        ).toBe(404);
        expect(
          (await req('DELETE', `/api/environments/${envId}?confirm=staging`, { token: a.token }))
            .status,
        ).toBe(400);
        const del = await req('DELETE', `/api/environments/${envId}?confirm=qa`, {
          token: a.token,
        });
        expect(del.status, del.text).toBe(204);
        expect((await req('GET', `/api/environments/${envId}`, { token: a.token })).status).toBe(
          404,
        );
      });

      it('promotes only what serves, between environments of one project', async () => {
        const id = await service('promoted');
        const staging = await req('POST', '/api/environments', {
          token: a.token,
          body: { projectId, name: 'stage' },
        });
        const stagingId = staging.body.id as string;
        const cases: [string, Record<string, unknown>, number, string][] = [
          [stagingId, { to: 'stage' }, 400, 'to'],
          [stagingId, { to: 'nowhere' }, 404, 'environment_not_found'],
          [stagingId, { to: 'production', serviceIds: [id] }, 409, 'nothing_deployed'],
          [stagingId, { to: 'production' }, 409, 'nothing_deployed'],
          [stagingId, { to: 'production', serviceIds: ['svc_0missing'] }, 404, 'service_not_found'],
          [stagingId, { to: 'production', extra: 1 }, 400, 'extra'],
          [stagingId, { to: 'production', serviceIds: [] }, 400, 'serviceIds'],
        ];
        for (const [env, body, status, what] of cases) {
          const r = await req('POST', `/api/environments/${env}/promote`, {
            token: keys.deployer,
            body,
          });
          expect(r.status, JSON.stringify(body)).toBe(status);
          expect(r.text, JSON.stringify(body)).toContain(what);
        }
        expect(
          (
            await req('POST', `/api/environments/${stagingId}/promote`, {
              token: b.token,
              body: { to: 'production' },
            })
          ).status,
        ).toBe(404);
        expect(
          (
            await req('POST', `/api/environments/${stagingId}/promote`, {
              token: keys.viewer,
              body: { to: 'production' },
            })
          ).status,
        ).toBe(403);
      });

      it('renames a project, and deletes it only without data services and after its name', async () => {
        const project = await req('POST', '/api/projects', {
          token: a.token,
          body: { name: 'brief' },
        });
        const id = project.body.id as string;
        const renamed = await req('PATCH', `/api/projects/${id}`, {
          token: keys.deployer,
          body: { name: 'brief-2' },
        });
        expect(renamed.status, renamed.text).toBe(200);
        expect(renamed.body).toMatchObject({ name: 'brief-2', applies: { name: 'now' } });
        expect(
          (
            await req('PATCH', `/api/projects/${id}`, {
              token: a.token,
              body: { name: 'changing' },
            })
          ).status,
        ).toBe(409);
        expect(
          (await req('PATCH', `/api/projects/${id}`, { token: a.token, body: { name: 'A B' } }))
            .status,
        ).toBe(400);
        expect(
          (await req('PATCH', `/api/projects/${id}`, { token: b.token, body: { name: 'x' } }))
            .status,
        ).toBe(404);
        const cache = await req('POST', '/api/data-services', {
          token: a.token,
          body: { projectId: id, name: 'cache', engine: 'redis' },
        });
        expect(cache.status, cache.text).toBe(202);
        const held = await req('DELETE', `/api/projects/${id}?confirm=brief-2`, { token: a.token });
        expect(held.status, held.text).toBe(409);
        expect(held.body.error).toMatchObject({ code: 'project_has_data_services' });
        expect(held.body.error.message).toContain('cache');
        expect((await req('GET', `/api/projects/${id}`, { token: a.token })).status).toBe(200);
      });

      it('changes a node: name and labels now, address by the registration rules', async () => {
        const res = await req('PATCH', `/api/nodes/${nodeId}`, {
          token: a.token,
          body: { name: 'change-node-2', labels: { role: 'app', region: 'fra' } },
        });
        expect(res.status, res.text).toBe(200);
        expect(res.body).toMatchObject({
          name: 'change-node-2',
          labels: { role: 'app', region: 'fra' },
          applies: { name: 'now', labels: 'now' },
          drainMode: false,
        });
        const refused = await req('PATCH', `/api/nodes/${nodeId}`, {
          token: a.token,
          body: { address: '169.254.169.254' },
        });
        expect(refused.status, refused.text).toBe(400);
        expect(refused.body.error.code).toBe('node_address_refused');
        const cases: [Record<string, unknown>, string][] = [
          [{ drainMode: true }, 'drainMode'],
          [{ labels: { UPPER: 'x' } }, 'labels'],
          [{ address: 'not an address!' }, 'address'],
          [{}, 'give at least one'],
        ];
        for (const [body, field] of cases) {
          const r = await req('PATCH', `/api/nodes/${nodeId}`, { token: a.token, body });
          expect(r.status, JSON.stringify(body)).toBe(400);
          expect(r.body.error.message).toContain(field);
        }
        expect(
          (await req('PATCH', `/api/nodes/${nodeId}`, { token: b.token, body: { name: 'x' } }))
            .status,
        ).toBe(404);
        expect(
          (
            await req('PATCH', `/api/nodes/${nodeId}`, {
              token: keys.deployer,
              body: { name: 'x' },
            })
          ).status,
        ).toBe(403);
        const got = await req('GET', `/api/nodes/${nodeId}`, { token: a.token });
        expect(got.body).toMatchObject({ name: 'change-node-2', address: '127.0.0.1' });
      });

      it('deletes a node only once nothing is placed on it, naming what holds it', async () => {
        const node = await req('POST', '/api/nodes', {
          token: a.token,
          body: {
            name: 'rm-node',
            dockerHost: 'unix:///var/run/docker.sock',
            address: '127.0.0.1',
            labels: { pool: 'rm' },
          },
        });
        expect(node.status, node.text).toBe(201);
        const id = node.body.id as string;
        // Only this node carries the label: the release in flight is placed on it.
        const svc = await req('POST', '/api/services', {
          token: a.token,
          body: { ...base, projectId, name: 'pinned', placement: { labels: { pool: 'rm' } } },
        });
        expect(svc.status, svc.text).toBe(201);
        const release = await req('POST', '/api/releases', {
          token: keys.deployer,
          body: { serviceId: svc.body.id, image: base.image },
        });
        expect(release.status, release.text).toBe(202);
        const held = await req('DELETE', `/api/nodes/${id}`, { token: a.token });
        expect(held.status, held.text).toBe(409);
        expect(held.body.error.code).toBe('node_holds_replicas');
        expect(held.body.error.message).toBe(
          `node rm-node holds replicas of pinned (release in flight ${release.body.id}, replica 0): drain it first (POST /api/nodes/{id}/drain), then delete it`,
        );
        const forced = await req('DELETE', `/api/nodes/${id}?force=true`, { token: a.token });
        expect(forced.status, forced.text).toBe(409);
        expect(forced.body.error.message).toContain('force only removes a lost node');
        const cases: [string, string, number][] = [
          [`/api/nodes/${id}?force=yes`, a.token, 400],
          [`/api/nodes/${id}`, keys.deployer!, 403],
          [`/api/nodes/${id}`, b.token, 404],
          ['/api/nodes/node_nosuch', a.token, 404],
        ];
        for (const [path, token, status] of cases)
          expect((await req('DELETE', path, { token })).status, path).toBe(status);
        expect((await req('GET', `/api/nodes/${id}`, { token: a.token })).status).toBe(200);
        await req('POST', `/api/releases/${release.body.id}/cancel`, { token: a.token });
        const gone = await req('DELETE', `/api/nodes/${id}`, { token: a.token });
        expect(gone.status, gone.text).toBe(204);
        expect((await req('GET', `/api/nodes/${id}`, { token: a.token })).status).toBe(404);
        expect((await req('DELETE', `/api/nodes/${id}`, { token: a.token })).status).toBe(404);
        // The cancelled release keeps its history without the node.
        const old = await req('GET', `/api/releases/${release.body.id}`, { token: a.token });
        expect(old.body).toMatchObject({ status: 'failed', nodeId: null });
        const audit = await req('GET', `/api/audit-events?action=node.deleted&limit=10`, {
          token: a.token,
        });
        expect(audit.body.items).toEqual([
          expect.objectContaining({
            targetId: id,
            data: expect.objectContaining({ name: 'rm-node', force: false, writtenOff: [] }),
          }),
        ]);

        // A data service keeps its volume on its node: that holds the node too.
        const other = await req('POST', '/api/nodes', {
          token: a.token,
          body: {
            name: 'ds-node',
            dockerHost: 'unix:///var/run/docker.sock',
            address: '127.0.0.1',
          },
        });
        expect(other.status, other.text).toBe(201);
        const cache = await req('POST', '/api/data-services', {
          token: a.token,
          body: { projectId, name: 'rm-cache', engine: 'redis', nodeId: other.body.id },
        });
        expect(cache.status, cache.text).toBe(202);
        const data = await req('DELETE', `/api/nodes/${other.body.id}`, { token: a.token });
        expect(data.status, data.text).toBe(409);
        expect(data.body.error).toMatchObject({
          code: 'node_holds_data_services',
          message:
            'node ds-node holds the data service rm-cache (their data volumes are on it): delete it first',
        });
      });
    });

    describe('bad bodies', () => {
      it('answers malformed JSON, non-objects, empty bodies and NUL characters with 400', async () => {
        const cases = [
          '{"name":',
          '[]',
          '"text"',
          'null',
          '',
          '{"name":"a\\u0000b"}',
          '{"name":"\\ud800"}',
        ];
        for (const rawBody of cases) {
          const res = await req('POST', '/api/projects', { token: a.token, rawBody });
          expect(res.status, rawBody).toBe(400);
          expect(res.body.error.message).toEqual(expect.any(String));
        }
      });

      it('refuses bodies over the limit with 413', async () => {
        // The server answers before reading the whole body, then closes that connection.
        const res = await req('POST', '/api/orgs', {
          token: a.token,
          rawBody: JSON.stringify({ name: 'x'.repeat(400_000) }),
          headers: { connection: 'close' },
        });
        expect(res.status).toBe(413);
        expect(res.body.error.code).toBe('payload_too_large');
      });
    });

    describe('audit trail and logs', () => {
      it('records every change with its actor', async () => {
        const res = await req('POST', '/api/projects', {
          token: keys.deployer,
          body: { name: 'audited' },
        });
        const audit = await req('GET', `/api/audit-events?targetId=${res.body.id}`, {
          token: keys.viewer,
        });
        expect(audit.status).toBe(200);
        expect(audit.body.items).toEqual([
          expect.objectContaining({
            action: 'project.created',
            actorType: 'api_key',
            targetId: res.body.id,
            requestId: expect.any(String),
          }),
        ]);
        const keyAudit = await req('GET', '/api/audit-events?action=api_key.created&limit=200', {
          token: a.token,
        });
        expect(keyAudit.body.items.length).toBeGreaterThanOrEqual(3);
        expect(keyAudit.text).not.toContain(keys.admin);
      });

      it('never writes passwords, tokens or keys to the logs', () => {
        const all = api.logLines().join('\n');
        expect(all.length).toBeGreaterThan(0);
        for (const secret of [password, a.token, b.token, keys.admin, keys.deployer, keys.viewer]) {
          expect(all).not.toContain(secret);
        }
      });
    });
  });
}
