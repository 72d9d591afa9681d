/**
 * `npm start`: selfdevop on its embedded defaults. With no configuration at all it runs
 * an embedded PostgreSQL under DATA_DIR, generates its secrets once, migrates, and serves
 * the API (and, unless RUN_WORKERS=false, the workers) in this one process.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, fromEnv, type Config } from '../../adapters/modes/config.ts';
import { startEmbeddedPostgres } from '../../adapters/db/embedded-postgres.ts';
import { migrate } from '../../adapters/db/migrator.ts';
import { fromSelfhost } from '../../adapters/modes/selfhost.ts';
import { ensureKeyFile } from '../../adapters/vault/aes-file.ts';
import { ensureSecretFile } from './secrets.ts';
import { serveApi } from './server.ts';
import { version } from './version.ts';

async function resolveSecrets(config: Config) {
  const dataDir = path.resolve(config.DATA_DIR);
  const secretsDir = path.join(dataDir, 'secrets');
  // The data dir must be traversable (not listable) by the embedded PostgreSQL's own user;
  // the secrets inside stay 0700/0600.
  await mkdir(dataDir, { recursive: true, mode: 0o711 });
  await chmod(dataDir, 0o711);
  await mkdir(secretsDir, { recursive: true, mode: 0o700 });
  const jwtSecret = config.JWT_SECRET ?? (await ensureSecretFile(path.join(secretsDir, 'jwt-secret'))).value;
  let encryptionKeyFile = config.ENCRYPTION_KEY_FILE;
  if (encryptionKeyFile) {
    // An explicit key file that is missing is a mistake (an unmounted volume, a typo):
    // generating a new key would make every stored secret unreadable.
    if (!existsSync(encryptionKeyFile)) {
      throw new ConfigError(`invalid configuration:\n  ENCRYPTION_KEY_FILE: ${encryptionKeyFile} does not exist`);
    }
  } else {
    encryptionKeyFile = path.join(secretsDir, 'encryption.key');
    await ensureKeyFile(encryptionKeyFile);
  }
  return { dataDir, secretsDir, jwtSecret, encryptionKeyFile };
}

async function main() {
  const config = fromEnv();
  const secrets = await resolveSecrets(config);
  const stops: (() => Promise<void>)[] = [];

  let databaseUrl = config.DATABASE_URL;
  if (!databaseUrl) {
    const password = (await ensureSecretFile(path.join(secrets.secretsDir, 'postgres-password'), 24)).value;
    const embedded = await startEmbeddedPostgres({
      dataDir: secrets.dataDir,
      port: config.EMBEDDED_PG_PORT,
      password,
      database: 'selfdevop',
    });
    stops.push(embedded.stop);
    databaseUrl = embedded.url;
  }
  const applied = await migrate(databaseUrl);

  // The process running workers serves the edge's DNS; an API alone only points Caddy at it.
  const system = await fromSelfhost(
    { ...config, DATABASE_URL: databaseUrl, JWT_SECRET: secrets.jwtSecret, ENCRYPTION_KEY_FILE: secrets.encryptionKeyFile },
    { role: config.RUN_WORKERS ? 'all' : 'api', version },
  );
  stops.unshift(system.close);
  if (config.RUN_WORKERS) await system.startWorkers();
  const served = await serveApi(system.api, { host: config.HOST, port: config.PORT, trustProxy: config.TRUST_PROXY });
  stops.unshift(served.close);

  const shownHost = config.HOST === '0.0.0.0' || config.HOST === '::' ? 'localhost' : config.HOST;
  const url = `http://${shownHost}:${served.port}`;
  system.logger.info(
    { url, migrationsApplied: applied.map((m) => m.version), embeddedDatabase: !config.DATABASE_URL, dataDir: secrets.dataDir },
    'selfdevop is up',
  );
  process.stderr.write(
    [
      '',
      `  selfdevop ${version} is running at ${url}`,
      `  API docs:  ${url}/docs`,
      config.DATABASE_URL ? '  database:  DATABASE_URL' : `  data:      ${secrets.dataDir} (embedded PostgreSQL)`,
      '',
      '  Create the first user (the owner of a new org):',
      `    curl -s ${url}/api/auth/local/signup -H 'content-type: application/json' \\`,
      `      -d '{"email":"you@example.com","password":"at least 8 characters"}'`,
      '',
    ].join('\n') + '\n',
  );

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    system.logger.info({ signal }, 'shutting down');
    for (const stop of stops) await stop().catch((e: Error) => system.logger.error({ err: e.message }, 'shutdown step failed'));
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((e: unknown) => {
  if (e instanceof ConfigError) process.stderr.write(`selfdevop: ${e.message}\n`);
  else process.stderr.write(`selfdevop failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
