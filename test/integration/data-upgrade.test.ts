/**
 * Minor upgrades in place, for real: PostgreSQL, MariaDB and Redis data services on the local
 * Docker Engine, upgraded on the same volume after a backup. The machine ships one image per
 * release line (`selfdevop/postgres:15`, created as version `15`), so the "newer minor" is a
 * second local tag of the same image catalogued (`DATA_IMAGES`) under the exact version its
 * server runs, read from the image itself (`postgres --version`: 15 → 15.18): the upgrade
 * then verifies, as it does for any image, that the swapped server reports that version. The
 * same image catalogued as 15.99 is what a mislabelled image looks like: the check fails
 * naming both versions and the old image comes back. A broken "minor" (an image whose server
 * exits at once) rolls back to the old image with the data intact; another release line is
 * refused with the reason.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BackupView } from '../../core/data-services/backup-use-cases.ts';
import {
  containerEnv,
  docker,
  useDataSuite,
  waitForBackup,
  type DataSuite,
  type DataView,
} from '../support/data-services.ts';
import { ensureDataImages } from '../support/docker.ts';
import { available } from '../support/services.ts';

const ready = await available('docker');
const exec = promisify(execFile);
// Tags of this test's own: the shared selfdevop/* tags are never changed.
const mislabelled = 'sdo-test-data-upgrade/postgres:15.99';
const broken = 'sdo-test-data-upgrade/postgres:15.98';
/** The exact version an image's server binary says it is (`15.18`, `10.11.18`, `7.0.15`). */
async function versionIn(image: string, binary: string): Promise<string> {
  const out = await docker('run', '--rm', '--entrypoint', binary, image, '--version');
  const v = /(?:v=|Ver |\) )(\d+\.\d+(?:\.\d+)?)/.exec(out)?.[1];
  if (!v) throw new Error(`no version in ${image}'s ${binary} --version: ${out}`);
  return v;
}
/** Each engine's real minor: a tag of the shipped image under the version it runs. */
const minors = {
  postgres: { image: 'selfdevop/postgres:15', binary: 'postgres', version: '', tag: '' },
  mariadb: { image: 'selfdevop/mariadb:10.11', binary: 'mariadbd', version: '', tag: '' },
  redis: { image: 'selfdevop/redis:7', binary: 'redis-server', version: '', tag: '' },
};

