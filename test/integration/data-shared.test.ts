/**
 * Shared data servers for real: a shareable MariaDB and PostgreSQL server on the real Docker
 * Engine holds one database and user per app. Each is reached with the URL its link hands
 * an app, cannot read the other app's database, is backed up alone (dump of its database
 * only) and drilled, and deleting it drops only its database and user.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { linkedDataEnv } from '../../core/data-services/links.ts';
import { sleep, useDataSuite, type DataSuite } from '../support/data-services.ts';
import { dockerTarget } from '../support/docker.ts';
import { available } from '../support/services.ts';

const ready = await available('docker');

type View = {
  id: string;
  name: string;
  status: string;
  error: string | null;
  host: string;
  network: string;
  volume: string;
  mode: string;
  database: string;
  user: string;
  sharedServerId: string | null;
};

describe.skipIf(!ready)('shared data servers on Docker', () => {
  const s = useDataSuite(import.meta.url, {
    email: 'shared@example.com',
    settings: {
      release: { maxStepAttempts: 2, migrationTimeoutMs: 20_000, dataReadyAttempts: 60 },
    },
  });
  let api: DataSuite['api'];
  let req: DataSuite['request'];
  let orgId: string;
  let projectId: string;
  let otherProjectId: string;
  const h = (body?: unknown) => s.h(body);
  beforeAll(async () => {
    ({ api, request: req, orgId, projectId } = s);
    otherProjectId = (await req('POST', '/api/projects', h({ name: 'blog' }))).body.id;
  });

  const create = (body: Record<string, unknown>): Promise<View> =>
    s.create(body) as unknown as Promise<View>;

  async function service(name: string): Promise<string> {
    const svc = await req(
      'POST',
      '/api/services',
      h({
        projectId,
        name,
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
      }),
    );
    expect(svc.status, svc.text).toBe(201);
    return svc.body.id;
  }

  /** What a linked app's containers get: the URL under the link's env name. */
  async function urlOf(dataServiceId: string, serviceName: string): Promise<URL> {
    const serviceId = await service(serviceName);
    const link = await req('POST', `/api/data-services/${dataServiceId}/links`, h({ serviceId }));
    expect(link.status, link.text).toBe(201);
    const { env } = await linkedDataEnv(
      { store: api.system.api.store, vault: api.system.vault },
      orgId,
      serviceId,
    );
    return new URL(env.DATABASE_URL!);
  }

  /** Runs SQL as the URL's user in `database` (the URL's own unless named) on the project network. */
  function sql(engine: 'mariadb' | 'postgres', url: URL, query: string, database?: string) {
    const db = database ?? url.pathname.slice(1);
    const cmd =
      engine === 'mariadb'
        ? `mariadb -h ${url.hostname} -u ${url.username} -N -B ${db} -e "$Q"`
        : `psql -h ${url.hostname} -U ${url.username} -d ${db} -At -v ON_ERROR_STOP=1 -c "$Q"`;
    return s.client(
      engine === 'mariadb' ? 'selfdevop/mariadb:10.11' : 'selfdevop/postgres:15',
      [...s.cleanup.networks][0]!,
      {
        Q: query,
        ...(engine === 'mariadb'
          ? { MYSQL_PWD: decodeURIComponent(url.password) }
          : { PGPASSWORD: decodeURIComponent(url.password) }),
      },
      cmd,
      { errexit: false },
    );
  }

  async function waitBackup(id: string, backupId: string) {
    for (let i = 0; i < 240; i++) {
      const r = await req('GET', `/api/data-services/${id}/backups`, h());
      const b = r.body.items.find((x: { id: string }) => x.id === backupId);
      if (b && (b.status === 'failed' || (b.drillStatus && b.drillStatus !== 'running'))) return b;
      await sleep(500);
    }
    throw new Error(`backup ${backupId} did not settle`);
  }

  it('refuses what cannot be shared with a 4xx naming the field', async () => {
    const redis = await req(
      'POST',
      '/api/data-services',
      h({ projectId, name: 'r', engine: 'redis', shareable: true }),
    );
    expect(redis.status, redis.text).toBe(400);
    expect(redis.body.error.message).toMatch(/^shareable: redis is never shared/);
    const missing = await req(
      'POST',
      '/api/data-services',
      h({ projectId, name: 'x', engine: 'mariadb', sharedServerId: 'dat_nope' }),
    );
    expect(missing.status, missing.text).toBe(404);
  });

  for (const engine of ['mariadb', 'postgres'] as const) {
    it(`${engine}: one database and user per app, isolated, backed up alone, dropped alone`, async () => {
      const server = await create({ name: `${engine}-shared`, engine, shareable: true });
      expect(server.status, server.error ?? '').toBe('ready');
      const dedicated = await create({ name: `${engine}-own`, engine });
      expect(dedicated.status, dedicated.error ?? '').toBe('ready');

      // Bad input: not a shareable server, another project's, a shared server linked itself.
      const notShareable = await req(
        'POST',
        '/api/data-services',
        h({ projectId, name: `${engine}-x`, engine, sharedServerId: dedicated.id }),
      );
      expect(notShareable.status).toBe(400);
      expect(notShareable.body.error.message).toMatch(/^sharedServerId: .* is not a shareable/);
      const elsewhere = await req(
        'POST',
        '/api/data-services',
        h({ projectId: otherProjectId, name: `${engine}-x`, engine, sharedServerId: server.id }),
      );
      expect(elsewhere.status).toBe(400);
      expect(elsewhere.body.error.message).toMatch(/another project/);

      const a = await create({ name: `${engine}-a`, engine, sharedServerId: server.id });
      const b = await create({ name: `${engine}-b`, engine, sharedServerId: server.id });
      for (const d of [a, b]) {
        expect(d.status, d.error ?? '').toBe('ready');
        expect(d).toMatchObject({ mode: 'shared', sharedServerId: server.id, host: server.host });
      }
      expect(a.database).not.toBe(b.database);
      // No container of their own: the server's is the only one.
      expect(await s.runtime.inspect(dockerTarget, `sdo-data-${a.id.toLowerCase()}`)).toBeNull();

      const serverLink = await req(
        'POST',
        `/api/data-services/${server.id}/links`,
        h({ serviceId: await service(`${engine}-admin`) }),
      );
      expect(serverLink.status).toBe(409);
      expect(serverLink.body.error.code).toBe('data_service_shareable');

      const urlA = await urlOf(a.id, `${engine}-web-a`);
      const urlB = await urlOf(b.id, `${engine}-web-b`);
      expect(urlA.hostname).toBe(server.host);
      expect(urlA.username).toBe(a.user);
      expect(urlA.pathname).toBe(`/${a.database}`);

      const write = (url: URL, n: number) =>
        sql(
          engine,
          url,
          `create table items (id int primary key); insert into items values ${Array.from({ length: n }, (_, i) => `(${i + 1})`).join(', ')}`,
        );
      expect((await write(urlA, 3)).exitCode).toBe(0);
      expect((await write(urlB, 5)).exitCode).toBe(0);
      const own = await sql(engine, urlA, 'select count(*) from items');
      expect(own.output.trim()).toBe('3');
      // Isolation: A's user cannot reach B's database, nor read its table by name.
      const cross = await sql(engine, urlA, 'select count(*) from items', b.database);
      expect(cross.exitCode).not.toBe(0);
      expect(cross.output).toMatch(/denied|permission|not permitted|privileges/i);
      if (engine === 'mariadb') {
        const byName = await sql(engine, urlA, `select count(*) from ${b.database}.items`);
        expect(byName.exitCode).not.toBe(0);
        expect(byName.output).toMatch(/denied/i);
      }

      // A backup of A holds A's database only; its drill restores and checks it.
      const started = await req('POST', `/api/data-services/${a.id}/backups`, h());
      expect(started.status, started.text).toBe(202);
      const backup = await waitBackup(a.id, started.body.id);
      expect(backup.error).toBeNull();
      expect(backup.drillError).toBeNull();
      expect(backup).toMatchObject({ status: 'completed', drillStatus: 'passed' });
      expect(backup.tables).toEqual(engine === 'mariadb' ? { items: 3 } : { 'public.items': 3 });

      // That backup restores into a server of its own: the first half of moving A out.
      const inPlace = await req(
        'POST',
        `/api/data-services/${a.id}/restore`,
        h({ backupId: backup.id, target: 'in_place', confirm: a.name, dedicated: true }),
      );
      expect(inPlace.status).toBe(400);
      expect(inPlace.body.error.message).toMatch(/^dedicated: applies to target new/);
      const moved = await req(
        'POST',
        `/api/data-services/${a.id}/restore`,
        h({ backupId: backup.id, target: 'new', dedicated: true, name: `${engine}-a-own` }),
      );
      expect(moved.status, moved.text).toBe(202);
      expect(moved.body.dataService).toMatchObject({ mode: 'dedicated', sharedServerId: null });
      s.cleanup.saw(moved.body.dataService);
      const copyId = moved.body.dataService.id;
      for (let i = 0; i < 200; i++) {
        const r = await req(
          'GET',
          `/api/audit-events?action=data_service.restored&targetId=${copyId}`,
          h(),
        );
        if (r.body.items.length > 0) break;
        await sleep(500);
      }
      const copy = (await req('GET', `/api/data-services/${copyId}`, h())).body as View;
      expect(copy.status, copy.error ?? '').toBe('ready');
      expect(copy.host).not.toBe(server.host);
      const urlCopy = await urlOf(copyId, `${engine}-web-copy`);
      expect(urlCopy.hostname).toBe(copy.host);
      expect((await sql(engine, urlCopy, 'select count(*) from items')).output.trim()).toBe('3');

      // The server cannot go while it holds databases.
      const early = await req(
        'DELETE',
        `/api/data-services/${server.id}?confirm=${server.name}&volume=remove`,
        h(),
      );
      expect(early.status).toBe(409);
      expect(early.body.error.code).toBe('data_service_has_databases');

      // Deleting B (unlinked first) drops its database and user only.
      const links = await req('GET', `/api/data-services/${b.id}/links`, h());
      for (const l of links.body.items)
        await req('DELETE', `/api/data-services/${b.id}/links/${l.id}`, h());
      const del = await req(
        'DELETE',
        `/api/data-services/${b.id}?confirm=${b.name}&volume=remove`,
        h(),
      );
      expect(del.status, del.text).toBe(202);
      for (let i = 0; i < 100; i++) {
        if ((await req('GET', `/api/data-services/${b.id}`, h())).status === 404) break;
        await sleep(300);
      }
      expect((await req('GET', `/api/data-services/${b.id}`, h())).status).toBe(404);
      const gone = await sql(engine, urlB, 'select 1');
      expect(gone.exitCode).not.toBe(0);
      expect((await sql(engine, urlA, 'select count(*) from items')).output.trim()).toBe('3');
      const audit = await req(
        'GET',
        `/api/audit-events?action=data_service.deleted&targetId=${b.id}`,
        h(),
      );
      expect(audit.body.items[0]?.data).toMatchObject({
        sharedServerId: server.id,
        database: b.database,
        databaseDropped: true,
      });
      expect((await s.runtime.inspect(dockerTarget, server.host))?.state).toBe('running');
    }, 400_000);
  }
});
