/**
 * The cloud API (fromCloud: CognitoAuth, the hosted UI adapter, RDS-shaped PostgreSQL)
 * served on a loopback port, against a local JWKS and fake hosted UI, with Cognito's pre
 * token generation trigger wired in as Cognito would call it.
 */
import { migrate } from '../../adapters/db/migrator.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { fromCloud, type CloudSystem } from '../../adapters/modes/cloud.ts';
import { createPreTokenHandler } from '../../functions/lambda/cognito-tokens-handler.ts';
import { serveApi } from '../../functions/selfhost/server.ts';
import { createTestDatabase } from '../support/db.ts';
import { startJwks, type LocalJwks } from '../support/jwks.ts';
import { freePort } from '../support/ports.ts';
import { startFakeHostedUi, type FakeHostedUi } from './fakes/cognito-hosted-ui.ts';

export const hostedClientId = 'dashboardclient1';

export interface CloudDashboard {
  /** The dashboard's origin (DASHBOARD_URL). */
  url: string;
  hosted: FakeHostedUi;
  jwks: LocalJwks;
  system: CloudSystem;
  /** The API's JSON log lines (warnings and up). */
  logs: string[];
  close(): Promise<void>;
}

/** `env` adds cloud configuration variables (OPERATOR_EMAILS, …) to the test's own. */
export async function startCloudDashboard(
  env: Record<string, string> = {},
): Promise<CloudDashboard> {
  const db = await createTestDatabase('cloud_signin');
  await migrate(db.url);
  const jwks = await startJwks();
  // Built after the fake, which needs the system's store for the trigger.
  const built: { system?: CloudSystem } = {};
  const hosted = await startFakeHostedUi({
    jwks,
    clientId: hostedClientId,
    // Cognito calls the tokens function before issuing tokens; it provisions the user.
    onTokenGeneration: (event) =>
      createPreTokenHandler({
        identity: built.system!.api.store.identity,
        clock: built.system!.api.clock,
        logger: new MemoryLogger(),
      })(event),
  });
  // The dashboard URL is configuration, so the port is chosen before the server starts.
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const config = fromCloudEnv({
    AWS_REGION: 'eu-west-1',
    DATABASE_URL: db.url,
    COGNITO_REGION: jwks.region,
    COGNITO_USER_POOL_ID: jwks.userPoolId,
    COGNITO_CLIENT_ID: hostedClientId,
    COGNITO_DOMAIN: 'selfdevop-test.auth.eu-west-1.amazoncognito.com',
    DASHBOARD_URL: url,
    SECRETS_KMS_KEY_ID: 'alias/test',
    OBJECTS_BUCKET: 'selfdevop-test',
    SCHEDULER_ROLE_ARN: 'arn:aws:iam::111122223333:role/test',
    MAIL_FROM: 'noreply@example.com',
    EDGE_DOMAIN: 'apps.example.com',
    CADDY_ADMIN_URL: 'http://127.0.0.1:1',
    LOG_LEVEL: 'warn',
    ...env,
  });
  const logs: string[] = [];
  const system = await fromCloud(config, {
    cognito: { jwksUrl: jwks.url, hostedUiUrl: hosted.url },
    logDestination: { write: (line) => void logs.push(line.trimEnd()) },
  });
  built.system = system;
  hosted.register({
    callbackUrl: `${url}/dashboard/auth/callback`,
    signedOutUrl: `${url}/dashboard/signed-out`,
  });
  const served = await serveApi(system.api, { host: '127.0.0.1', port, trustProxy: false });
  return {
    url,
    hosted,
    jwks,
    system,
    logs,
    async close() {
      await served.close();
      await system.close();
      await hosted.stop();
      await jwks.stop();
      await db.drop();
    },
  };
}
