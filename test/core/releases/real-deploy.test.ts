import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SystemClock } from '../../../adapters/clock/system.ts';
import { CaddyEdgeRouter } from '../../../adapters/edge/caddy.ts';
import { SequenceIds } from '../../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../../adapters/logger/memory.ts';
import { HttpHealthProbe } from '../../../adapters/probe/http.ts';
import { MemoryQueue } from '../../../adapters/queue/memory.ts';
import { DockerRuntime } from '../../../adapters/runtime/docker.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../../adapters/vault/memory.ts';
import type { Release } from '../../../core/models.ts';
import {
  createRelease,
  handleReleaseRetire,
  handleReleaseStep,
  listReleaseLogs,
  releaseRetireQueue,
  releaseStepsQueue,
  rollbackRelease,
  type ReleaseDeps,
} from '../../../core/releases/engine.ts';
import { containerName, defaultHosts } from '../../../core/releases/plan.ts';
import { startCaddy, type TestCaddy } from '../../support/caddy.ts';
import { dockerTarget, ensureTestImages, removeContainersByLabel } from '../../support/docker.ts';
import { available } from '../../support/services.ts';
import { aNode, aProject, aSecret, aService, anEnvironment, anOrg } from './builders.ts';
import { deployer, orgId } from './harness.ts';

const ready = (await available('docker')) && (await available('caddy'));

