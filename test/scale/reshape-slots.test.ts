/**
 * Scale and drain jobs must not starve deploys: a reshape whose new replicas are slow to
 * pass their gate gives its worker slot up between health slices, as a deploy's health
 * check does, so a deploy of another service of the same org (whose share is 2 slots)
 * runs meanwhile. Real engines (nodes 1–3 of ../shared/ci/multi-node.sh), real Caddy.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SystemClock } from '../../adapters/clock/system.ts';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { startUpstreamDns, type UpstreamDnsServer } from '../../adapters/edge/upstream-dns.ts';
import { MemoryUpstreamRegistry } from '../../adapters/edge/upstreams-memory.ts';
import { SequenceIds } from '../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { HttpHealthProbe } from '../../adapters/probe/http.ts';
import { MemoryQueue } from '../../adapters/queue/memory.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { MemoryStore } from '../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../adapters/vault/memory.ts';
import type { Release } from '../../core/models.ts';
import {
  createRelease,
  handleReleaseRetire,
  handleReleaseStep,
  releaseRetireQueue,
  releaseStepsQueue,
  type ReleaseDeps,
} from '../../core/releases/engine.ts';
import { replicasOf } from '../../core/releases/replicas.ts';
import { scaleService } from '../../core/services/scale.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { available, isCi } from '../support/services.ts';
import { aNode, aProject, aService, anEnvironment, anOrg } from '../core/releases/builders.ts';
import { deployer } from '../core/releases/harness.ts';

const sockets = [1, 2, 3].map((i) => `/run/sdo-node${i}/docker.sock`);
const nodesUp = sockets.every((s) => existsSync(s));
if (!nodesUp) {
  const why = 'three engines are not up: run ../shared/ci/multi-node.sh up 3 with MN_IMAGES';
  if (isCi) throw new Error(`CI must not skip: ${why}`);
  console.warn(`\n*** SKIPPING reshape-slots suite: ${why} ***\n`);
}
const ready = nodesUp && (await available('caddy'));

describe.skipIf(!ready)('scale jobs and deploys of one org share its worker slots', () => {
  // An org of its own, so clean-up by label touches nothing of another suite.
  const orgId = `org_${randomBytes(4).toString('hex')}`;
  const me = { ...deployer, orgId };
  const ids = ['slow1', 'slow2', 'fast'].map((n) => `svc_${n}${randomBytes(3).toString('hex')}`);
  const [slow1, slow2, fast] = ids as [string, string, string];
  let caddy: TestCaddy;
  let dns: UpstreamDnsServer;
  let deps: ReleaseDeps;
  let stops: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    caddy = await startCaddy();
    const registry = new MemoryUpstreamRegistry();
    const zone = 'sdo.internal';
    dns = await startUpstreamDns({ registry, zone, host: '127.0.0.1', port: 0, cacheMs: 50 });
    deps = {
      store: new MemoryStore(),
      runtime: new DockerRuntime(),
      edge: new CaddyEdgeRouter({
        adminUrl: caddy.adminUrl,
        server: caddy.serverName,
        dynamicUpstreams: { registry, zone, resolver: dns.address, refreshMs: 100 },
      }),
      queue: new MemoryQueue({ retryDelaySeconds: 0, pollIntervalMs: 5 }),
      vault: new MemoryKeyVault(),
      probe: new HttpHealthProbe(),
      clock: new SystemClock(),
      ids: new SequenceIds(),
      logger: new MemoryLogger(),
      // The shipped share (2 steps of one org per worker); short slices keep the test short.
      config: {
        edgeDomain: 'apps.example.test',
        migrationTimeoutMs: 20_000,
        maxStepAttempts: 3,
        maxStepsPerOrg: 2,
        healthSliceMs: 500,
      },
    };
    await deps.store.withOrg(orgId, async (r) => {
      await r.orgs.insert(anOrg({ id: orgId }));
      await r.projects.insert(aProject({ orgId }));
      await r.environments.insert(anEnvironment({ orgId }));
      for (const id of ids)
        await r.services.insert(
          aService({
            id,
            orgId,
            name: id.slice(4, 9),
            image: 'selfdevop-test/app:v1',
            env: {},
            memoryMb: null,
            cpus: null,
            replicas: 1,
            health: { intervalMs: 200, timeoutMs: 1000, successes: 1, deadlineMs: 60_000 },
            warmSeconds: 0,
            drainSeconds: 1,
          }),
        );
      for (const i of [1, 2, 3])
        await r.nodes.insert(
          aNode({
            id: `node_00000${i}`,
            orgId,
            name: `sdo-node${i}`,
            dockerHost: `unix://${sockets[i - 1]}`,
            address: `10.213.0.1${i}`,
          }),
        );
    });
    // The self-hosted worker's concurrency.
    stops = [
      await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps), { concurrency: 4 }),
      await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps)),
    ];
  });

  afterAll(async () => {
    for (const stop of stops) await stop();
    const runtime = new DockerRuntime();
    for (const s of sockets) {
      const target = { dockerHost: `unix://${s}` };
      for (const c of await runtime.list(target, { 'selfdevop.org': orgId }).catch(() => []))
        await runtime.remove(target, c.name).catch(() => undefined);
    }
    await caddy?.stop();
    await dns?.close();
  });

  const get = (id: string) => deps.store.withOrg(orgId, async (x) => (await x.releases.get(id))!);
  async function settle(id: string): Promise<Release> {
    for (let i = 0; i < 1200; i++) {
      const r = await get(id);
      if (r.status === 'completed' || r.status === 'failed') return r;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`release ${id} did not settle`);
  }
  const serving = async (serviceId: string) =>
    replicasOf(
      (await deps.store.withOrg(orgId, (x) =>
        x.releases.latest(serviceId, 'env_000001', ['completed']),
      ))!,
    ).filter((r) => r.health === 'healthy').length;

  it('deploys another service while two slow scale-ups wait for their new replicas', async () => {
    const first = await Promise.all(
      ids.map(async (serviceId) =>
        settle((await createRelease(deps, me, { serviceId, image: 'selfdevop-test/app:v1' })).id),
      ),
    );
    expect(first.map((r) => r.status)).toEqual(['completed', 'completed', 'completed']);
    // New replicas of the slow services answer /health only after 12 s: each scale-up's
    // gate lasts that long, two of them as many as the org's share of slots.
    for (const id of [slow1, slow2])
      await deps.store.withOrg(orgId, (x) =>
        x.services.update(id, { env: { HEALTH_DELAY_SECONDS: '12' } }),
      );
    await scaleService(deps, me, slow1, { replicas: 2 }, null);
    await scaleService(deps, me, slow2, { replicas: 2 }, null);
    // Both scale-ups have their first slice under way before the deploy is asked for.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const { id } = await createRelease(deps, me, {
      serviceId: fast,
      image: 'selfdevop-test/app:v2',
    });
    const deployed = await settle(id);
    expect(deployed.status).toBe('completed');
    // The deploy did not wait for a scale-up to end: both still wait on their new replica.
    const whenDeployed = [await serving(slow1), await serving(slow2)];
    expect(whenDeployed).toEqual([1, 1]);
    // And the scale-ups finish all the same.
    for (let i = 0; i < 600; i++) {
      if ((await serving(slow1)) === 2 && (await serving(slow2)) === 2) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect([await serving(slow1), await serving(slow2)]).toEqual([2, 2]);
  });
});
