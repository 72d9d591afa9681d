/**
 * `npm run migrate`: applies pending migrations to DATABASE_URL and exits. Safe to run
 * twice and from two processes at once (the migrator holds an advisory lock); refuses a
 * database that is ahead of or diverged from this code.
 */
import { migrate } from '../../adapters/db/migrator.ts';
import { ConfigError, fromEnv, requireSettings } from '../../adapters/modes/config.ts';

try {
  const config = requireSettings(fromEnv(), 'the migrate job', ['DATABASE_URL']);
  const applied = await migrate(config.DATABASE_URL);
  process.stdout.write(
    applied.length
      ? `applied ${applied.map((m) => `${m.version} ${m.name}`).join(', ')}\n`
      : 'database is up to date\n',
  );
} catch (e) {
  if (e instanceof ConfigError) process.stderr.write(`selfdevop migrate: ${e.message}\n`);
  else
    process.stderr.write(
      `selfdevop migrate failed: ${e instanceof Error ? e.message : String(e)}\n`,
    );
  process.exit(1);
}
