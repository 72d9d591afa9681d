import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cognitoUserId, fromCloud, fromIdentityRepo } from '../../adapters/modes/cloud.ts';
import {
  CloudConfigError,
  fromCloudDatabaseEnv,
  fromCloudEnv,
} from '../../adapters/modes/cloud-config.ts';
import pg from 'pg';
import {
  databaseUrlFromSecret,
  readSecretFromExtension,
} from '../../adapters/modes/cloud-secrets.ts';
import { MemoryRuntime } from '../../adapters/runtime/memory.ts';
import { LambdaSwarmMembers } from '../../adapters/swarm-members/lambda.ts';
import { createApiHandler } from '../../functions/lambda/api-handler.ts';
import { runMigrations } from '../../functions/lambda/migrate.ts';
import { adminUrl, createTestDatabase, withLoginRolesLock } from '../support/db.ts';
import { lambdaRequester, type LambdaHttpHandler } from './lambda-requester.ts';

const env = {
  AWS_REGION: 'eu-west-1',
  DATABASE_URL: 'postgres://selfdevop:pw@db.internal:5432/selfdevop',
  COGNITO_USER_POOL_ID: 'eu-west-1_AbC123',
  COGNITO_CLIENT_ID: 'abc123client',
  COGNITO_DOMAIN: 'selfdevop.auth.eu-west-1.amazoncognito.com',
  DASHBOARD_URL: 'https://console.example.com',
  SECRETS_KMS_KEY_ID: 'alias/selfdevop-secrets',
  OBJECTS_BUCKET: 'selfdevop-objects-111122223333',
  SCHEDULER_ROLE_ARN: 'arn:aws:iam::111122223333:role/selfdevop-scheduler',
  MAIL_FROM: 'noreply@example.com',
  EDGE_DOMAIN: 'apps.example.com',
  CADDY_ADMIN_URL: 'http://10.0.0.5:2019',
};

