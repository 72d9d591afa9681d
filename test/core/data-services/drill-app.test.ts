import { describe, expect, it } from 'vitest';
import { decodedMismatch } from '../../../core/data-services/backup-work.ts';
import { planDrill } from '../../../core/data-services/backups.ts';
import {
  checkLinkedApps,
  drillAppEnv,
  drillApps,
  planDrillApp,
  planDrillProbe,
} from '../../../core/data-services/drill-app.ts';
import { secretContext } from '../../../core/secrets/use-cases.ts';
import { dataServiceSecretContext } from '../../../core/data-services/plan.ts';
import { MemoryRuntime } from '../../../adapters/runtime/memory.ts';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../../adapters/vault/memory.ts';
import {
  aDataService,
  aDataServiceLink,
  anEnvironment,
  anOrg,
  aNode,
  aProject,
  aRelease,
  aSecret,
  aService,
  at,
} from '../../contracts/store/builders.ts';

const org = anOrg();
const project = aProject(org.id);
const node = aNode(org.id);
const ds = aDataService(org.id, project.id, node.id, { id: 'dat_1', status: 'ready' });
const service = aService(org.id, project.id, {
  id: 'svc_1',
  name: 'web',
  env: { GREETING: 'hi', REDIS_URL: 'user-set, overridden' },
  health: { intervalMs: 250, timeoutMs: 1500, successes: 2, deadlineMs: 20_500 },
});

describe('drill plans with linked apps', () => {
  const app = {
    service,
    release: aRelease(org.id, service.id, 'env_1', {
      id: 'rel_1',
      image: 'registry.test/web:7',
      imageDigest: 'sha256:abc',
    }),
    envName: 'REDIS_URL',
  };

  it('starts the restored server on the drill network, internal, and keeps it serving after its counts', () => {
    const spec = planDrill(ds, 'drillpw', 'bak_1', 'sdo-drill-bak_1');
    expect(spec).toMatchObject({
      name: 'sdo-drill-bak_1-data',
      network: 'sdo-drill-bak_1',
      internalNetwork: true,
      restartPolicy: 'no',
    });
    expect(spec.noNetwork).toBeUndefined();
    expect(spec.entrypoint![2]!.endsWith("\nprintf 'drill\\tready\\n'\nwait")).toBe(true);
  });

  it("runs the release's exact image on the drill network only, nothing published", () => {
    expect(planDrillApp(ds, app, { A: '1' }, 'bak_1', 0)).toEqual({
      name: 'sdo-drill-bak_1-app-0',
      image: 'sha256:abc',
      env: { A: '1', PORT: '8080' },
      labels: {
        'selfdevop.org': org.id,
        'selfdevop.project': project.id,
        'selfdevop.data-service': 'dat_1',
        'selfdevop.role': 'data-drill',
        'selfdevop.service': 'svc_1',
        'selfdevop.release': 'rel_1',
      },
      restartPolicy: 'no',
      network: 'sdo-drill-bak_1',
      internalNetwork: true,
      memoryMb: null,
      cpus: null,
    });
  });

  it("probes with the service's own policy from the drill network, path and host in env only", () => {
    const spec = planDrillProbe(
      ds,
      { ...app, service: { ...service, healthcheckPath: "/h'; rm -rf /" } },
      'bak_1',
      0,
    );
    expect(spec).toMatchObject({
      name: 'sdo-drill-bak_1-probe-0',
      image: 'selfdevop/redis:7',
      network: 'sdo-drill-bak_1',
      internalNetwork: true,
      env: {
        H: 'sdo-drill-bak_1-app-0',
        P: '8080',
        U: "/h'; rm -rf /",
        T: '1.500',
        I: '0.250',
        S: '2',
        D: '21',
      },
    });
    expect(spec.entrypoint!.join(' ')).not.toContain('rm -rf');
  });
});

