/**
 * `selfdevop control-backups`: the real CLI process against the self-hosted API, whose
 * worker backs up the test's real PostgreSQL database with pg_dump. The operator's session
 * drives it; an API key is refused (operators only).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { adminUrl, createTestDatabase } from '../support/db.ts';

describe('the selfdevop CLI for control-plane backups', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let dir: string;
  let env: Record<string, string>;
  let keyEnv: Record<string, string>;
  const restoredName = `sdo_cpbcli_${randomBytes(3).toString('hex')}`;

  const cli = (args: string[], e = env) => runCli(args, { cwd: dir, env: e, timeoutMs: 180_000 });

  beforeAll(async () => {
    db = await createTestDatabase('cpbcli');
    api = await startSelfhostApi({
      workers: true,
      databaseUrl: db.url,
      controlBackupDatabaseUrl: db.url,
    });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'cli-ops@example.com', password: 'correct horse battery' },
    });
    expect(s.status, s.text).toBe(201);
    const k = await api.request('POST', `/api/orgs/${s.body.org.id}/api-keys`, {
      token: s.body.token,
      body: { name: 'ci', role: 'owner' },
    });
    env = { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: s.body.token as string };
    keyEnv = { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: k.body.key as string };
    dir = await mkdtemp(join(tmpdir(), 'sdo-cli-cpb-'));
  }, 120_000);

  afterAll(async () => {
    const c = new pg.Client({ connectionString: adminUrl });
    await c.connect();
    await c.query(`drop database if exists ${restoredName} with (force)`).catch(() => undefined);
    await c.end();
    await api?.close();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('backs up and waits for the drill, lists it, and restores it into a new database', async () => {
    const empty = await cli(['control-backups']);
    expect(empty.code, empty.stderr).toBe(0);
    expect(empty.stdout).toContain(
      'schedule: 0 2 * * * (UTC); retention: 14 daily, 8 weekly, 6 monthly',
    );
    expect(empty.stdout).toContain('no control-plane backups yet');

    const made = await cli(['control-backups', 'backup', '--wait']);
    expect(made.code, made.stdout + made.stderr).toBe(0);
    const id = /backup (cbk_\w+): completed, drill passed/.exec(made.stdout)?.[1];
    expect(id, made.stdout).toBeDefined();

    const list = await cli(['control-backups']);
    expect(list.stdout).toContain(id!);
    const shown = await cli(['control-backups', 'show', id!]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/public\.users\s+1/);

    const restored = await cli([
      'control-backups',
      'restore',
      '--backup',
      id!,
      '--database',
      restoredName,
    ]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toContain(`restored into database ${restoredName}`);
    expect(restored.stdout).toContain('every row count matches the manifest');
  }, 300_000);

  it('changes the settings, and names what is wrong', async () => {
    const ok = await cli([
      'control-backups',
      'settings',
      '--schedule',
      '15 1 * * *',
      '--daily',
      '7',
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('run at 15 1 * * * (UTC); retention 7 daily, 8 weekly, 6 monthly');
    const everyMinute = await cli(['control-backups', 'settings', '--schedule', '* * * * *']);
    expect(everyMinute.code).toBe(1);
    expect(everyMinute.stderr).toContain('schedule');
    const notNumber = await cli(['control-backups', 'settings', '--weekly', 'many']);
    expect(notNumber.code).toBe(2);
    expect(notNumber.stderr).toContain('--weekly needs a whole number');
    const nothing = await cli(['control-backups', 'restore', '--database', 'x']);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toContain('--backup ID or --manifest KEY');
  }, 120_000);

  it('refuses an API key: control-plane backups are for operators', async () => {
    const r = await cli(['control-backups'], keyEnv);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('only an operator of this installation');
  }, 60_000);
});