describe('cloud configuration', () => {
  it('reads a complete environment with defaults', () => {
    expect(fromCloudEnv(env)).toMatchObject({
      ...env,
      QUEUE_NAME_PREFIX: 'selfdevop-',
      SCHEDULE_GROUP: 'selfdevop',
      SCHEDULE_RULE_PREFIX: 'selfdevop-',
      PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: '2773',
      SIGNUP_MODE: 'closed',
      DB_POOL_MAX: 2,
      LOG_LEVEL: 'info',
    });
  });

  it('names every bad or missing variable', () => {
    const error = (() => {
      try {
        fromCloudEnv({
          ...env,
          AWS_REGION: 'mars',
          COGNITO_USER_POOL_ID: undefined,
          OBJECTS_BUCKET: 'Bad_Bucket',
          SCHEDULER_ROLE_ARN: 'x',
          MAIL_FROM: 'a, b',
          SCHEDULE_RULE_PREFIX: 'a rule/',
        });
      } catch (e) {
        return e as Error;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(CloudConfigError);
    for (const name of [
      'AWS_REGION',
      'COGNITO_USER_POOL_ID',
      'OBJECTS_BUCKET',
      'SCHEDULER_ROLE_ARN',
      'MAIL_FROM',
      'SCHEDULE_RULE_PREFIX',
    ])
      expect(error?.message).toContain(`  ${name}: `);
    expect(error?.message).not.toContain('EDGE_DOMAIN');
  });

  it('keeps a build inside the worker function: 100 s by default and at most', () => {
    expect(fromCloudEnv(env)).toMatchObject({
      BUILD_TIMEOUT_SECONDS: 100,
      BUILD_BUILDER: 'buildkit',
      GIT_BIN: 'git',
    });
    expect(
      fromCloudEnv({ ...env, BUILD_TIMEOUT_SECONDS: '60', GIT_BIN: '/opt/bin/git' }),
    ).toMatchObject({
      BUILD_TIMEOUT_SECONDS: 60,
      GIT_BIN: '/opt/bin/git',
    });
    expect(() => fromCloudEnv({ ...env, BUILD_TIMEOUT_SECONDS: '900' })).toThrow(
      /BUILD_TIMEOUT_SECONDS: must be at most 100: a build runs inside the worker function/,
    );
  });

  it('reads the custom-domain and ledger settings, and names bad ones', () => {
    expect(
      fromCloudEnv({
        ...env,
        EDGE_IPV4: '203.0.113.10,203.0.113.11',
        DNS_SERVERS: '10.0.0.2,[2001:db8::53]:53',
        EDGE_TLS_ADDRESS: 'edge.internal:443',
      }),
    ).toMatchObject({
      EDGE_IPV4: '203.0.113.10,203.0.113.11',
      DNS_SERVERS: '10.0.0.2,[2001:db8::53]:53',
      EDGE_TLS_ADDRESS: 'edge.internal:443',
      IDEMPOTENCY_RETENTION_DAYS: 14,
    });
    const bad = {
      ...env,
      EDGE_IPV4: '203.0.113.10;x',
      DNS_SERVERS: 'resolver.internal',
      EDGE_TLS_ADDRESS: 'edge.internal',
      IDEMPOTENCY_RETENTION_DAYS: '0',
    };
    expect(() => fromCloudEnv(bad)).toThrow(CloudConfigError);
    const message = (() => {
      try {
        fromCloudEnv(bad);
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    expect(message).toContain('  EDGE_IPV4: must be comma-separated IPv4 addresses');
    expect(message).toContain('  DNS_SERVERS: must be comma-separated ip[:port]');
    expect(message).toContain('  EDGE_TLS_ADDRESS: must be host:port');
    expect(message).toContain('  IDEMPOTENCY_RETENTION_DAYS: must be at least 1');
  });

  it('needs the hosted sign-in domain and the dashboard origin, https unless on localhost', () => {
    const problems = (overrides: Record<string, string | undefined>) => {
      try {
        fromCloudEnv({ ...env, ...overrides });
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(problems({ COGNITO_DOMAIN: undefined, DASHBOARD_URL: undefined })).toMatch(
      / {2}COGNITO_DOMAIN: .*\n {2}DASHBOARD_URL: /,
    );
    expect(
      problems({ COGNITO_DOMAIN: 'https://selfdevop.auth.eu-west-1.amazoncognito.com' }),
    ).toContain('  COGNITO_DOMAIN: must be a domain name such as');
    for (const bad of [
      'http://console.example.com',
      'https://console.example.com/dashboard',
      'console.example.com',
    ])
      expect(problems({ DASHBOARD_URL: bad }), bad).toContain(
        '  DASHBOARD_URL: must be an https:// origin',
      );
    expect(
      fromCloudEnv({ ...env, DASHBOARD_URL: 'https://console.example.com/' }).DASHBOARD_URL,
    ).toBe('https://console.example.com');
    expect(fromCloudEnv({ ...env, DASHBOARD_URL: 'http://localhost:8080' }).DASHBOARD_URL).toBe(
      'http://localhost:8080',
    );
  });

  it('needs DATABASE_URL or DATABASE_SECRET_ARN', () => {
    expect(() => fromCloudEnv({ ...env, DATABASE_URL: undefined })).toThrow(
      'DATABASE_URL: is required (or DATABASE_SECRET_ARN)',
    );
    expect(
      fromCloudEnv({
        ...env,
        DATABASE_URL: '',
        DATABASE_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-AbCdEf',
      }).DATABASE_SECRET_ARN,
    ).toMatch(/^arn:aws:secretsmanager/);
  });

  it('builds the database URL from an RDS secret, escaping the password, with TLS required', () => {
    const url = databaseUrlFromSecret(
      JSON.stringify({
        username: 'postgres',
        password: 'p@ss/w:rd',
        host: 'db.abc.eu-west-1.rds.amazonaws.com',
        port: 5432,
        dbname: 'selfdevop',
        engine: 'postgres',
      }),
    );
    const parsed = new URL(url);
    expect(decodeURIComponent(parsed.password)).toBe('p@ss/w:rd');
    expect(parsed.hostname).toBe('db.abc.eu-west-1.rds.amazonaws.com');
    expect(parsed.pathname).toBe('/selfdevop');
    expect(parsed.searchParams.get('sslmode')).toBe('require');
    expect(() => databaseUrlFromSecret('{"username":"u"}')).toThrow(
      'DATABASE_SECRET_ARN: the secret has no password',
    );
    expect(() => databaseUrlFromSecret('nope')).toThrow(
      'DATABASE_SECRET_ARN: the secret is not JSON',
    );
  });
});

describe('secrets through the Parameters and Secrets extension', () => {
  let port: number;
  const server = createServer((req, res) => {
    const ok =
      req.headers['x-aws-parameters-secrets-token'] === 'session-token' &&
      req.url?.startsWith('/secretsmanager/get?secretId=arn%3Aaws');
    res.writeHead(ok ? 200 : 403, { 'content-type': 'application/json' });
    res.end(
      ok ? JSON.stringify({ SecretString: '{"username":"u","password":"p","host":"h"}' }) : '{}',
    );
  });
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('reads the secret with the session token, and names the variable when refused', async () => {
    const extEnv = {
      PARAMETERS_SECRETS_EXTENSION_HTTP_PORT: String(port),
      AWS_SESSION_TOKEN: 'session-token',
    };
    expect(
      await readSecretFromExtension('arn:aws:secretsmanager:eu-west-1:1:secret:db', extEnv),
    ).toContain('"host":"h"');
    await expect(
      readSecretFromExtension('arn:aws:secretsmanager:eu-west-1:1:secret:db', {
        ...extEnv,
        AWS_SESSION_TOKEN: 'wrong',
      }),
    ).rejects.toThrow('DATABASE_SECRET_ARN: the secrets extension answered 403');
  });
});

describe('Cognito users', () => {
  it('map to selfdevop users by subject, then by email', async () => {
    const sub = '9f1c2a3b-4d5e-6f70-8192-a3b4c5d6e7f8';
    expect(cognitoUserId(sub)).toBe('usr_9f1c2a3b4d5e6f708192a3b4c5d6e7f8');
    const users = new Map([[cognitoUserId(sub), { id: cognitoUserId(sub) }]]);
    const resolve = fromIdentityRepo({
      findUserById: async (id) => (users.get(id) as never) ?? null,
      findUserByEmail: async (email) =>
        email === 'old@example.com' ? ({ id: 'usr_old' } as never) : null,
    });
    expect(await resolve(sub)).toBe(cognitoUserId(sub));
    expect(await resolve('other', 'old@example.com')).toBe('usr_old');
    expect(await resolve('other', 'new@example.com')).toBeNull();
    expect(await resolve('other')).toBeNull();
  });
});

describe('migrate Lambda and the cloud composition root', () => {
  let db: { url: string; drop: () => Promise<void> };
  beforeAll(async () => {
    db = await createTestDatabase('cloud_migrate');
  });
  afterAll(async () => db?.drop());

  it('applies the migrations once, from DATABASE_URL or from the RDS secret', async () => {
    const first = await runMigrations(fromCloudDatabaseEnv({ DATABASE_URL: db.url }));
    expect(first.applied.length).toBeGreaterThan(0);
    const u = new URL(db.url);
    const secret = JSON.stringify({
      username: u.username,
      password: 'unused',
      host: u.hostname,
      port: Number(u.port),
      dbname: u.pathname.slice(1),
    });
    // The secret path builds an sslmode=require URL; the local server has no TLS, so
    // only the URL it would connect to is checked here.
    expect(databaseUrlFromSecret(secret)).toContain(
      `@${u.hostname}:${u.port}${u.pathname}?sslmode=require`,
    );
    expect(await runMigrations(fromCloudDatabaseEnv({ DATABASE_URL: db.url }))).toEqual({
      applied: [],
      logins: [],
    });
    expect(() => fromCloudDatabaseEnv({})).toThrow(
      'DATABASE_URL: is required (or DATABASE_SECRET_ARN)',
    );
    expect(() => fromCloudDatabaseEnv({ DATABASE_URL: 'mysql://x' })).toThrow(CloudConfigError);
  });

  it('sets the API login’s password from its own secret, and refuses a secret for another user', async () => {
    const apiSecret = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:selfdevop-api';
    const secrets: Record<string, string> = {
      [apiSecret]: JSON.stringify({ username: 'selfdevop_api', password: 'from-the-api-secret-1' }),
    };
    const read = async (arn: string) => secrets[arn] ?? '';
    const config = fromCloudDatabaseEnv({
      DATABASE_URL: db.url,
      API_DATABASE_SECRET_ARN: apiSecret,
    });
    await expect(withLoginRolesLock(() => runMigrations(config, read))).resolves.toEqual({
      applied: [],
      logins: ['api'],
    });
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      const r = await admin.query<{ rolcanlogin: boolean }>(
        `select rolcanlogin from pg_roles where rolname = 'selfdevop_api'`,
      );
      expect(r.rows).toEqual([{ rolcanlogin: true }]);
    } finally {
      await admin.end();
    }
    secrets[apiSecret] = JSON.stringify({ username: 'selfdevop', password: 'master-password-00' });
    await expect(runMigrations(config, read)).rejects.toThrow(
      "API_DATABASE_SECRET_ARN: the secret's username is selfdevop, not selfdevop_api",
    );
    secrets[apiSecret] = 'not json';
    await expect(runMigrations(config, read)).rejects.toThrow(
      'API_DATABASE_SECRET_ARN: the secret is not JSON',
    );
    expect(() =>
      fromCloudDatabaseEnv({ DATABASE_URL: db.url, API_DATABASE_SECRET_ARN: 'selfdevop-api' }),
    ).toThrow('API_DATABASE_SECRET_ARN: must be a Secrets Manager secret ARN');
  });

  it('wires every port from the configuration without calling AWS', async () => {
    const lines: string[] = [];
    const system = await fromCloud(
      fromCloudEnv({ ...env, DATABASE_URL: db.url, EDGE_IPV4: '203.0.113.10' }),
      {
        logDestination: { write: (l) => void lines.push(l) },
      },
    );
    try {
      expect(system.queue.physicalNames('release-steps').main).toBe('selfdevop-release-steps.fifo');
      expect(system.objects.bucket).toBe(env.OBJECTS_BUCKET);
      expect(system.scheduler.groupName).toBe('selfdevop');
      // A SaaS refuses webhooks into private networks (SSRF).
      // ...and nodes of tenants at public addresses only, with no operator unless named.
      expect(system.api.config).toEqual({
        signupMode: 'closed',
        edgeDomain: 'apps.example.com',
        allowPrivateWebhooks: false,
        // Nor builds from its own network.
        allowPrivateGitHosts: false,
        // Invite links open the dashboard.
        publicUrl: 'https://console.example.com',
        operatorEmails: [],
        tenantPrivateNodes: false,
      });
      expect(system.api.mailer).toBe(system.mailer);
      expect(system.release.config.tenantPrivateNodes).toBe(false);
      expect(system.api.domains?.deps).toBe(system.domains);
      expect(system.domains.config).toMatchObject({
        edgeDomain: 'apps.example.com',
        edgeIpv4: ['203.0.113.10'],
      });
      expect(system.domains.events).toBe(system.release.events);
      expect(system.webhooks.queue).toBe(system.queue);
      // ...and checks again at delivery, against the address the name resolves to then.
      const delivery = await system.webhooks.http.post('http://localhost:9/hook', '{}', {}, 2_000);
      expect(delivery).toEqual({
        status: null,
        error: expect.stringMatching(
          /^refused: localhost \((127\.0\.0\.1|::1)\) is a loopback address$/,
        ),
      });
      // Private ranges too: a SaaS's own network is never a tenant's target.
      expect(await system.webhooks.http.post('http://10.1.2.3:9/hook', '{}', {}, 2_000)).toEqual({
        status: null,
        error: 'refused: 10.1.2.3 is a private address',
      });
      await expect(system.api.store.ping()).resolves.toBeUndefined();
      // The default ledger is PostgreSQL's, pruned by the maintenance job.
      await system.maintenance();
      expect(lines.join('\n')).toContain('idempotency keys past retention forgotten');
    } finally {
      await system.close();
    }
  });

  it('hands Swarm member calls to the worker function named, and the worker answers them itself', async () => {
    const api = await fromCloud(
      fromCloudEnv({ ...env, DATABASE_URL: db.url, WORKER_FUNCTION_NAME: 'selfdevop-worker' }),
      { logDestination: { write: () => undefined } },
    );
    // The worker (a runtime given) reaches the managers: no hand-off, the use cases run there.
    const worker = await fromCloud(
      fromCloudEnv({ ...env, DATABASE_URL: db.url, WORKER_FUNCTION_NAME: 'selfdevop-worker' }),
      { logDestination: { write: () => undefined }, runtime: new MemoryRuntime() },
    );
    // Without the name, the API says it reaches no engine (core/nodes/cluster.ts).
    const alone = await fromCloud(fromCloudEnv({ ...env, DATABASE_URL: db.url }), {
      logDestination: { write: () => undefined },
    });
    try {
      expect(api.api.swarmMembers).toBeInstanceOf(LambdaSwarmMembers);
      expect(worker.api.swarmMembers).toBeUndefined();
      expect(alone.api.swarmMembers).toBeUndefined();
      expect(() =>
        fromCloudEnv({ ...env, DATABASE_URL: db.url, WORKER_FUNCTION_NAME: 'not a name' }),
      ).toThrow('WORKER_FUNCTION_NAME: must be a Lambda function name or ARN');
    } finally {
      await Promise.all([api.close(), worker.close(), alone.close()]);
    }
  });

  it('counts API requests as CloudWatch EMF lines in the log stream, and has no /metrics endpoint', async () => {
    const lines: string[] = [];
    const system = await fromCloud(fromCloudEnv({ ...env, DATABASE_URL: db.url }), {
      logDestination: { write: (l) => void lines.push(l) },
    });
    try {
      const request = lambdaRequester(createApiHandler(system.api) as unknown as LambdaHttpHandler);
      expect((await request('GET', '/health')).status).toBe(200);
      const metrics = await request('GET', '/metrics');
      expect(metrics.status).toBe(404);
      expect(metrics.text).toBe('metrics are not exposed in this mode\n');
      const emf = lines.map((l) => JSON.parse(l)).filter((l) => l._aws);
      expect(emf.find((l) => l.route === '/health')).toMatchObject({
        method: 'GET',
        status: '200',
        http_requests_total: 1,
        http_request_duration_seconds: expect.any(Number),
        _aws: {
          Timestamp: expect.any(Number),
          CloudWatchMetrics: [
            {
              Namespace: 'selfdevop',
              Dimensions: [['method', 'route', 'status'], []],
              Metrics: [{ Name: 'http_requests_total', Unit: 'Count' }],
            },
            {
              Namespace: 'selfdevop',
              Dimensions: [['method', 'route'], []],
              Metrics: [{ Name: 'http_request_duration_seconds', Unit: 'Seconds' }],
            },
          ],
        },
      });
      expect(emf.find((l) => l.route === '/metrics')).toMatchObject({
        status: '404',
        http_requests_total: 1,
      });
      // The request log line is still there, beside the metrics.
      expect(lines.some((l) => JSON.parse(l).msg === 'request' && !l.includes('_aws'))).toBe(true);
    } finally {
      await system.close();
    }
  });
});