describe.skipIf(!ready)('minor upgrades of a data service, with a backup first', () => {
  const s = useDataSuite(import.meta.url, {
    email: 'upgrades@example.com',
    before: async () => {
      await ensureDataImages();
      for (const [engine, m] of Object.entries(minors)) {
        m.version = await versionIn(m.image, m.binary);
        m.tag = `sdo-test-data-upgrade/${engine}:${m.version}`;
        await docker('tag', m.image, m.tag);
      }
      await docker('tag', 'selfdevop/postgres:15', mislabelled);
      // A "minor" whose server exits at once: what a bad image does to an upgrade.
      await exec(
        'sh',
        [
          '-c',
          `printf 'FROM selfdevop/postgres:15\\nENTRYPOINT ["sh","-c","echo this image is broken >&2; exit 3"]\\n' | docker build -q -t ${broken} -`,
        ],
        { timeout: 120_000, env: { ...process.env, DOCKER_BUILDKIT: '0' } },
      );
    },
    settings: () => ({
      dataImages: [
        `postgres:15.99=${mislabelled}`,
        `postgres:15.98=${broken}`,
        ...Object.entries(minors).map(([engine, m]) => `${engine}:${m.version}=${m.tag}`),
      ].join(','),
    }),
    after: async () => {
      await docker('rmi', mislabelled, broken, ...Object.values(minors).map((m) => m.tag)).catch(
        () => undefined,
      );
    },
  });
  let req: DataSuite['request'];
  let token: string;
  const h = () => s.h();
  beforeAll(() => void ({ request: req, token } = s));

  type Ds = DataView & {
    upgrade: {
      status: string;
      from: string;
      to: string;
      step: string | null;
      error: string | null;
      rolledBack: boolean;
      backupId: string | null;
      serverVersion?: string | null;
    } | null;
  };

  /** Polls the data service until `done` (bounded: 400 polls). */
  const poll = (id: string, done: (d: Ds) => boolean) =>
    s.settle(id, done as (d: DataView) => boolean) as Promise<Ds>;

  /** Runs `command` in a client one-off of `image` next to the server, its password in `$PW`. */
  async function client(ds: Ds, image: string, passwordVar: string, command: string) {
    const password = await containerEnv(ds.host, passwordVar);
    const r = await s.client(image, ds.network, { PW: password }, command);
    expect(r.exitCode, r.output).toBe(0);
    return r.output;
  }

  const psql = (ds: Ds, sql: string) =>
    client(
      ds,
      'selfdevop/postgres:15',
      'POSTGRES_PASSWORD',
      `PGPASSWORD="$PW" psql -h ${ds.host} -U app -d app -At -v ON_ERROR_STOP=1 -c "${sql}"`,
    );

  const imageOf = (ds: Ds) => docker('inspect', '-f', '{{.Config.Image}}', ds.host);
  const fingerprint = (ds: Ds) =>
    psql(ds, "select count(*), md5(string_agg(id::text || note, ',' order by id)) from notes");

  let ds: Ds;
  let before: string;

  it('refuses another release line, an unknown or older version, with the reason', async () => {
    ds = (await s.create({ name: 'ledger', engine: 'postgres' })) as Ds;
    expect(ds.status, ds.error ?? '').toBe('ready');
    await psql(
      ds,
      "create table notes (id serial primary key, note text); insert into notes (note) select 'note-' || g from generate_series(1, 3000) g",
    );
    before = await fingerprint(ds);
    expect(before).toMatch(/^3000\|[0-9a-f]{32}$/);

    const major = await req('POST', `/api/data-services/${ds.id}/upgrade`, {
      ...h(),
      body: { version: '16' },
    });
    expect(major.status).toBe(400);
    expect(major.body.error.message).toContain('changes the release line (15 → 16)');
    const unknown = await req('POST', `/api/data-services/${ds.id}/upgrade`, {
      ...h(),
      body: { version: '15.50' },
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain('postgres 15.50 is not available');
    const same = await req('POST', `/api/data-services/${ds.id}/upgrade`, {
      ...h(),
      body: { version: '15' },
    });
    expect(same.status).toBe(400);
    expect(same.body.error.message).toContain('is not newer than 15');
    const junk = await req('POST', `/api/data-services/${ds.id}/upgrade`, {
      ...h(),
      body: { version: 'latest' },
    });
    expect(junk.status).toBe(400);
    const missing = await req('POST', '/api/data-services/dat_0nothing/upgrade', {
      ...h(),
      body: { version: '15.99' },
    });
    expect(missing.status).toBe(404);
  }, 300_000);

  it('rolls back to the old image, data intact, when the new one does not come up', async () => {
    const res = await req('POST', `/api/data-services/${ds.id}/upgrade`, {
      ...h(),
      body: { version: '15.98' },
    });
    expect(res.status, res.text).toBe(202);
    expect(res.body.upgrade).toMatchObject({ status: 'upgrading', from: '15', to: '15.98' });
    const again = await req('POST', `/api/data-services/${ds.id}/upgrade`, {
      ...h(),
      body: { version: '15.99' },
    });
    expect(again.status).toBe(409);
    expect(again.text).toContain('upgrade_in_progress');
    const done = await poll(ds.id, (d) => d.upgrade?.status !== 'upgrading');
    expect(done.upgrade).toMatchObject({
      status: 'failed',
      step: 'check',
      rolledBack: true,
    });
    expect(done.upgrade!.error).toMatch(/15\.98 server container is (exited|restarting|dead)/);
    expect(done).toMatchObject({ status: 'ready', version: '15' });
    expect(await imageOf(done)).toBe('selfdevop/postgres:15');
    expect(await fingerprint(done)).toBe(before);
  }, 600_000);

  it('rolls back when the swapped server reports another version than the catalog names, naming both', async () => {
    const res = await req('POST', `/api/data-services/${ds.id}/upgrade`, {
      ...h(),
      body: { version: '15.99' },
    });
    expect(res.status, res.text).toBe(202);
    const done = await poll(ds.id, (d) => d.upgrade?.status !== 'upgrading');
    expect(done.upgrade).toMatchObject({ status: 'failed', step: 'check', rolledBack: true });
    expect(done.upgrade!.error).toBe(
      `the server reports postgres ${minors.postgres.version} after the swap, not 15.99: image ${mislabelled} is not the version it is catalogued as`,
    );
    expect(done).toMatchObject({ status: 'ready', version: '15' });
    expect(await imageOf(done)).toBe('selfdevop/postgres:15');
    expect(await fingerprint(done)).toBe(before);
    const audit = await req(
      'GET',
      `/api/audit-events?action=data_service.upgrade_failed&targetId=${ds.id}`,
      h(),
    );
    const failed = (audit.body.items as { data: Record<string, unknown> }[]).find(
      (e) => e.data.to === '15.99',
    );
    expect(failed?.data).toMatchObject({ step: 'check', rolledBack: true });
    expect(failed?.data.reason).toBe(done.upgrade!.error);
  }, 600_000);

  it('backs up first, then swaps to the newer minor on the same volume, checks it and its version', async () => {
    const to = minors.postgres.version;
    const res = await req('POST', `/api/data-services/${ds.id}/upgrade`, {
      ...h(),
      body: { version: to },
    });
    expect(res.status, res.text).toBe(202);
    const done = await poll(ds.id, (d) => d.upgrade?.status !== 'upgrading');
    expect(done.upgrade, JSON.stringify(done.upgrade)).toMatchObject({
      status: 'upgraded',
      from: '15',
      to,
      error: null,
      serverVersion: to,
    });
    expect(done.version).toBe(to);
    expect(await imageOf(done)).toBe(minors.postgres.tag);
    expect(await fingerprint(done)).toBe(before);
    // The backup it took first is recorded (trigger pre_upgrade) and proven by its drill.
    const b = await waitForBackup<BackupView>(
      s,
      ds.id,
      done.upgrade!.backupId!,
      (x) => x.drillStatus === 'passed' || x.drillStatus === 'failed',
    );
    expect(b).toMatchObject({ trigger: 'pre_upgrade', status: 'completed', drillStatus: 'passed' });
    expect(b.tables).toEqual({ 'public.notes': 3000 });
    const audit = await req(
      'GET',
      `/api/audit-events?action=data_service.upgraded&targetId=${ds.id}`,
      h(),
    );
    expect(audit.body.items[0].data).toMatchObject({ from: '15', to, serverVersion: to });
  }, 600_000);

  it('upgrades MariaDB and Redis too, each verified by the version its server reports', async () => {
    const projectId = (await req('POST', '/api/projects', { token, body: { name: 'more' } })).body
      .id;
    const engines = [
      {
        engine: 'mariadb' as const,
        from: '10.11',
        write: (d: Ds) =>
          client(
            d,
            'selfdevop/mariadb:10.11',
            'MARIADB_PASSWORD',
            `MYSQL_PWD="$PW" mariadb -h ${d.host} -u app app -N -B -e "create table if not exists t (id int primary key); insert into t values (1), (2), (3);"`,
          ),
        read: (d: Ds) =>
          client(
            d,
            'selfdevop/mariadb:10.11',
            'MARIADB_PASSWORD',
            `MYSQL_PWD="$PW" mariadb -h ${d.host} -u app app -N -B -e "select count(*) from t"`,
          ),
        expected: '3',
      },
      {
        engine: 'redis' as const,
        from: '7',
        write: (d: Ds) =>
          client(
            d,
            'selfdevop/redis:7',
            'REDIS_PASSWORD',
            `REDISCLI_AUTH="$PW" redis-cli -h ${d.host} set kept yes && REDISCLI_AUTH="$PW" redis-cli -h ${d.host} save`,
          ),
        read: (d: Ds) =>
          client(
            d,
            'selfdevop/redis:7',
            'REDIS_PASSWORD',
            `REDISCLI_AUTH="$PW" redis-cli -h ${d.host} get kept`,
          ),
        expected: 'yes',
      },
    ];
    for (const e of engines) {
      const created = (await s.create({
        projectId,
        name: `${e.engine}-up`,
        engine: e.engine,
      })) as Ds;
      expect(created.status, created.error ?? '').toBe('ready');
      await e.write(created);
      const to = minors[e.engine].version;
      const up = await req('POST', `/api/data-services/${created.id}/upgrade`, {
        ...h(),
        body: { version: to },
      });
      expect(up.status, up.text).toBe(202);
      const done = await poll(created.id, (d) => d.upgrade?.status !== 'upgrading');
      expect(done.upgrade, `${e.engine}: ${JSON.stringify(done.upgrade)}`).toMatchObject({
        status: 'upgraded',
        from: e.from,
        to,
        serverVersion: to,
      });
      expect(done.version).toBe(to);
      expect(await imageOf(done)).toBe(minors[e.engine].tag);
      expect(await e.read(done)).toBe(e.expected);
    }
  }, 900_000);
});
