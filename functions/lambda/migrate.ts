/**
 * Lambda entry point of the migrator: the stack runs it (a CDK trigger) after the database
 * is up and before the API is updated. Safe to run twice (the migrator holds an advisory lock).
 */
import { migrate } from '../../adapters/db/migrator.ts';
import {
  fromCloudDatabaseEnv,
  type CloudDatabaseConfig,
} from '../../adapters/modes/cloud-config.ts';
import {
  databaseUrlFromSecret,
  readSecretFromExtension,
} from '../../adapters/modes/cloud-secrets.ts';

/** Applies pending migrations; returns what it applied, for the trigger's log. */
export async function runMigrations(
  config: CloudDatabaseConfig,
  readSecret: (arn: string) => Promise<string> = (arn) => readSecretFromExtension(arn, config),
): Promise<{ applied: string[] }> {
  const url =
    config.DATABASE_URL ??
    databaseUrlFromSecret(await readSecret(config.DATABASE_SECRET_ARN ?? ''));
  // In the Lambda bundle the SQL files sit beside it (MIGRATIONS_DIR), not at the repository path.
  const applied = await migrate(url, config.MIGRATIONS_DIR ? { dir: config.MIGRATIONS_DIR } : {});
  return { applied: applied.map((m) => `${m.version} ${m.name}`) };
}

export const handler = async (): Promise<{ applied: string[] }> =>
  runMigrations(fromCloudDatabaseEnv());
