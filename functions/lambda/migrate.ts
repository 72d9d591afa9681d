/**
 * Lambda entry point of the migrator: the stack runs it (a CDK trigger) after the database
 * is up and before the API is updated. Safe to run twice (the migrator holds an advisory lock).
 */
import { migrate } from '../../adapters/db/migrator.ts';
import { databaseUrlFromSecret, readSecretFromExtension } from '../../adapters/modes/cloud-secrets.ts';

/** Applies pending migrations; returns what it applied, for the trigger's log. */
export async function runMigrations(
  env: Record<string, string | undefined>,
  readSecret: (arn: string) => Promise<string> = (arn) => readSecretFromExtension(arn, env),
): Promise<{ applied: string[] }> {
  const url = env.DATABASE_URL || (env.DATABASE_SECRET_ARN ? databaseUrlFromSecret(await readSecret(env.DATABASE_SECRET_ARN)) : '');
  if (!url) throw new Error('DATABASE_URL or DATABASE_SECRET_ARN is required');
  // In the Lambda bundle the SQL files sit beside it (MIGRATIONS_DIR), not at the repository path.
  const applied = await migrate(url, env.MIGRATIONS_DIR ? { dir: env.MIGRATIONS_DIR } : {});
  return { applied: applied.map((m) => `${m.version} ${m.name}`) };
}

export const handler = async (): Promise<{ applied: string[] }> => runMigrations(process.env);
