import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { SelfhostSystem } from '../../adapters/modes/selfhost.ts';
import { migrate } from '../../adapters/db/migrator.ts';
import { ensureKeyFile } from '../../adapters/vault/aes-file.ts';
import { serveApi } from '../../functions/selfhost/server.ts';
import type { ApiHarness } from '../api/api.case.ts';
import { createMigratedTestDatabase } from './db.ts';
import { fromSelfhostSettings, type SelfhostTestSettings } from './selfhost-config.ts';
import { httpRequester } from './http.ts';

/**
 * The self-hosted API for real: its own database (migrated), pg-boss, the AES key file,
 * served over HTTP on a loopback port. Log lines are captured for assertions.
 */
export async function startSelfhostApi(
  overrides: Partial<SelfhostTestSettings> & { databaseUrl?: string; workers?: boolean } = {},
): Promise<
  ApiHarness & { url: string; databaseUrl: string; system: SelfhostSystem; objectsDir: string }
> {
  const { workers, ...settings } = overrides;
  const db = overrides.databaseUrl ? null : await createMigratedTestDatabase('api');
  const databaseUrl = overrides.databaseUrl ?? db!.url;
  // A no-op on the copy of the migrated template; a given database may be behind.
  await migrate(databaseUrl);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-api-'));
  const encryptionKeyFile = path.join(dir, 'encryption.key');
  await ensureKeyFile(encryptionKeyFile);
  const jwtSecret = randomBytes(32).toString('base64url');
  const objectsDir = settings.objectsDir ?? path.join(dir, 'objects');
  const lines: string[] = [];
  const system = await fromSelfhostSettings({
    databaseUrl,
    jwtSecret,
    encryptionKeyFile,
    signupMode: 'open',
    edgeDomain: 'localhost',
    caddyAdminUrl: 'http://127.0.0.1:1',
    maxBodyBytes: 256 * 1024,
    dbPoolMax: 5,
    version: 'test',
    bcryptCost: 4,
    logDestination: { write: (line) => void lines.push(line.trimEnd()) },
    queue: { pollingIntervalSeconds: 0.5, retryDelaySeconds: 1 },
    // As deployed: Caddy reads upstreams from this process's DNS server (any free port).
    edgeDns: { listen: '127.0.0.1:0', refreshMs: 100 },
    // Backups land in the test's own folder, never under the working directory.
    objectsDir,
    ...settings,
  });
  if (workers) await system.startWorkers();
  const served = await serveApi(system.api, { host: '127.0.0.1', port: 0, trustProxy: false });
  const url = `http://127.0.0.1:${served.port}`;
  return {
    url,
    databaseUrl,
    system,
    objectsDir,
    jwtSecret,
    request: httpRequester(url),
    logLines: () => lines,
    async close() {
      await served.close();
      await system.close();
      await db?.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