describe('which apps a drill starts, and with what env', () => {
  it("takes each linked service's newest completed release across environments, skipping undeployed ones", async () => {
    const store = new MemoryStore();
    const vault = new MemoryKeyVault();
    const prod = anEnvironment(org.id, project.id, { name: 'production' });
    const staging = anEnvironment(org.id, project.id, { name: 'staging' });
    const idle = aService(org.id, project.id, { name: 'idle' });
    await store.withOrg(org.id, async (r) => {
      await r.orgs.insert(org);
      await r.projects.insert(project);
      await r.environments.insert(prod);
      await r.environments.insert(staging);
      await r.nodes.insert(node);
      await r.services.insert(service);
      await r.services.insert(idle);
      await r.dataServices.insert(ds);
      await r.dataServiceLinks.insert(aDataServiceLink(org.id, ds.id, service.id));
      await r.dataServiceLinks.insert(
        aDataServiceLink(org.id, ds.id, idle.id, { envName: 'CACHE_URL' }),
      );
      await r.releases.insert(
        aRelease(org.id, service.id, prod.id, {
          id: 'rel_old',
          status: 'completed',
          finishedAt: at(10),
        }),
      );
      await r.releases.insert(
        aRelease(org.id, service.id, staging.id, {
          id: 'rel_new',
          status: 'completed',
          finishedAt: at(20),
        }),
      );
      await r.releases.insert(
        aRelease(org.id, idle.id, prod.id, {
          id: 'rel_failed',
          status: 'failed',
          finishedAt: at(30),
        }),
      );
      await r.secrets.put(
        aSecret(org.id, service.id, staging.id, {
          name: 'API_TOKEN',
          sealed: await vault.seal(
            's3cret',
            secretContext(org.id, service.id, staging.id, 'API_TOKEN'),
          ),
        }),
      );
    });
    const apps = await drillApps(store, ds);
    expect(apps.map((a) => [a.service.name, a.release.id, a.envName])).toEqual([
      ['web', 'rel_new', 'REDIS_URL'],
    ]);
    // The link's URL points at the restored copy, with the drill's password, never the live one.
    const sealed = await vault.seal('livepw', dataServiceSecretContext(org.id, ds.id));
    await store.withOrg(org.id, (r) => r.dataServices.update(ds.id, { sealedPassword: sealed }));
    const env = await drillAppEnv(
      { store, vault },
      { ...ds, sealedPassword: sealed },
      apps[0]!,
      'drillpw',
      'bak_1',
    );
    expect(env).toEqual({
      GREETING: 'hi',
      API_TOKEN: 's3cret',
      REDIS_URL: 'redis://:drillpw@sdo-drill-bak_1-data:6379/0',
    });
  });
});

describe('checking a dump read back against its manifest', () => {
  const totals = {
    inBytes: 100,
    outBytes: 1000,
    inSha256: 'i',
    outSha256: 'raw',
    gzipBytes: 72,
    gzipSha256: 'gz',
  };
  it('format 1: the dump’s own SHA-256', () => {
    const m = { format: 1 as const, rawSha256: 'raw', rawBytes: 1000 };
    expect(decodedMismatch(m, totals)).toBeNull();
    expect(decodedMismatch(m, { ...totals, outSha256: 'other' })).toMatch(/SHA-256 other is not/);
  });
  it('format 2: the gzip stream’s SHA-256 and length, and the dump’s length', () => {
    const m = {
      format: 2 as const,
      rawSha256: null,
      gzipSha256: 'gz',
      gzipBytes: 72,
      rawBytes: 1000,
    };
    expect(decodedMismatch(m, totals)).toBeNull();
    expect(decodedMismatch(m, { ...totals, gzipSha256: 'x' })).toMatch(/gzip stream's SHA-256 x/);
    expect(decodedMismatch(m, { ...totals, outBytes: 999 })).toMatch(
      /999 bytes, the manifest says 1000/,
    );
  });
});

describe('starting the apps against the restored copy (memory runtime)', () => {
  const target = { dockerHost: 'unix:///var/run/docker.sock' };
  const app = {
    service,
    release: aRelease(org.id, service.id, 'env_1', { id: 'rel_1', image: 'registry.test/web:7' }),
    envName: 'REDIS_URL',
  };
  async function setup(probe: { exitCode: number; lines: string[] }) {
    const store = new MemoryStore();
    await store.withOrg(org.id, (r) => r.orgs.insert(org));
    const runtime = new MemoryRuntime({ clock: new ManualClock() });
    runtime.addImage('selfdevop/redis:7', { defaultOneOff: probe });
    return { store, runtime, vault: new MemoryKeyVault(), clock: new ManualClock() };
  }

  it('passes when the probe on the drill network saw the app healthy, and removes the app', async () => {
    const deps = await setup({ exitCode: 0, lines: ['healthy: HTTP/1.1 200 OK'] });
    deps.runtime.addImage('registry.test/web:7', {});
    expect(await checkLinkedApps(deps, target, ds, [app], 'pw', 'bak_1')).toBeNull();
    expect(await deps.runtime.list(target, { 'selfdevop.role': 'data-drill' })).toEqual([]);
  });

  it("fails with the probe's last answer when the app is not healthy against the copy", async () => {
    const deps = await setup({
      exitCode: 1,
      lines: ['unhealthy: HTTP/1.1 503 Service Unavailable'],
    });
    deps.runtime.addImage('registry.test/web:7', {});
    expect(await checkLinkedApps(deps, target, ds, [app], 'pw', 'bak_1')).toBe(
      'app web (registry.test/web:7) did not become healthy against the restored copy: GET /health HTTP/1.1 503 Service Unavailable',
    );
    expect(await deps.runtime.list(target, { 'selfdevop.role': 'data-drill' })).toEqual([]);
  });

  it('fails naming why when the app cannot start at all (its image is not on the node)', async () => {
    const deps = await setup({ exitCode: 0, lines: [] });
    const reason = await checkLinkedApps(deps, target, ds, [app], 'pw', 'bak_1');
    expect(reason).toMatch(
      /^app web \(registry\.test\/web:7\) could not start against the restored copy: .*registry\.test\/web:7/,
    );
  });
});
