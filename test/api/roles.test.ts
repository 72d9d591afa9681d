/**
 * The role × endpoint table: every operation of the OpenAPI document, called by a person
 * and by an API key of each of the four roles, must answer 403 exactly to the roles its
 * declared permission (`x-permission`, core/roles.ts) excludes. The core enforces roles;
 * this walks the whole API to prove it does so everywhere, so an operation added without a
 * permission, or whose use case forgets its check, fails here.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { roles, type Role } from '../../core/models.ts';
import { can, permissions, type Permission } from '../../core/roles.ts';
import { startSelfhostApi } from '../support/api.ts';
import type { ApiResponse } from '../support/http.ts';
import { startSmtpServer } from '../support/smtp.ts';

const password = 'correct horse battery';
type Api = Awaited<ReturnType<typeof startSelfhostApi>>;

interface Caller {
  kind: 'user' | 'key';
  role: Role;
  token: string;
  email?: string;
}

// Ids that cannot exist: an allowed role gets past the role check to a 404, never a 403.
const missing = {
  id: 'x_0nothing',
  keyId: 'key_0nothing',
  userId: 'usr_0nothing',
  name: 'NOTHING',
  hookId: 'ph_0nothing',
};

/**
 * The operations anyone may call, each with why it needs no credentials; a new public
 * operation must be added here with its reason, or the first test fails.
 */
const publicOperations: Record<string, string> = {
  'post /api/auth/local/signup': 'making an account: there are no credentials yet',
  'post /api/auth/local/login': 'getting credentials',
  'get /api/domains/ask':
    'Caddy’s on-demand TLS ask, from the edge; answers only yes or no for a host',
  'post /api/hooks/push/{hookId}':
    'a git host’s push: the HMAC signature (or GitLab token) over the body is the credential; unknown hooks are 404, bad signatures 401',
  'post /api/alerts/alertmanager':
    'Alertmanager’s webhook: the bearer ALERT_RECEIVER_TOKEN is the credential; without one configured it is 404, a wrong one 401',
};

const sshKey = generateKeyPairSync('ed25519')
  .privateKey.export({ type: 'pkcs8', format: 'pem' })
  .toString();

/**
 * A valid body for each operation that takes one, chosen to do no harm when allowed: it
 * names something missing, or makes something small. A new operation with a body needs
 * its sample here (the test says so).
 */
