/**
 * `selfdevop data-services create --drill-schedule` and `data-services drill-schedule`: the
 * real CLI process against the self-hosted API on PostgreSQL. No worker runs (the data
 * service stays `provisioning`): the drill schedule is a setting, read by the worker only
 * when a backup completes (test/integration/data-drill-schedule.test.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { runCli } from '../support/cli.ts';

describe('the selfdevop CLI for drill schedules', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let dir: string;
  let env: Record<string, string>;
  let token: string;
  let orgId: string;

  const cli = (args: string[]) => runCli(args, { cwd: dir, env, timeoutMs: 60_000 });

  beforeAll(async () => {
    api = await startSelfhostApi();
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'cli-drills@example.com', password: 'correct horse battery' },
    });
    orgId = s.body.org.id;
    token = s.body.token as string;
    const key = await api.request('POST', `/api/orgs/${orgId}/api-keys`, {
      token,
      body: { name: 'ci', role: 'deployer' },
    });
    env = { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: key.body.key };
    await api.request('POST', '/api/projects', { token, body: { name: 'shop' } });
    const node = await api.request('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
    dir = await mkdtemp(join(tmpdir(), 'sdo-cli-drills-'));
  }, 120_000);

  afterAll(async () => {
    await api?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const get = async (id: string) =>
    (
      await api.request('GET', `/api/data-services/${id}`, {
        token,
        headers: { 'x-org-id': orgId },
      })
    ).body;

  it('creates with --drill-schedule weekly, shows it, changes it and reads it back', async () => {
    const created = await cli([
      'data-services',
      'create',
      'orders',
      '--project',
      'shop',
      '--engine',
      'mariadb',
      '--drill-schedule',
      'weekly',
      '--json',
    ]);
    expect(created.code, created.stderr).toBe(0);
    const ds = JSON.parse(created.stdout) as { id: string; drillSchedule: string };
    expect(ds.drillSchedule).toBe('weekly');
    expect((await get(ds.id)).drillSchedule).toBe('weekly');

    const shown = await cli(['data-services', 'drill-schedule', ds.id]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toBe(
      'drills: weekly (a scheduled backup when none of the last 7 days passed one, and after a failed drill; backups asked for are always drilled)\n',
    );
    const show = await cli(['data-services', 'show', ds.id]);
    expect(show.stdout).toContain('  backups: 0 3 * * * (UTC), drills: weekly\n');

    const changed = await cli(['data-services', 'drill-schedule', ds.id, 'every_backup']);
    expect(changed.code, changed.stderr).toBe(0);
    expect(changed.stdout).toBe(
      'drills: every_backup (each backup is drilled once it is stored)\n',
    );
    expect((await get(ds.id)).drillSchedule).toBe('every_backup');
    const backups = await cli(['data-services', 'backups', ds.id]);
    expect(backups.stdout).toContain('schedule: 0 3 * * * (UTC), drills: every_backup\n');
    const json = await cli(['data-services', 'drill-schedule', ds.id, 'weekly', '--json']);
    expect(JSON.parse(json.stdout)).toEqual({ drillSchedule: 'weekly' });
    expect((await get(ds.id)).drillSchedule).toBe('weekly');

    // A data service made without the flag drills every backup.
    const plain = await cli([
      'data-services',
      'create',
      'plain',
      '--project',
      'shop',
      '--engine',
      'redis',
      '--json',
    ]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(JSON.parse(plain.stdout).drillSchedule).toBe('every_backup');
  });

  it('names bad input: an unknown schedule on create and on change, a missing ID', async () => {
    const create = await cli([
      'data-services',
      'create',
      'bad',
      '--project',
      'shop',
      '--engine',
      'mariadb',
      '--drill-schedule',
      'monthly',
    ]);
    expect(create.code).toBe(1);
    expect(create.stderr).toContain('drillSchedule');
    const list = await cli(['data-services', 'list', '--json']);
    expect(JSON.parse(list.stdout).map((d: { name: string }) => d.name)).not.toContain('bad');

    const id = JSON.parse(list.stdout).find((d: { name: string }) => d.name === 'orders').id;
    const change = await cli(['data-services', 'drill-schedule', id, 'sometimes']);
    expect(change.code).toBe(1);
    expect(change.stderr).toContain('drillSchedule');
    expect((await get(id)).drillSchedule).toBe('weekly');

    const missing = await cli(['data-services', 'drill-schedule']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('drill-schedule needs the ID');
  });
});
