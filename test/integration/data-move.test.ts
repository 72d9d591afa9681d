/**
 * Moving a database from a shared server to a dedicated one, for real, with a linked app: a
 * shareable MariaDB server on the local Docker Engine holds the app's database; the app
 * (`selfdevop-test/app`, behind a real Caddy) is deployed through the normal release path and
 * serves its `DATABASE_URL` at `/env/DATABASE_URL`. `move-to-dedicated` backs up, restores into
 * a new dedicated server, re-links and redeploys the app (the release path, health-gated).
 * Checked: the app's answer then names the dedicated server, whose data is the shared copy's,
 * and its container reaches that server; the shared copy keeps serving its URL (apps on the
 * old release) until `confirm-move`, which drops it.
 */
import http from 'node:http';
import { beforeAll, describe, expect, it } from 'vitest';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import {
  docker,
  sleep,
  useDataSuite,
  type DataSuite,
  type DataView,
} from '../support/data-services.ts';
import { ensureTestImages } from '../support/docker.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));

type View = DataView & {
  mode: string;
  sharedServerId: string | null;
  links?: unknown[];
  move?: {
    status: string;
    step: string | null;
    targetId: string | null;
    releaseIds: string[];
    error: string | null;
  } | null;
};
type ReleaseView = { id: string; status: string; error: string | null; containerId: string };

