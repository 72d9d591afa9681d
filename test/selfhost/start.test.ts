/**
 * `npm start`'s entry point as a process: bad configuration and a database from the future
 * stop it with a message that says what is wrong, before it serves anything.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { createTestDatabase } from '../support/db.ts';

const entry = fileURLToPath(new URL('../../functions/selfhost/start.ts', import.meta.url));

function runStart(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [entry], { env: { ...process.env, MODE: 'selfhost', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('starting selfdevop', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    db = await createTestDatabase('start');
    await migrate(db.url);
    // A newer selfdevop migrated this database: a version this code does not have.
    // (vitest sets MODE=test in its environment; the child gets MODE=selfhost.)
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query(`insert into schema_migrations (version, name, checksum) values (9999, 'from_the_future', 'x')`);
    await c.end();
  });
  afterAll(async () => db?.drop());

  it('stops on a bad variable, naming it', async () => {
    const r = await runStart({ PORT: 'eighty', SIGNUP_MODE: 'sometimes' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('PORT:');
    expect(r.stderr).toContain('SIGNUP_MODE:');
  });

  it('refuses a database migrated by a newer version', async () => {
    const r = await runStart({ DATABASE_URL: db.url, PORT: '39871', DATA_DIR: `/tmp/sdo-start-test-${process.pid}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/9999/);
  }, 40_000);

  it('refuses an explicit key file that does not exist rather than make a new key', async () => {
    const r = await runStart({ DATABASE_URL: db.url, ENCRYPTION_KEY_FILE: '/nonexistent/selfdevop.key' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ENCRYPTION_KEY_FILE');
  });
});
