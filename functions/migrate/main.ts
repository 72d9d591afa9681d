/**
 * `npm run migrate`: applies pending migrations to DATABASE_URL and exits. Safe to run
 * twice and from two processes at once (the migrator holds an advisory lock); refuses a
 * database that is ahead of or diverged from this code.
 */
import { migrate } from '../../adapters/db/migrator.ts';

const url = process.env.DATABASE_URL;
if (!url) {
  process.stderr.write('selfdevop migrate: DATABASE_URL is required (postgres://user:password@host:5432/db)\n');
  process.exit(1);
}
try {
  const applied = await migrate(url);
  process.stdout.write(
    applied.length
      ? `applied ${applied.map((m) => `${m.version} ${m.name}`).join(', ')}\n`
      : 'database is up to date\n',
  );
} catch (e) {
  process.stderr.write(`selfdevop migrate failed: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
