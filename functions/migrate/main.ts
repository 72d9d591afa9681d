/**
 * `npm run migrate`: applies pending migrations as the tables' owner (MIGRATE_DATABASE_URL,
 * else DATABASE_URL), then gives the login roles the API and pg-boss connect as their
 * passwords (API_DATABASE_PASSWORD, QUEUE_DATABASE_PASSWORD), and exits. Safe to run twice
 * and from two processes at once (the migrator holds an advisory lock); refuses a database
 * that is ahead of or diverged from this code.
 */
import { migrate } from '../../adapters/db/migrator.ts';
import { provisionLoginRoles } from '../../adapters/db/roles.ts';
import { ConfigError, fromEnv, requireSettings } from '../../adapters/modes/config.ts';

try {
  const config = fromEnv();
  const ownerUrl =
    config.MIGRATE_DATABASE_URL ??
    requireSettings(config, 'the migrate job', ['DATABASE_URL']).DATABASE_URL;
  const applied = await migrate(ownerUrl);
  const logins = await provisionLoginRoles(ownerUrl, {
    api: config.API_DATABASE_PASSWORD,
    queue: config.QUEUE_DATABASE_PASSWORD,
  });
  process.stdout.write(
    (applied.length
      ? `applied ${applied.map((m) => `${m.version} ${m.name}`).join(', ')}\n`
      : 'database is up to date\n') +
      (logins.length ? `login roles set: ${logins.join(', ')}\n` : ''),
  );
} catch (e) {
  if (e instanceof ConfigError) process.stderr.write(`selfdevop migrate: ${e.message}\n`);
  else
    process.stderr.write(
      `selfdevop migrate failed: ${e instanceof Error ? e.message : String(e)}\n`,
    );
  process.exit(1);
}
