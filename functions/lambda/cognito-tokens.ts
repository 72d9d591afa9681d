/**
 * Lambda entry point of Cognito's pre token generation trigger. Needs only the database,
 * so it is built from DATABASE_URL / DATABASE_SECRET_ARN alone (the user pool's own ids
 * would make the stack circular).
 */
import { SystemClock } from '../../adapters/clock/system.ts';
import { fromDatabaseUrl } from '../../adapters/db/postgres.ts';
import { fromPino } from '../../adapters/logger/pino.ts';
import { fromCloudDatabaseEnv } from '../../adapters/modes/cloud-config.ts';
import {
  databaseUrlFromSecret,
  readSecretFromExtension,
} from '../../adapters/modes/cloud-secrets.ts';
import { PostgresStore } from '../../adapters/store/postgres.ts';
import { createPreTokenHandler } from './cognito-tokens-handler.ts';

const config = fromCloudDatabaseEnv();
const url =
  config.DATABASE_URL ??
  databaseUrlFromSecret(await readSecretFromExtension(config.DATABASE_SECRET_ARN ?? '', config));
const store = new PostgresStore(fromDatabaseUrl(url, { max: 1 }));

export const handler = createPreTokenHandler({
  identity: store.identity,
  clock: new SystemClock(),
  logger: fromPino({ level: config.LOG_LEVEL }),
});
