/**
 * Password rotation against the real engines (PostgreSQL, MariaDB, Redis from the offline
 * images on the real Docker Engine), through the API and the worker: before and after, a
 * client on the project network connects with the old and with the new password. A rotation
 * that fails midway (the server stopped) keeps the old password working and says why.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { dataServiceSecretContext } from '../../core/data-services/plan.ts';
import { docker, sleep, useDataSuite, type DataSuite } from '../support/data-services.ts';
import { available } from '../support/services.ts';

const ready = await available('docker');

type Ds = { id: string; host: string; network: string; name: string; engine: string };

describe.skipIf(!ready)('data service password rotation on Docker', () => {
  const s = useDataSuite(import.meta.url, { email: 'rotation@example.com' });
  let api: DataSuite['api'];
  let req: DataSuite['request'];
  let orgId: string;
  const h = () => s.h();
  beforeAll(() => void ({ api, request: req, orgId } = s));

  async function createData(body: Record<string, unknown>): Promise<Ds> {
    const d = await s.create(body);
    expect(d.status, d.error ?? '').toBe('ready');
    return d as unknown as Ds;
  }

  /** The password on record now (what links hand to apps), opened from the vault. */
  async function recorded(id: string): Promise<string> {
    const ds = await api.system.release.store.withOrg(orgId, (r) => r.dataServices.get(id));
    return api.system.release.vault.open(ds!.sealedPassword, dataServiceSecretContext(orgId, id));
  }

  /** A client on the project network: exit 0 when the password is taken and the query runs. */
  async function connects(ds: Ds, password: string, query?: string) {
    const clients: Record<string, { image: string; env: Record<string, string>; sh: string }> = {
      postgres: {
        image: 'selfdevop/postgres:15',
        env: { PGPASSWORD: password },
        sh: `psql -h ${ds.host} -U app -d app -tA -v ON_ERROR_STOP=1 -c "${query ?? 'select 1'}"`,
      },
      mariadb: {
        image: 'selfdevop/mariadb:10.11',
        env: { MYSQL_PWD: password },
        sh: `mariadb -h ${ds.host} -u app app -N -B -e "${query ?? 'select 1'}"`,
      },
      redis: {
        image: 'selfdevop/redis:7',
        env: { REDISCLI_AUTH: password },
        sh: `out=$(redis-cli -h ${ds.host} -p 6379 ${query ?? 'ping'}); echo "$out"; case "$out" in *NOAUTH*|*WRONGPASS*|*ERR*) exit 1;; esac`,
      },
    };
    const c = clients[ds.engine]!;
    const r = await s.client(c.image, ds.network, c.env, c.sh, { errexit: false });
    return { ok: r.exitCode === 0, output: r.output };
  }

  /** Polls the audit trail until an event of one of `actions` for `targetId` appears (bounded). */
  async function waitAudit(actions: string[], targetId: string) {
    for (let i = 0; i < 240; i++) {
      for (const action of actions) {
        const r = await req('GET', `/api/audit-events?action=${action}&targetId=${targetId}`, h());
        if (r.body.items?.length > 0) return { action, event: r.body.items[0] };
      }
      await sleep(500);
    }
    throw new Error(`none of ${actions.join(', ')} for ${targetId}`);
  }

  const seed: Record<string, { write: string; read: string; expect: string }> = {
    postgres: {
      write: 'create table kept (v int); insert into kept values (42)',
      read: 'select v from kept',
      expect: '42',
    },
    mariadb: {
      write: 'create table kept (v int); insert into kept values (42)',
      read: 'select v from kept',
      expect: '42',
    },
    redis: { write: 'set kept 42', read: 'get kept', expect: '42' },
  };

  for (const engine of ['postgres', 'mariadb', 'redis'] as const) {
    it(`${engine}: the new password works afterwards, the old one stops, the data stays`, async () => {
      const ds = await createData({
        name: `rot-${engine}`,
        engine,
        ...(engine === 'redis' ? { persistence: 'none' } : {}),
      });
      const old = await recorded(ds.id);
      expect((await connects(ds, old)).ok).toBe(true);
      expect((await connects(ds, old, seed[engine]!.write)).ok).toBe(true);

      const res = await req('POST', `/api/data-services/${ds.id}/rotate-password`, h());
      expect(res.status, res.text).toBe(202);
      expect(res.body).toEqual({ dataServiceId: ds.id, status: 'rotating' });
      // A second rotation while this one runs is refused, naming why.
      const again = await req('POST', `/api/data-services/${ds.id}/rotate-password`, h());
      if (again.status !== 202) {
        expect(again.status, again.text).toBe(409);
        expect(again.body.error.code).toBe('rotation_in_progress');
      }

      const done = await waitAudit(
        ['data_service.password_rotated', 'data_service.rotation_failed'],
        ds.id,
      );
      expect(done.action, JSON.stringify(done.event.data)).toBe('data_service.password_rotated');
      const next = await recorded(ds.id);
      expect(next).not.toBe(old);
      expect((await connects(ds, next)).ok).toBe(true);
      if (engine === 'redis') {
        // Both answer until the (here: no) linked redeploys end; then only the new one.
        await waitAudit(['data_service.old_password_retired'], ds.id);
      }
      const oldAfter = await connects(ds, old);
      expect(oldAfter.ok, oldAfter.output).toBe(false);
      const read = await connects(ds, next, seed[engine]!.read);
      expect(read.ok, read.output).toBe(true);
      expect(read.output.split('\n').pop()).toBe(seed[engine]!.expect);

      const view = await req('GET', `/api/data-services/${ds.id}`, h());
      expect(view.body).toMatchObject({ rotating: false });
      expect(view.body.passwordRotatedAt).toMatch(/^\d{4}-/);
      expect(JSON.stringify(view.body)).not.toContain(next);

      if (engine === 'redis') {
        // Restarting the server keeps the new password (its env was recreated with it).
        await docker('restart', ds.host);
        let ok = false;
        for (let i = 0; i < 30 && !ok; i++) {
          ok = (await connects(ds, next)).ok;
          if (!ok) await sleep(1000);
        }
        expect(ok).toBe(true);
        expect((await connects(ds, old)).ok).toBe(false);
      }
    }, 300_000);
  }

  it('a rotation that fails midway (the server is down) keeps the old password working', async () => {
    const ds = await createData({ name: 'rot-fail', engine: 'postgres' });
    const old = await recorded(ds.id);
    await docker('stop', ds.host);
    try {
      const res = await req('POST', `/api/data-services/${ds.id}/rotate-password`, h());
      expect(res.status, res.text).toBe(202);
      const done = await waitAudit(
        ['data_service.password_rotated', 'data_service.rotation_failed'],
        ds.id,
      );
      expect(done.action).toBe('data_service.rotation_failed');
      expect(done.event.data.reason).toMatch(/refused the new password/);
      expect(JSON.stringify(done.event.data)).not.toContain(old);
    } finally {
      await docker('start', ds.host);
    }
    expect(await recorded(ds.id)).toBe(old);
    let ok = false;
    for (let i = 0; i < 30 && !ok; i++) {
      ok = (await connects(ds, old)).ok;
      if (!ok) await sleep(1000);
    }
    expect(ok).toBe(true);
    const view = await req('GET', `/api/data-services/${ds.id}`, h());
    expect(view.body).toMatchObject({ rotating: false, passwordRotatedAt: null });
  }, 300_000);

  it('refuses to rotate an unknown data service (404)', async () => {
    const res = await req('POST', '/api/data-services/dat_nope/rotate-password', h());
    expect(res.status).toBe(404);
  });
});
