/**
 * The migrate job (`npm run migrate`, Compose's `migrate` service) as a process: it
 * migrates as the owner and gives the API's and pg-boss's login roles their passwords.
 */
import { execFile } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations } from '../../adapters/db/migrator.ts';
import { loginUrl } from '../../adapters/db/roles.ts';
import { adminUrl, createOwnedTestDatabase, withLoginRolesLock } from '../support/db.ts';

const entry = fileURLToPath(new URL('../../functions/migrate/main.ts', import.meta.url));

async function runMigrate(
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [entry], {
      env: { PATH: process.env.PATH ?? '', ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

/** Each login role's LOGIN flag and stored password verifier, read as the superuser. */
async function logins(): Promise<Record<string, { canLogin: boolean; verifier: string | null }>> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const r = await c.query<{ rolname: string; rolcanlogin: boolean; rolpassword: string | null }>(
      `select rolname, rolcanlogin, rolpassword from pg_authid
       where rolname in ('selfdevop_api', 'selfdevop_queue') order by rolname`,
    );
    return Object.fromEntries(
      r.rows.map((x) => [x.rolname, { canLogin: x.rolcanlogin, verifier: x.rolpassword }]),
    );
  } finally {
    await c.end();
  }
}

/**
 * Whether a SCRAM-SHA-256 verifier (`SCRAM-SHA-256$iter:salt$StoredKey:ServerKey`) is the
 * one for this password: this machine's PostgreSQL trusts loopback, so a login would not
 * tell.
 */
function verifies(verifier: string | null | undefined, password: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier ?? '');
  if (!m) return false;
  const salted = pbkdf2Sync(password, Buffer.from(m[2]!, 'base64'), Number(m[1]), 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest('base64');
  const serverKey = createHmac('sha256', salted).update('Server Key').digest('base64');
  return storedKey === m[3] && serverKey === m[4];
}

describe('the migrate job', () => {
  let db: Awaited<ReturnType<typeof createOwnedTestDatabase>>;
  beforeAll(async () => {
    db = await createOwnedTestDatabase('migrate_job');
  });
  afterAll(async () => db?.drop());

  it('migrates as MIGRATE_DATABASE_URL and sets the login roles’ passwords', () =>
    withLoginRolesLock(async () => {
      const passwords = { api: 'migrate-job-api-password', queue: 'migrate-job-queue-password' };
      const env = {
        MIGRATE_DATABASE_URL: db.ownerUrl,
        DATABASE_URL: loginUrl(db.ownerUrl, 'api', passwords.api),
        API_DATABASE_PASSWORD: passwords.api,
        QUEUE_DATABASE_PASSWORD: passwords.queue,
      };
      const first = await runMigrate(env);
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      expect(first.stdout).toContain(
        `applied ${loadMigrations()
          .map((m) => `${m.version} ${m.name}`)
          .join(', ')}`,
      );
      expect(first.stdout).toContain('login roles set: api, queue');
      const after = await logins();
      expect(after.selfdevop_api?.canLogin).toBe(true);
      expect(after.selfdevop_queue?.canLogin).toBe(true);
      expect(verifies(after.selfdevop_api?.verifier, passwords.api)).toBe(true);
      expect(verifies(after.selfdevop_queue?.verifier, passwords.queue)).toBe(true);
      expect(verifies(after.selfdevop_api?.verifier, passwords.queue)).toBe(false);

      // Again with a new password: nothing to migrate, the new password takes.
      const again = await runMigrate({ ...env, API_DATABASE_PASSWORD: 'another-api-password-x' });
      expect(again.code, again.stderr).toBe(0);
      expect(again.stdout).toBe('database is up to date\nlogin roles set: api, queue\n');
      expect(verifies((await logins()).selfdevop_api?.verifier, 'another-api-password-x')).toBe(
        true,
      );
    }));

  it('names what is missing or wrong, and exits 1', async () => {
    const none = await runMigrate({});
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('DATABASE_URL: required by the migrate job');
    const short = await runMigrate({
      MIGRATE_DATABASE_URL: db.ownerUrl,
      API_DATABASE_PASSWORD: 'x',
    });
    expect(short.code).toBe(1);
    expect(short.stderr).toContain('API_DATABASE_PASSWORD: must be at least 16 characters');
  });
});