const bodies: Record<string, () => unknown> = {
  'post /api/auth/local/signup': () => ({ email: unique('table'), password }),
  'post /api/auth/local/login': () => ({ email: 'nobody@example.com', password: 'wrong one' }),
  'post /api/orgs': () => ({ name: 'Table org' }),
  'post /api/orgs/{orgId}/api-keys': () => ({ name: unique('key'), role: 'viewer' }),
  'post /api/invites': () => ({ email: unique('invitee'), role: 'viewer' }),
  'post /api/invites/accept': () => ({ token: `sdi_${'A'.repeat(43)}` }),
  'patch /api/members/{userId}': () => ({ role: 'viewer' }),
  'post /api/projects': () => ({
    name: unique('p')
      .replace(/[^a-z0-9]/g, '')
      .slice(0, 30),
  }),
  'post /api/environments': () => ({ projectId: 'prj_0nothing', name: 'staging' }),
  'post /api/services': () => ({
    projectId: 'prj_0nothing',
    name: 'web',
    image: 'busybox:1',
    containerPort: 8080,
    healthcheckPath: '/health',
  }),
  'patch /api/services/{id}': () => ({ git: { url: 'https://git.example.test/table.git' } }),
  'post /api/services/{id}/redeploy': () => ({}),
  'patch /api/projects/{id}': () => ({ name: 'renamed' }),
  'patch /api/environments/{id}': () => ({ name: 'renamed' }),
  'post /api/environments/{id}/promote': () => ({ to: 'production' }),
  'post /api/services/{id}/scale': () => ({ replicas: 2 }),
  'post /api/services/{id}/stop': () => ({}),
  'post /api/services/{id}/start': () => ({ replicas: 1 }),
  'post /api/nodes': () => ({
    name: unique('n')
      .replace(/[^a-z0-9]/g, '')
      .slice(0, 30),
    dockerHost: 'unix:///var/run/table.sock',
    address: '127.0.0.1',
  }),
  'patch /api/nodes/{id}': () => ({ ssh: { privateKey: sshKey, insecureIgnoreHostKey: true } }),
  'post /api/releases': () => ({ serviceId: 'svc_0nothing', image: 'busybox:1' }),
  'post /api/deploy-jobs': () => ({ serviceId: 'svc_0nothing', image: 'busybox:1' }),
  'post /api/domains': () => ({ serviceId: 'svc_0nothing', hostname: 'table.example.test' }),
  'post /api/services/{id}/secrets': () => ({ name: 'TABLE', value: 'x' }),
  // Loopback is refused after the role check (400), so nothing is ever delivered.
  'post /api/webhooks': () => ({ url: 'http://127.0.0.1:9/hook' }),
  // A made-up registry: nothing is ever pulled with it.
  'post /api/registries': () => ({
    server: `registry-${Math.random().toString(36).slice(2, 8)}.example.test`,
    username: 'ci',
    password: 'token',
  }),
  // Not Slack's host: refused after the role check (400), so nothing is ever sent.
  'post /api/notification-channels': () => ({
    kind: 'slack',
    name: 'table',
    url: 'http://127.0.0.1:9/services/T/B/C',
  }),
  'post /api/data-services': () => ({ projectId: 'prj_0nothing', name: 'cache', engine: 'redis' }),
  'post /api/data-services/{id}/links': () => ({ serviceId: 'svc_0nothing' }),
  // No such service: 404 after the role check, so nothing is ever scheduled.
  'post /api/jobs': () => ({
    serviceId: 'svc_0nothing',
    name: 'table',
    schedule: '0 3 * * *',
    command: 'true',
  }),
  'patch /api/jobs/{id}': () => ({ retries: 1 }),
  'put /api/alerts/thresholds': () => ({
    serviceId: 'svc_0nothing',
    rule: 'latency_p95',
    value: 2,
  }),
  'post /api/alerts/alertmanager': () => ({ status: 'firing', alerts: [] }),
  'put /api/data-services/{id}/backup-schedule': () => ({ cron: '0 3 * * *' }),
  'put /api/data-services/{id}/backup-retention': () => ({ daily: 14 }),
  'put /api/data-services/{id}/drill-schedule': () => ({ drillSchedule: 'weekly' }),
  'patch /api/control-backups/settings': () => ({ schedule: '0 2 * * *' }),
  'post /api/control-backups/restore': () => ({ backupId: missing.id, database: 'sdo_nothing' }),
  'post /api/data-services/{id}/restore': () => ({ backupId: 'bak_0nothing', target: 'new' }),
  'post /api/data-services/{id}/upgrade': () => ({ version: '15.99' }),
  'post /api/data-services/{id}/backups/{backupId}/export': () => ({
    passphrase: 'twelve chars or more',
  }),
  'post /api/data-services/{id}/backups/import': () => ({
    passphrase: 'twelve chars or more',
    bundle: {
      kind: 'selfdevop-data-backup',
      format: 1,
      wrappedKey: 'v1.scrypt.nothing',
      exportedAt: '2026-01-01T00:00:00.000Z',
      manifest: {
        format: 2,
        backupId: 'bak_0nothing',
        dataServiceId: 'dat_0nothing',
        engine: 'redis',
        serverVersion: '7.0.15',
        tool: 'redis BGSAVE + dump.rdb | gzip -6',
        encoding: 'gzip+aes-256-gcm',
        rawBytes: 1,
        storedBytes: 29,
        sha256: '0'.repeat(64),
        rawSha256: null,
        tables: {},
        keys: 0,
        takenAt: '2026-01-01T00:00:00.000Z',
      },
    },
  }),
  // Streamed as it is (octet-stream): any bytes do, the data service is missing.
  'put /api/data-services/{id}/backups/{backupId}/object': () => 'not a backup',
};

let counter = 0;
const unique = (what: string) => `${what}${++counter}x${Date.now()}@example.com`;

interface Operation {
  method: string;
  path: string;
  permission: string | undefined;
  hasBody: boolean;
}

let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let api: Api;
let orgId: string;
let operations: Operation[];
const callers: Caller[] = [];