describe.skipIf(!ready)(
  'move to a dedicated server with a linked app (real MariaDB, releases, Caddy)',
  () => {
    let caddy: TestCaddy;
    const s = useDataSuite(import.meta.url, {
      email: 'move@example.com',
      before: async () => {
        await ensureTestImages();
        caddy = await startCaddy();
      },
      settings: () => ({
        caddyAdminUrl: caddy.adminUrl,
        caddyServer: caddy.serverName,
        release: { maxStepAttempts: 2, migrationTimeoutMs: 20_000, dataReadyAttempts: 60 },
      }),
      after: async () => {
        await caddy?.stop();
      },
    });
    let req: DataSuite['request'];
    let projectId: string;
    const h = (body?: unknown) => s.h(body);
    beforeAll(() => void ({ request: req, projectId } = s));

    /** GET through the edge, as a visitor of the app's host. */
    const viaCaddy = (host: string, path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const r = http.get(
          { host: '127.0.0.1', port: caddy.httpPort, path, headers: { host }, agent: false },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        r.on('error', reject);
      });

    /** Polls the data service until `done` (bounded: 400 polls). */
    const poll = (id: string, done: (d: View) => boolean) =>
      s.settle(id, done as (d: DataView) => boolean) as Promise<View>;

    async function waitRelease(id: string): Promise<ReleaseView> {
      let r = { status: 'unknown' } as ReleaseView;
      for (let i = 0; i < 600; i++) {
        r = (await req('GET', `/api/releases/${id}`, h())).body;
        if (['completed', 'failed', 'rolled_back'].includes(r.status)) return r;
        await sleep(200);
      }
      throw new Error(`release ${id} still ${r.status}`);
    }

    /** Runs SQL with exactly what a `mysql://` URL names, on the project network. */
    function sql(url: string, query: string) {
      const u = new URL(url);
      return s.client(
        'selfdevop/mariadb:10.11',
        [...s.cleanup.networks][0]!,
        { Q: query, MYSQL_PWD: decodeURIComponent(u.password) },
        `mariadb -h ${u.hostname} -P ${u.port} -u ${u.username} -N -B ${u.pathname.slice(1)} -e "$Q"`,
        { errexit: false },
      );
    }

    it('redeploys the app onto the dedicated copy; the shared copy serves until confirmed', async () => {
      const create = async (body: Record<string, unknown>) => {
        const d = (await s.create(body)) as View;
        expect(d.status, d.error ?? '').toBe('ready');
        return d;
      };
      const server = await create({ name: 'main', engine: 'mariadb', shareable: true });
      const shared = await create({
        name: 'shop-db',
        engine: 'mariadb',
        sharedServerId: server.id,
      });

      const svc = await req(
        'POST',
        '/api/services',
        h({
          projectId,
          name: 'web',
          image: 'selfdevop-test/app:v1',
          containerPort: 8080,
          healthcheckPath: '/health',
          health: { intervalMs: 100, successes: 2, deadlineMs: 15_000, timeoutMs: 1_000 },
        }),
      );
      expect(svc.status, svc.text).toBe(201);
      const host = (svc.body.hosts as { host: string }[])[0]!.host;
      const link = await req('POST', `/api/data-services/${shared.id}/links`, {
        ...h({ serviceId: svc.body.id }),
      });
      expect(link.status, link.text).toBe(201);
      const first = await req(
        'POST',
        '/api/releases',
        h({ serviceId: svc.body.id, image: 'selfdevop-test/app:v1' }),
      );
      expect(first.status, first.text).toBe(202);
      expect((await waitRelease(first.body.id)).status).toBe('completed');

      // The app answers with the shared copy's URL; the data written through it is the app's.
      const before = await viaCaddy(host, '/env/DATABASE_URL');
      expect(before.status, before.body).toBe(200);
      const sharedUrl = before.body;
      expect(new URL(sharedUrl).hostname).toBe(server.host);
      const seed = await sql(
        sharedUrl,
        "create table notes (id int primary key, note text); insert into notes values (1, 'a'), (2, 'b'), (3, 'c'); select count(*) from notes",
      );
      expect(seed.exitCode, seed.output).toBe(0);
      expect(seed.output.trim()).toBe('3');

      const asked = await req('POST', `/api/data-services/${shared.id}/move-to-dedicated`, h());
      expect(asked.status, asked.text).toBe(202);
      expect(asked.body.move).toMatchObject({ status: 'moving' });
      const moved = await poll(shared.id, (d) => d.move?.status !== 'moving');
      expect(moved.move, JSON.stringify(moved.move)).toMatchObject({
        status: 'moved',
        error: null,
      });
      const targetId = moved.move!.targetId!;
      const target = await poll(targetId, (d) => d.status !== 'provisioning');
      expect(target).toMatchObject({ status: 'ready', mode: 'dedicated', sharedServerId: null });
      expect(moved.links ?? []).toEqual([]);

      // The redeploy went through the release path and completed.
      const releaseIds = moved.move!.releaseIds;
      expect(releaseIds).toHaveLength(1);
      const redeploy = await waitRelease(releaseIds[0]!);
      expect(redeploy.status, redeploy.error ?? '').toBe('completed');
      expect(redeploy.id).not.toBe(first.body.id);

      // The app now answers with the dedicated server's URL, and that server holds its data.
      const after = await viaCaddy(host, '/env/DATABASE_URL');
      expect(after.status, after.body).toBe(200);
      const dedicatedUrl = after.body;
      expect(new URL(dedicatedUrl).hostname).toBe(target.host);
      expect(new URL(dedicatedUrl).hostname).not.toBe(server.host);
      const copied = await sql(dedicatedUrl, 'select group_concat(note order by id) from notes');
      expect(copied.exitCode, copied.output).toBe(0);
      expect(copied.output.trim()).toBe('a,b,c');
      // The app's own container reaches it (MariaDB's greeting names the server).
      const greeting = await docker(
        'exec',
        redeploy.containerId,
        'sh',
        '-c',
        `nc -w 3 ${target.host} 3306 </dev/null`,
      );
      expect(greeting).toContain('MariaDB');

      // Until confirmed, the shared copy still answers on its own URL (what old containers use),
      // and it is a separate database: a write there does not reach the dedicated copy.
      const stillShared = await sql(
        sharedUrl,
        "insert into notes values (4, 'late'); select count(*) from notes",
      );
      expect(stillShared.exitCode, stillShared.output).toBe(0);
      expect(stillShared.output.trim()).toBe('4');
      const apart = await sql(dedicatedUrl, 'select count(*) from notes');
      expect(apart.output.trim()).toBe('3');

      const confirmed = await req('POST', `/api/data-services/${shared.id}/confirm-move`, h());
      expect(confirmed.status, confirmed.text).toBe(202);
      await poll(shared.id, (d) => d.answered === 404);
      // The shared copy's database and user are dropped; the server and the app's copy stay.
      const dropped = await sql(sharedUrl, 'select 1');
      expect(dropped.exitCode).not.toBe(0);
      expect(dropped.output).toMatch(/Access denied/);
      const serving = await viaCaddy(host, '/env/DATABASE_URL');
      expect(serving.body).toBe(dedicatedUrl);
      expect((await sql(dedicatedUrl, 'select count(*) from notes')).output.trim()).toBe('3');
      const srv = await req('GET', `/api/data-services/${server.id}`, h());
      expect(srv.body.status).toBe('ready');
    }, 900_000);
  },
);