/** GET through the edge with a Host header, as a visitor of the default host would. */
function viaEdge(
  port: number,
  host: string,
  path = '/',
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path, headers: { host }, agent: false, timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${host}${path} timed out`)));
    req.on('error', reject);
  });
}

describe.skipIf(!ready)('a release on a real Docker Engine behind a real Caddy', () => {
  // A service id of its own, so parallel runs never share container names or labels.
  const serviceId = `svc_${randomBytes(4).toString('hex')}`;
  const labels = { 'selfdevop.service': serviceId };
  let caddy: TestCaddy;
  let deps: ReleaseDeps;
  let host: string;
  let stops: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    await ensureTestImages();
    caddy = await startCaddy();
    const store = new MemoryStore();
    const vault = new MemoryKeyVault();
    deps = {
      store,
      runtime: new DockerRuntime(),
      edge: new CaddyEdgeRouter({ adminUrl: caddy.adminUrl, server: caddy.serverName }),
      queue: new MemoryQueue({ retryDelaySeconds: 0, pollIntervalMs: 5 }),
      vault,
      probe: new HttpHealthProbe(),
      clock: new SystemClock(),
      ids: new SequenceIds(),
      logger: new MemoryLogger(),
      config: { edgeDomain: 'apps.example.test', migrationTimeoutMs: 20_000, maxStepAttempts: 3 },
    };
    const service = aService({
      id: serviceId,
      image: 'selfdevop-test/app:v1',
      migrateCommand: '/bin/migrate',
      env: { GREETING: 'plain' },
      health: { intervalMs: 100, timeoutMs: 1000, successes: 2, deadlineMs: 4000 },
      warmSeconds: 600,
      drainSeconds: 1,
    });
    host = defaultHosts({
      service,
      environment: anEnvironment(),
      edgeDomain: deps.config.edgeDomain,
    })[0]!;
    const sealed = await vault.seal('from-the-vault', `${orgId}:${serviceId}:env_000001:GREETING`);
    await store.withOrg(orgId, async (r) => {
      await r.orgs.insert(anOrg());
      await r.projects.insert(aProject());
      await r.environments.insert(anEnvironment());
      await r.services.insert(service);
      await r.nodes.insert(aNode({ dockerHost: dockerTarget.dockerHost, address: '127.0.0.1' }));
      await r.secrets.put(aSecret({ serviceId, name: 'GREETING', sealed }));
    });
    stops = [
      await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps)),
      await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps)),
    ];
  });

  afterAll(async () => {
    for (const stop of stops) await stop();
    await removeContainersByLabel(labels).catch(() => undefined);
    await caddy?.stop();
  });

  async function deploy(image: string): Promise<Release> {
    const { id } = await createRelease(deps, deployer, { serviceId, image });
    for (let i = 0; i < 600; i++) {
      const r = await deps.store.withOrg(orgId, async (x) => (await x.releases.get(id))!);
      if (r.status === 'completed' || r.status === 'failed') return r;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`release ${id} did not settle within 30 s`);
  }

  it('deploys v1, then v2 blue/green, with the secret in the environment', async () => {
    const v1 = await deploy('selfdevop-test/app:v1');
    expect(v1).toMatchObject({ status: 'completed', error: null });
    expect(await viaEdge(caddy.httpPort, host)).toEqual({
      status: 200,
      body: 'selfdevop-test app v1\n',
    });
    expect((await viaEdge(caddy.httpPort, host, '/env/GREETING')).body).toBe('from-the-vault');
    const lines = (await listReleaseLogs(deps, deployer, v1.id)).map((l) => l.line);
    expect(lines).toContain('migration succeeded');

    const v2 = await deploy('selfdevop-test/app:v2');
    expect(v2.status).toBe('completed');
    expect(await viaEdge(caddy.httpPort, host)).toEqual({
      status: 200,
      body: 'selfdevop-test app v2\n',
    });
    // v1 is still warm beside it.
    expect(
      (await deps.runtime.list(dockerTarget, labels)).filter((c) => c.state === 'running'),
    ).toHaveLength(2);
  });

  it('fails an unhealthy release and a failing migration while v2 keeps serving', async () => {
    const sick = await deploy('selfdevop-test/app:unhealthy');
    expect(sick).toMatchObject({
      status: 'failed',
      error: 'health check did not pass within 4000 ms: GET /health → 404',
    });
    expect(await viaEdge(caddy.httpPort, host)).toEqual({
      status: 200,
      body: 'selfdevop-test app v2\n',
    });

    const broken = await deploy('selfdevop-test/app:migrate-fail');
    expect(broken).toMatchObject({ status: 'failed', error: 'migration exited with code 3' });
    expect(await viaEdge(caddy.httpPort, host)).toEqual({
      status: 200,
      body: 'selfdevop-test app v2\n',
    });
    const names = (await deps.runtime.list(dockerTarget, labels)).map(
      (c) => c.labels['selfdevop.release'],
    );
    expect(names).not.toContain(sick.id);
    expect(names).not.toContain(broken.id);
  });

  it("rolls v2 back to the warm v1, with no new container (its speed is bench:deploy's)", async () => {
    const v2 = await deps.store.withOrg(orgId, (x) =>
      x.releases.latest(serviceId, 'env_000001', ['completed']),
    );
    const result = await rollbackRelease(deps, deployer, { releaseId: v2!.id });
    expect(result.path).toBe('warm');
    expect(await viaEdge(caddy.httpPort, host)).toEqual({
      status: 200,
      body: 'selfdevop-test app v1\n',
    });
  });

  it("redeploys a still-warm release's image by taking over its container (renamed, health-checked, switched), not starting one", async () => {
    const v1 = (await deps.store.withOrg(orgId, (x) =>
      x.releases.latest(serviceId, 'env_000001', ['completed']),
    ))!;
    const v1Container = (await deps.runtime.inspect(dockerTarget, containerName(v1)))!;
    expect(v1Container.labels['selfdevop.config']).toMatch(/^v1:[0-9a-f]{64}$/);
    // v2's image again: nothing of it is warm in the serving chain, so it starts fresh.
    const again2 = await deploy('selfdevop-test/app:v2');
    expect(again2.status).toBe('completed');
    const runningNow = async () =>
      (await deps.runtime.list(dockerTarget, labels))
        .filter((c) => c.state === 'running')
        .map((c) => c.id)
        .sort();
    const before = await runningNow();

    const again1 = await deploy('selfdevop-test/app:v1');
    expect(again1).toMatchObject({ status: 'completed', containerId: v1Container.id });
    expect(await viaEdge(caddy.httpPort, host)).toEqual({
      status: 200,
      body: 'selfdevop-test app v1\n',
    });
    // The same containers run: v1's now under again1's name, none started.
    expect(await runningNow()).toEqual(before);
    expect(await deps.runtime.inspect(dockerTarget, containerName(v1))).toBeNull();
    expect((await deps.runtime.inspect(dockerTarget, containerName(again1)))?.id).toBe(
      v1Container.id,
    );
    const lines = (await listReleaseLogs(deps, deployer, again1.id)).map((l) => l.line);
    expect(lines).toContainEqual(
      expect.stringMatching(new RegExp(`^reusing the warm containers of release ${v1.id} `)),
    );
    expect(lines).toContainEqual(expect.stringMatching(/^healthy after \d+ probes$/));
  });
});