beforeAll(async () => {
  smtp = await startSmtpServer();
  api = await startSelfhostApi({
    signupMode: 'open',
    smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
    publicUrl: 'http://deploy.example.test',
    signupLimits: { perIp: 10_000 },
  });
  const req = api.request;
  const ownerEmail = unique('owner');
  const owner = await req('POST', '/api/auth/local/signup', {
    body: { email: ownerEmail, password },
  });
  orgId = owner.body.org.id;
  callers.push({ kind: 'user', role: 'owner', token: owner.body.token, email: ownerEmail });
  // People of the other roles join the way people do: by the emailed invite.
  for (const role of ['admin', 'deployer', 'viewer'] as const) {
    const email = unique(role);
    const invite = await req('POST', '/api/invites', {
      token: owner.body.token,
      body: { email, role },
    });
    expect(invite.status, invite.text).toBe(201);
    const mail = smtp.received.find((m) => m.to === email)!;
    const token = /token=(sdi_[\w-]+)/.exec(mail.text)![1]!;
    const joined = await req('POST', '/api/auth/local/signup', {
      body: { email, password, inviteToken: token },
    });
    expect(joined.status, joined.text).toBe(201);
    callers.push({ kind: 'user', role, token: joined.body.token, email });
  }
  for (const role of roles) {
    const key = await req('POST', `/api/orgs/${orgId}/api-keys`, {
      token: owner.body.token,
      body: { name: `table-${role}`, role },
    });
    expect(key.status, key.text).toBe(201);
    callers.push({ kind: 'key', role, token: key.body.key });
  }
  const doc = (await req('GET', '/openapi.json')).body as {
    paths: Record<string, Record<string, { 'x-permission'?: string; requestBody?: unknown }>>;
  };
  operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({
      method,
      path,
      permission: op['x-permission'],
      hasBody: op.requestBody !== undefined,
    })),
  );
}, 60_000);

afterAll(async () => {
  await api?.close();
  await smtp?.close();
});

const key = (op: Pick<Operation, 'method' | 'path'>) => `${op.method} ${op.path}`;
const known = new Set<string>([...Object.keys(permissions), 'signed-in', 'anyone', 'operator']);

async function call(op: Operation, caller: Caller | null): Promise<ApiResponse> {
  const path = op.path
    .replace('{orgId}', orgId)
    .replace(/\{(\w+)\}/g, (_, name: string) => missing[name as keyof typeof missing] ?? 'x_0');
  return api.request(op.method.toUpperCase(), path, {
    ...(caller ? { token: caller.token } : {}),
    headers: { 'x-org-id': orgId },
    ...(op.hasBody ? { body: bodies[key(op)]!() } : {}),
  });
}

describe('role × endpoint', () => {
  it('gives every operation a known permission, and every body a sample', () => {
    expect(operations.length).toBeGreaterThan(40);
    expect(operations.filter((op) => !known.has(String(op.permission))).map(key)).toEqual([]);
    expect(operations.filter((op) => op.hasBody && !bodies[key(op)]).map(key)).toEqual([]);
    expect(
      operations
        .filter((op) => op.permission === 'anyone')
        .map(key)
        .sort(),
    ).toEqual(Object.keys(publicOperations).sort());
  });

  it('answers 403 to exactly the roles each permission excludes, for people and keys', async () => {
    const wrong: string[] = [];
    for (const op of operations) {
      // Logging out ends the caller's session; it has its own test below.
      if (key(op) === 'post /api/auth/logout') continue;
      if (op.permission === 'anyone') {
        const res = await call(op, null);
        // It may refuse what was asked (a wrong password, an unknown domain), never the caller.
        const code = res.body?.error?.code;
        if (code === 'unauthenticated' || code === 'forbidden' || res.status >= 500)
          wrong.push(`${key(op)} without credentials → ${res.status} ${res.text}`);
        continue;
      }
      for (const caller of callers) {
        const res = await call(op, caller);
        const who = `${caller.role} ${caller.kind}`;
        if (res.status >= 500) wrong.push(`${key(op)} as ${who} → ${res.status} ${res.text}`);
        // The install's first account is its operator; no API key ever is.
        const allowed =
          op.permission === 'operator'
            ? caller.kind === 'user' && caller.role === 'owner'
            : op.permission === 'signed-in' || can(caller.role, op.permission as Permission);
        if (allowed && res.status === 403)
          wrong.push(
            `${key(op)} as ${who} → 403 but ${op.permission} allows it: ${res.text.slice(0, 200)}`,
          );
        if (!allowed && (res.status !== 403 || res.body?.error?.code !== 'forbidden'))
          wrong.push(
            `${key(op)} as ${who} → ${res.status}, expected 403: ${res.text.slice(0, 200)}`,
          );
      }
    }
    expect(wrong).toEqual([]);
  }, 120_000);

  it('refuses every operation that needs credentials without them', async () => {
    const open: string[] = [];
    for (const op of operations.filter((o) => o.permission !== 'anyone')) {
      const res = await call(op, null);
      if (res.status !== 401) open.push(`${key(op)} → ${res.status}`);
    }
    expect(open).toEqual([]);
  });

  it('lets a person of every role log out', async () => {
    for (const caller of callers.filter((c) => c.kind === 'user')) {
      const login = await api.request('POST', '/api/auth/local/login', {
        body: { email: caller.email, password },
      });
      expect(login.status).toBe(200);
      const out = await api.request('POST', '/api/auth/logout', { token: login.body.token });
      expect(out.status, `${caller.role}: ${out.text}`).toBe(204);
    }
  });
});
