/**
 * Lambda entry point of the migrator: the stack runs it (a CDK trigger) after the database
 * is up and before the API is updated. Safe to run twice (the migrator holds an advisory lock).
 */
import { migrate } from '../../adapters/db/migrator.ts';
import { readSecretFromExtension } from '../../adapters/modes/cloud.ts';
import { databaseUrlFromSecret } from '../../adapters/modes/cloud-config.ts';

/** Applies pending migrations; returns what it applied, for the trigger's log. */
export async function runMigrations(
  env: Record<string, string | undefined>,
  readSecret: (arn: string) => Promise<string> = (arn) => readSecretFromExtension(arn, env),
): Promise<{ applied: string[] }> {
  const url = env.DATABASE_URL || (env.DATABASE_SECRET_ARN ? databaseUrlFromSecret(await readSecret(env.DATABASE_SECRET_ARN)) : '');
  if (!url) throw new Error('DATABASE_URL or DATABASE_SECRET_ARN is required');
  const applied = await migrate(url);
  return { applied: applied.map((m) => `${m.version} ${m.name}`) };
}

export const handler = async (): Promise<{ applied: string[] }> => runMigrations(process.env);
