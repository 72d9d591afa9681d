/**
 * Mode parity: the same API suite the Node server passes, through the Lambda handler with
 * API Gateway HTTP API v2 events. The ports are the self-hosted ones (PostgreSQL, pg-boss,
 * local JWT), so the suite's expectations hold; what is under test is the Lambda transport.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { fromSelfhostSettings } from '../support/selfhost-config.ts';
import { ensureKeyFile } from '../../adapters/vault/aes-file.ts';
import { createApiHandler } from '../../functions/lambda/api-handler.ts';
import { isProxyEventV2 } from '../../functions/lambda/events.ts';
import { runApiSuite, type ApiHarness } from '../api/api.case.ts';
import { createTestDatabase } from '../support/db.ts';
import { lambdaRequester, toProxyEventV2, type LambdaHttpHandler } from './lambda-requester.ts';

async function startLambdaApi(signupMode: 'open' | 'first-user'): Promise<ApiHarness> {
  const db = await createTestDatabase('lambda_api');
  await migrate(db.url);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-lambda-api-'));
  const encryptionKeyFile = path.join(dir, 'encryption.key');
  await ensureKeyFile(encryptionKeyFile);
  const jwtSecret = randomBytes(32).toString('base64url');
  const lines: string[] = [];
  const system = await fromSelfhostSettings({
    databaseUrl: db.url,
    jwtSecret,
    encryptionKeyFile,
    signupMode,
    edgeDomain: 'localhost',
    caddyAdminUrl: 'http://127.0.0.1:1',
    maxBodyBytes: 256 * 1024,
    dbPoolMax: 5,
    version: 'test',
    bcryptCost: 4,
    logDestination: { write: (line) => void lines.push(line.trimEnd()) },
    queue: { pollingIntervalSeconds: 0.5 },
  });
  const handler = createApiHandler(system.api) as unknown as LambdaHttpHandler;
  return {
    jwtSecret,
    request: lambdaRequester(handler),
    logLines: () => lines,
    async close() {
      await system.close();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

runApiSuite(
  'cloud transport, Lambda handler with API Gateway v2 events, PostgreSQL',
  ({ signupMode }) => startLambdaApi(signupMode),
);

describe('API Gateway v2 events', () => {
  it('are what the handler expects', () => {
    const event = toProxyEventV2(
      'GET',
      '/api/projects?limit=2&cursor=x',
      { 'X-Org-Id': 'org_1' },
      undefined,
    );
    expect(isProxyEventV2(event)).toBe(true);
    expect(event).toMatchObject({
      rawPath: '/api/projects',
      rawQueryString: 'limit=2&cursor=x',
      queryStringParameters: { limit: '2', cursor: 'x' },
      headers: { 'x-org-id': 'org_1' },
      requestContext: { http: { method: 'GET', sourceIp: '198.51.100.7' } },
    });
    expect(isProxyEventV2({ Records: [] })).toBe(false);
  });

  it('carry the caller address through to the audit trail and rate limits', async () => {
    const api = await startLambdaApi('open');
    try {
      const signup = await api.request('POST', '/api/auth/local/signup', {
        body: { email: `ip${Date.now()}@example.com`, password: 'correct horse battery' },
      });
      expect(signup.status).toBe(201);
      const before = api.logLines().filter((l) => l.includes('198.51.100.7'));
      // The first login with a wrong password logs the source IP API Gateway reported.
      await api.request('POST', '/api/auth/local/login', {
        body: { email: 'nobody@example.com', password: 'wrong password x' },
      });
      const after = api.logLines().filter((l) => l.includes('198.51.100.7'));
      expect(after.length).toBeGreaterThan(before.length);
    } finally {
      await api.close();
    }
  });
});
