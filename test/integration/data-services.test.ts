/**
 * Data services for real: the self-hosted control plane with its workers creates Redis,
 * MariaDB and PostgreSQL containers from the offline images on the real Docker Engine,
 * waits for them to answer, links them to an app built from the test images (deployed
 * behind a real Caddy), and the URLs work from the app's containers on the project
 * network — and from nowhere else.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import {
  dockerTarget,
  ensureDataImages,
  ensureTestImages,
  removeContainersByLabel,
  testRun,
} from '../support/docker.ts';
import type { Requester } from '../support/http.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));
const docker = (...args: string[]) =>
  promisify(execFile)('docker', args, { timeout: 30_000 }).then((r) => r.stdout.trim());

describe.skipIf(!ready)('data services on Docker', () => {
  const run = testRun(import.meta.url);
  const runtime = new DockerRuntime();
  let caddy: TestCaddy;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let req: Requester;
  let token: string;
  let orgId: string;
  let projectId: string;
  let otherProjectId: string;
  const volumes: string[] = [];
  const networks = new Set<string>();

  async function createData(body: Record<string, unknown>) {
    const res = await req('POST', '/api/data-services', {
      token,
      headers: { 'x-org-id': orgId },
      body: { projectId, ...body },
    });
    expect(res.status, res.text).toBe(202);
    expect(res.body.status).toBe('provisioning');
    volumes.push(res.body.volume);
    networks.add(res.body.network);
    return res.body as { id: string; host: string; network: string; volume: string };
  }

  /** Polls the resource until it leaves `provisioning` (bounded: 150 polls). */
  async function settle(id: string) {
    for (let i = 0; i < 150; i++) {
      const r = await req('GET', `/api/data-services/${id}`, {
        token,
        headers: { 'x-org-id': orgId },
      });
      if (r.body.status !== 'provisioning') return r.body;
      await new Promise((r) => setTimeout(r, 400));
    }
    throw new Error(`data service ${id} still provisioning`);
  }

  /** A one-off client from a data image, on `network` (or the default bridge), with `env`. */
  const client = (
    image: string,
    network: string | undefined,
    env: Record<string, string>,
    sh: string,
  ) =>
    runtime.runOnce(
      dockerTarget,
      {
        name: run.name('client'),
        image,
        env,
        labels: run.labels,
        entrypoint: ['sh', '-c', sh],
        restartPolicy: 'no',
        ...(network ? { network } : {}),
      },
      30_000,
    );

  beforeAll(async () => {
    await Promise.all([ensureTestImages(), ensureDataImages()]);
    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      release: { maxStepAttempts: 2, migrationTimeoutMs: 20_000, dataReadyAttempts: 60 },
    });
    req = api.request;
    const s = await req('POST', '/api/auth/local/signup', {
      body: { email: 'data@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    projectId = (await req('POST', '/api/projects', { token, body: { name: 'shop' } })).body.id;
    otherProjectId = (await req('POST', '/api/projects', { token, body: { name: 'blog' } })).body
      .id;
    const node = await req('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
  }, 900_000);

  afterAll(async () => {
    await api?.close();
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
    await removeContainersByLabel(run.labels);
    for (const v of volumes) await docker('volume', 'rm', '-f', v).catch(() => undefined);
    for (const n of networks) await docker('network', 'rm', n).catch(() => undefined);
  });

  it('creates Redis with explicit memory, eviction and persistence, reachable only on the project network', async () => {
    const created = await createData({
      name: 'cache',
      engine: 'redis',
      maxmemoryMb: 64,
      evictionPolicy: 'allkeys-lru',
      persistence: 'aof',
    });
    const ds = await settle(created.id);
    expect(ds.status, ds.error).toBe('ready');
    expect(ds).not.toHaveProperty('sealedPassword');
    // Whether and when the password was rotated, never the password itself (checked below).
    expect(Object.keys(ds).filter((k) => /password/i.test(k))).toEqual(['passwordRotatedAt']);
    expect(ds.settings).toEqual({
      maxmemoryMb: 64,
      evictionPolicy: 'allkeys-lru',
      persistence: 'aof',
    });
    const info = await runtime.inspect(dockerTarget, ds.host);
    expect(info?.state).toBe('running');
    expect(info?.published).toBeNull(); // no port on any host address
    // Its data lives on the named volume.
    expect(
      await docker('inspect', '-f', '{{range .Mounts}}{{.Name}}={{.Destination}} {{end}}', ds.host),
    ).toBe(`${ds.volume}=/data`);
    // The settings are what the server runs with (asked with the server's own password).
    const password = (
      await docker('inspect', '-f', '{{range .Config.Env}}{{println .}}{{end}}', ds.host)
    )
      .split('\n')
      .find((l) => l.startsWith('REDIS_PASSWORD='))!
      .slice('REDIS_PASSWORD='.length);
    expect(JSON.stringify(ds)).not.toContain(password);
    const cfg = await client(
      'selfdevop/redis:7',
      ds.network,
      { REDISCLI_AUTH: password },
      `redis-cli -h ${ds.host} config get maxmemory; redis-cli -h ${ds.host} config get maxmemory-policy; redis-cli -h ${ds.host} config get appendonly`,
    );
    expect(cfg.exitCode, cfg.output).toBe(0);
    expect(cfg.output.split('\n').filter(Boolean)).toEqual([
      'maxmemory',
      String(64 * 1024 * 1024),
      'maxmemory-policy',
      'allkeys-lru',
      'appendonly',
      'yes',
    ]);
    // Off the project network the name does not even resolve.
    const outside = await client(
      'selfdevop/redis:7',
      undefined,
      { REDISCLI_AUTH: password },
      `redis-cli -h ${ds.host} ping`,
    );
    expect(outside.output).not.toContain('PONG');
  }, 180_000);

  it('links Redis to an app: the URL reaches its migration and candidate from the next release on', async () => {
    const redis = await settle((await createData({ name: 'sessions', engine: 'redis' })).id);
    expect(redis.status, redis.error).toBe('ready');
    // The migration speaks Redis over busybox nc with what REDIS_URL says, and fails without it.
    const migrate = [
      'test -n "$REDIS_URL" || { echo "no REDIS_URL" >&2; exit 4; }',
      'pw=${REDIS_URL#redis://:}; pw=${pw%%@*}',
      'host=${REDIS_URL#*@}; host=${host%%:*}',
      `printf 'AUTH %s\\r\\nPING\\r\\n' "$pw" | nc -w 3 "$host" 6379 | grep -q PONG || { echo "redis did not answer at $host" >&2; exit 5; }`,
      'echo redis answered',
    ].join('; ');
    const svc = await req('POST', '/api/services', {
      token,
      body: {
        projectId,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
        migrateCommand: migrate,
        health: { intervalMs: 100, successes: 2, deadlineMs: 10_000, timeoutMs: 1_000 },
      },
    });
    expect(svc.status, svc.text).toBe(201);
    const link = await req('POST', `/api/data-services/${redis.id}/links`, {
      token,
      body: { serviceId: svc.body.id },
    });
    expect(link.status, link.text).toBe(201);
    expect(link.body.envName).toBe('REDIS_URL');
    const release = await req('POST', '/api/releases', {
      token,
      body: { serviceId: svc.body.id, image: 'selfdevop-test/app:v1' },
    });
    expect(release.status, release.text).toBe(202);
    let r = release.body;
    for (let i = 0; i < 200 && !['completed', 'failed', 'rolled_back'].includes(r.status); i++) {
      await new Promise((res) => setTimeout(res, 200));
      r = (await req('GET', `/api/releases/${release.body.id}`, { token })).body;
    }
    expect(r.status, r.error).toBe('completed');
    const logs = await req('GET', `/api/releases/${release.body.id}/logs`, { token });
    const text = JSON.stringify(logs.body);
    expect(text).toContain('redis answered');
    // The password is masked in the release's logs like a secret.
    const url = (
      await docker('inspect', '-f', '{{range .Config.Env}}{{println .}}{{end}}', r.containerId)
    )
      .split('\n')
      .find((l) => l.startsWith('REDIS_URL='))!
      .slice('REDIS_URL='.length);
    expect(url).toMatch(new RegExp(`^redis://:[A-Za-z0-9]+@${redis.host}:6379/0$`));
    expect(text).not.toContain(url.slice('redis://:'.length, url.indexOf('@')));
    // The candidate runs on the project network, where the data service is.
    expect(
      await docker(
        'inspect',
        '-f',
        '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}',
        r.containerId,
      ),
    ).toBe(redis.network);
  }, 240_000);

  it.each([
    [
      'mariadb',
      'selfdevop/mariadb:10.11',
      'mysql://',
      `u=\${DATABASE_URL#mysql://}; user=\${u%%:*}; pw=\${u#*:}; pw=\${pw%%@*}; h=\${u#*@}; host=\${h%%:*}; db=\${h##*/}; MYSQL_PWD="$pw" mariadb -h "$host" -u "$user" "$db" -N -e 'create table t (v int); insert into t values (41); select v + 1 from t'`,
    ],
    [
      'postgres',
      'selfdevop/postgres:15',
      'postgres://',
      `psql "$DATABASE_URL" -At -c 'create table t (v int)' -c 'insert into t values (41)' -c 'select v + 1 from t'`,
    ],
  ])(
    'creates %s, ready, and its linked URL works from the project network',
    async (engine, image, scheme, sh) => {
      const ds = await settle((await createData({ name: `db-${engine}`, engine })).id);
      expect(ds.status, ds.error).toBe('ready');
      expect(ds.version).toBe(engine === 'mariadb' ? '10.11' : '15');
      const svc = await req('POST', '/api/services', {
        token,
        body: {
          projectId,
          name: `api-${engine}`,
          image: 'selfdevop-test/app:v1',
          containerPort: 8080,
          healthcheckPath: '/health',
        },
      });
      const link = await req('POST', `/api/data-services/${ds.id}/links`, {
        token,
        body: { serviceId: svc.body.id, envName: 'DB_URL' },
      });
      expect(link.status, link.text).toBe(201);
      // The env a release hands the service's containers, computed as the engine does.
      const { linkedDataEnv } = await import('../../core/data-services/links.ts');
      const linked = await linkedDataEnv(api.system.api, orgId, svc.body.id);
      expect(linked.network).toBe(ds.network);
      const url = linked.env.DB_URL!;
      expect(url.startsWith(scheme)).toBe(true);
      const res = await client(image, ds.network, { DATABASE_URL: url }, sh);
      expect(res.exitCode, res.output).toBe(0);
      expect(res.output).toContain('42');
    },
    240_000,
  );

  describe('bad input', () => {
    it('refuses an unknown engine or version, settings of another engine, and a clashing name', async () => {
      const engine = await req('POST', '/api/data-services', {
        token,
        body: { projectId, name: 'x1', engine: 'mongodb' },
      });
      expect(engine.status).toBe(400);
      expect(engine.body.error.message).toContain('engine');
      const version = await req('POST', '/api/data-services', {
        token,
        body: { projectId, name: 'x2', engine: 'redis', version: '5' },
      });
      expect(version.status).toBe(400);
      expect(version.body.error.message).toBe('version: redis 5 is not available; available: 7');
      const settings = await req('POST', '/api/data-services', {
        token,
        body: { projectId, name: 'x3', engine: 'postgres', maxmemoryMb: 64 },
      });
      expect(settings.status).toBe(400);
      expect(settings.body.error.message).toBe('maxmemoryMb: applies to redis only');
      const project = await req('POST', '/api/data-services', {
        token,
        body: { projectId: 'prj_0nothing', name: 'x4', engine: 'redis' },
      });
      expect(project.status).toBe(404);
      await createData({ name: 'dup', engine: 'redis', persistence: 'none' });
      const clash = await req('POST', '/api/data-services', {
        token,
        body: { projectId, name: 'dup', engine: 'postgres' },
      });
      expect(clash.status).toBe(409);
      expect(clash.body.error.code).toBe('data_service_exists');
      // Another project may use the name.
      const elsewhere = await req('POST', '/api/data-services', {
        token,
        body: { projectId: otherProjectId, name: 'dup', engine: 'redis', persistence: 'none' },
      });
      expect(elsewhere.status, elsewhere.text).toBe(202);
      volumes.push(elsewhere.body.volume);
      networks.add(elsewhere.body.network);
    });

    it('refuses links across projects (400) and orgs (404), and a second link of one env name', async () => {
      const ds = await createData({ name: 'linkcheck', engine: 'redis', persistence: 'none' });
      const blogSvc = await req('POST', '/api/services', {
        token,
        body: {
          projectId: otherProjectId,
          name: 'blog',
          image: 'selfdevop-test/app:v1',
          containerPort: 8080,
          healthcheckPath: '/health',
        },
      });
      const crossProject = await req('POST', `/api/data-services/${ds.id}/links`, {
        token,
        body: { serviceId: blogSvc.body.id },
      });
      expect(crossProject.status).toBe(400);
      expect(crossProject.body.error.details.field).toBe('serviceId');
      // A second org of the same person: its service is not this org's, whatever the caller.
      const org2 = await req('POST', '/api/orgs', { token, body: { name: 'Other org' } });
      expect(org2.status, org2.text).toBe(201);
      const p2 = await req('POST', '/api/projects', {
        token,
        headers: { 'x-org-id': org2.body.id },
        body: { name: 'shop' },
      });
      const svc2 = await req('POST', '/api/services', {
        token,
        headers: { 'x-org-id': org2.body.id },
        body: {
          projectId: p2.body.id,
          name: 'web',
          image: 'selfdevop-test/app:v1',
          containerPort: 8080,
          healthcheckPath: '/health',
        },
      });
      expect(svc2.status, svc2.text).toBe(201);
      const crossOrg = await req('POST', `/api/data-services/${ds.id}/links`, {
        token,
        headers: { 'x-org-id': orgId },
        body: { serviceId: svc2.body.id },
      });
      expect(crossOrg.status).toBe(404);
      expect(crossOrg.body.error.code).toBe('service_not_found');
      // Nor is the data service visible from the other org.
      const foreign = await req('GET', `/api/data-services/${ds.id}`, {
        token,
        headers: { 'x-org-id': org2.body.id },
      });
      expect(foreign.status).toBe(404);
      const shopSvc = await req('POST', '/api/services', {
        token,
        headers: { 'x-org-id': orgId },
        body: {
          projectId,
          name: 'worker',
          image: 'selfdevop-test/app:v1',
          containerPort: 8080,
          healthcheckPath: '/health',
        },
      });
      const first = await req('POST', `/api/data-services/${ds.id}/links`, {
        token,
        headers: { 'x-org-id': orgId },
        body: { serviceId: shopSvc.body.id, envName: 'CACHE_URL' },
      });
      expect(first.status, first.text).toBe(201);
      const again = await req('POST', `/api/data-services/${ds.id}/links`, {
        token,
        headers: { 'x-org-id': orgId },
        body: { serviceId: shopSvc.body.id, envName: 'OTHER_URL' },
      });
      expect(again.status).toBe(409);
    });

    it('deletes only with the name typed again and no links; the volume is kept or removed as asked', async () => {
      const headers = { 'x-org-id': orgId };
      const keep = await settle((await createData({ name: 'keepme', engine: 'redis' })).id);
      const gone = await settle((await createData({ name: 'dropme', engine: 'redis' })).id);
      expect([keep.status, gone.status]).toEqual(['ready', 'ready']);
      const svc = await req('POST', '/api/services', {
        token,
        headers,
        body: {
          projectId,
          name: 'linked',
          image: 'selfdevop-test/app:v1',
          containerPort: 8080,
          healthcheckPath: '/health',
        },
      });
      const link = await req('POST', `/api/data-services/${keep.id}/links`, {
        token,
        headers,
        body: { serviceId: svc.body.id },
      });
      const noConfirm = await req('DELETE', `/api/data-services/${keep.id}`, { token, headers });
      expect(noConfirm.status).toBe(400);
      expect(noConfirm.body.error.details.field).toBe('confirm');
      const linked = await req('DELETE', `/api/data-services/${keep.id}?confirm=keepme`, {
        token,
        headers,
      });
      expect(linked.status).toBe(409);
      expect(linked.body.error.code).toBe('data_service_linked');
      const unlink = await req('DELETE', `/api/data-services/${keep.id}/links/${link.body.id}`, {
        token,
        headers,
      });
      expect(unlink.status).toBe(204);

      const del1 = await req('DELETE', `/api/data-services/${keep.id}?confirm=keepme`, {
        token,
        headers,
      });
      expect(del1.status, del1.text).toBe(202);
      expect(del1.body.status).toBe('deleting');
      const del2 = await req(
        'DELETE',
        `/api/data-services/${gone.id}?confirm=dropme&volume=remove`,
        {
          token,
          headers,
        },
      );
      expect(del2.status, del2.text).toBe(202);
      for (const id of [keep.id, gone.id]) {
        let status = 0;
        for (let i = 0; i < 100 && status !== 404; i++) {
          status = (await req('GET', `/api/data-services/${id}`, { token, headers })).status;
          if (status !== 404) await new Promise((r) => setTimeout(r, 200));
        }
        expect(status).toBe(404);
      }
      expect(await runtime.inspect(dockerTarget, keep.host)).toBeNull();
      expect(await runtime.inspect(dockerTarget, gone.host)).toBeNull();
      expect(await docker('volume', 'ls', '-q', '--filter', `name=^${keep.volume}$`)).toBe(
        keep.volume,
      );
      expect(await docker('volume', 'ls', '-q', '--filter', `name=^${gone.volume}$`)).toBe('');
      const audit = await req('GET', `/api/audit-events?targetId=${gone.id}`, { token, headers });
      expect(audit.body.items.map((e: { action: string }) => e.action)).toEqual([
        'data_service.created',
        'data_service.ready',
        'data_service.delete_requested',
        'data_service.deleted',
      ]);
      expect(audit.body.items.at(-1).data.volume).toBe('removed');
    }, 240_000);
  });
});
