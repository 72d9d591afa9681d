/**
 * Lambda entry point of the migrator: the stack runs it (a CDK trigger) after the database
 * is up and before the API is updated. Safe to run twice (the migrator holds an advisory lock).
 */
import { migrate } from '../../adapters/db/migrator.ts';
import { loginRoles, provisionLoginRoles } from '../../adapters/db/roles.ts';
import {
  fromCloudDatabaseEnv,
  type CloudDatabaseConfig,
} from '../../adapters/modes/cloud-config.ts';
import {
  databaseUrlFromSecret,
  loginFromSecret,
  readSecretFromExtension,
  SecretUnreadable,
} from '../../adapters/modes/cloud-secrets.ts';

/** Applies pending migrations; returns what it applied, for the trigger's log. */
export async function runMigrations(
  config: CloudDatabaseConfig,
  readSecret: (arn: string) => Promise<string> = (arn) => readSecretFromExtension(arn, config),
): Promise<{ applied: string[]; logins: string[] }> {
  const url =
    config.DATABASE_URL ??
    databaseUrlFromSecret(await readSecret(config.DATABASE_SECRET_ARN ?? ''));
  // In the Lambda bundle the SQL files sit beside it (MIGRATIONS_DIR), not at the repository path.
  const applied = await migrate(url, config.MIGRATIONS_DIR ? { dir: config.MIGRATIONS_DIR } : {});
  // The other functions connect as selfdevop_api (no superuser, owns nothing) with its own
  // secret; its password is set here, as the owner, after every deploy's migrations.
  const logins: string[] = [];
  if (config.API_DATABASE_SECRET_ARN) {
    const login = loginFromSecret(
      await readSecret(config.API_DATABASE_SECRET_ARN),
      'API_DATABASE_SECRET_ARN',
    );
    if (login.username !== loginRoles.api) {
      throw new SecretUnreadable(
        `API_DATABASE_SECRET_ARN: the secret's username is ${login.username}, not ${loginRoles.api}`,
      );
    }
    logins.push(...(await provisionLoginRoles(url, { api: login.password })));
  }
  return { applied: applied.map((m) => `${m.version} ${m.name}`), logins };
}

export const handler = async (): Promise<{ applied: string[]; logins: string[] }> =>
  runMigrations(fromCloudDatabaseEnv());
