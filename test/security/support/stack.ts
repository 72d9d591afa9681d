/**
 * The self-hosted API for attack replays: real PostgreSQL, served over HTTP, in this process
 * or in child processes that share its database.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate } from '../../../adapters/db/migrator.ts';
import { ensureKeyFile } from '../../../adapters/vault/aes-file.ts';
import { createTestDatabase } from '../../support/db.ts';
import { httpRequester, type Requester } from '../../support/http.ts';
import type { SelfhostTestSettings } from '../../support/selfhost-config.ts';

const serverScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'api-server.ts');

export interface ApiProcess {
  url: string;
  request: Requester;
  stop(): Promise<void>;
}

/** A migrated database and the settings every API process on it shares (one JWT secret). */
export async function sharedDatabase(
  overrides: Partial<SelfhostTestSettings> = {},
): Promise<{ settings: SelfhostTestSettings; drop(): Promise<void> }> {
  const db = await createTestDatabase('security');
  await migrate(db.url);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sdo-sec-'));
  const encryptionKeyFile = path.join(dir, 'encryption.key');
  await ensureKeyFile(encryptionKeyFile);
  const settings: SelfhostTestSettings = {
    databaseUrl: db.url,
    jwtSecret: randomBytes(32).toString('base64url'),
    encryptionKeyFile,
    signupMode: 'open',
    edgeDomain: 'localhost',
    caddyAdminUrl: 'http://127.0.0.1:1',
    maxBodyBytes: 256 * 1024,
    dbPoolMax: 5,
    version: 'test',
    bcryptCost: 4,
    queue: { pollingIntervalSeconds: 0.5, retryDelaySeconds: 1 },
    edgeDns: { listen: '127.0.0.1:0', refreshMs: 100 },
    ...overrides,
  } as SelfhostTestSettings;
  return {
    settings,
    async drop() {
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Starts an API process on the shared settings; it trusts X-Forwarded-For, so tests pick sources. */
export async function startApiProcess(settings: SelfhostTestSettings): Promise<ApiProcess> {
  const child: ChildProcess = spawn(process.execPath, [serverScript], {
    env: { ...process.env, SDO_API_SETTINGS: JSON.stringify(settings) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`API process did not start: ${stderr}`)),
      30_000,
    );
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`API process exited with ${code}: ${stderr}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    request: httpRequester(url),
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A source address, as a trusted proxy would report it. */
export const from = (ip: string) => ({ 'x-forwarded-for': ip });
