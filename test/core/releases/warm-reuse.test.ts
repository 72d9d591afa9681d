import { describe, expect, it } from 'vitest';
import type { Release, Replica } from '../../../core/models.ts';
import type { ContainerInfo } from '../../../core/ports.ts';
import {
  configurationHash,
  configurationLabel,
  decideWarmReuse,
  findWarmRelease,
  secretVersion,
  type ReleaseConfiguration,
} from '../../../core/releases/warm-reuse.ts';
import { listReleaseLogs, releaseRetireQueue } from '../../../core/releases/engine.ts';
import { containerName, planCandidate } from '../../../core/releases/plan.ts';
import { aNode, aRelease, aService, anEnvironment } from './builders.ts';
import { deployer, dockerHost, putSecret, setup, type Harness } from './harness.ts';

const config: ReleaseConfiguration = {
  image: 'sha256:aaaa',
  kind: 'web',
  env: { A: '1', B: '2' },
  secretVersions: { TOKEN: 'v1' },
  linked: { DATABASE_URL: 'postgres://app:pw@db/app' },
  network: 'sdo-prj',
  containerPort: 8080,
  memoryMb: 256,
  cpus: 0.5,
  healthcheckPath: '/health',
  health: { intervalMs: 1000, timeoutMs: 2000, successes: 2, deadlineMs: 60_000 },
  workerHealth: null,
  placementLabels: { zone: 'a' },
};

describe('configurationHash', () => {
  it('is equal for equal configurations, whatever the order their maps were built in', () => {
    const reordered: ReleaseConfiguration = {
      ...config,
      env: { B: '2', A: '1' },
      health: { deadlineMs: 60_000, successes: 2, timeoutMs: 2000, intervalMs: 1000 },
    };
    expect(configurationHash(reordered)).toBe(configurationHash(config));
    expect(configurationHash(config)).toMatch(/^v1:[0-9a-f]{64}$/);
  });

  it('differs when any one thing a container runs with changes', () => {
    const changes: Partial<ReleaseConfiguration>[] = [
      { image: 'sha256:bbbb' },
      { kind: 'worker' },
      { env: { A: '1', B: '3' } },
      { env: { A: '1', B: '2', C: '' } },
      { secretVersions: { TOKEN: 'v2' } },
      { secretVersions: {} },
      { linked: { DATABASE_URL: 'postgres://app:rotated@db/app' } },
      { linked: { DB_URL: 'postgres://app:pw@db/app' } },
      { network: null },
      { containerPort: 3000 },
      { memoryMb: 512 },
      { cpus: null },
      { healthcheckPath: '/ready' },
      { health: { ...config.health, successes: 3 } },
      { workerHealth: { stableSeconds: 10, command: null } },
      { placementLabels: {} },
    ];
    const base = configurationHash(config);
    const seen = new Set([base]);
    for (const change of changes) {
      const h = configurationHash({ ...config, ...change });
      expect(h, JSON.stringify(change)).not.toBe(base);
      seen.add(h);
    }
    expect(seen.size).toBe(changes.length + 1);
  });

  it('versions a secret by its sealed text, never holding the value', () => {
    expect(secretVersion('sealed-1')).toBe(secretVersion('sealed-1'));
    expect(secretVersion('sealed-1')).not.toBe(secretVersion('sealed-2'));
    expect(secretVersion('sealed-1')).toMatch(/^[0-9a-f]{32}$/);
  });

  it('is carried as a label by a candidate container when given', () => {
    const input = {
      service: aService({ id: 'svc_1' }),
      environment: anEnvironment(),
      release: aRelease({ id: 'rel_1', serviceId: 'svc_1' }),
      node: aNode(),
      env: {},
    };
    expect(planCandidate(input).labels[configurationLabel]).toBeUndefined();
    expect(
      planCandidate({ ...input, configurationHash: 'v1:abc' }).labels[configurationLabel],
    ).toBe('v1:abc');
  });
});

describe('decideWarmReuse', () => {
  const hash = 'v1:same';
  const replica = (index: number, nodeId = 'node_1'): Replica => ({
    index,
    nodeId,
    containerId: `c${index}`,
    upstream: `10.0.0.5:${4000 + index}`,
    health: 'healthy',
  });
  const info = (o: Partial<ContainerInfo> = {}): ContainerInfo => ({
    id: 'c0',
    name: 'x',
    state: 'running',
    labels: { [configurationLabel]: hash },
    published: null,
    ...o,
  });
  const warm = (
    replicas: Replica[],
    containers: (ContainerInfo | null)[],
    swarm: string[] = [],
  ) => ({
    release: aRelease({ id: 'rel_w' }),
    replicas,
    containers,
    swarmNodeIds: new Set(swarm),
  });
  const planned = [
    { index: 0, nodeId: 'node_1' },
    { index: 1, nodeId: 'node_1' },
  ];

  it('reuses when every replica runs on the same node with the same configuration hash', () => {
    expect(
      decideWarmReuse({
        hash,
        planned,
        warm: warm([replica(0), replica(1)], [info(), info({ id: 'c1' })]),
      }),
    ).toEqual({ reuse: true });
  });

  it('starts fresh, saying why, when anything differs', () => {
    const cases: [ReturnType<typeof warm>, string][] = [
      [warm([replica(0)], [info()]), 'release rel_w runs 1 replicas, this one 2'],
      [
        warm([replica(0), replica(1, 'node_2')], [info(), info()]),
        'replica 1 of release rel_w is on another node than this release',
      ],
      [warm([replica(0), replica(1)], [info(), null]), 'replica 1 of release rel_w is gone'],
      [
        warm([replica(0), replica(1)], [info({ state: 'exited' }), info()]),
        'replica 0 of release rel_w is exited',
      ],
      [
        warm([replica(0), replica(1)], [info(), info({ labels: {} })]),
        'replica 1 of release rel_w carries no configuration hash',
      ],
      [
        warm(
          [replica(0), replica(1)],
          [info(), info({ labels: { [configurationLabel]: 'v1:x' } })],
        ),
        'the configuration changed since release rel_w started',
      ],
      [
        warm([replica(0), replica(1)], [info(), info()], ['node_1']),
        "a Swarm node's replicas cannot be taken over",
      ],
    ];
    for (const [w, reason] of cases) {
      const d = decideWarmReuse({ hash, planned, warm: w });
      expect(d.reuse).toBe(false);
      expect(d.reuse ? '' : d.reason).toContain(reason);
    }
  });
});

describe('findWarmRelease', () => {
  const rel = (id: string, o: Partial<Release> = {}) =>
    aRelease({
      id,
      status: 'completed',
      imageDigest: `sha256:${id}`,
      nodeId: 'node_1',
      containerId: `c-${id}`,
      ...o,
    });
  const replicasOf = (r: Release): Replica[] =>
    r.replicaSet?.replicas ?? [
      {
        index: 0,
        nodeId: r.nodeId!,
        containerId: r.containerId,
        upstream: null,
        health: r.containerId ? 'healthy' : 'planned',
      },
    ];
  const chain = (...rs: Release[]) => {
    const byId = new Map(rs.map((r) => [r.id, r]));
    return async (id: string) => byId.get(id) ?? null;
  };

  it('walks back from the serving release to the first still-running one of the image', async () => {
    const r1 = rel('r1');
    const r2 = rel('r2', { previousReleaseId: 'r1' });
    const r3 = rel('r3', { previousReleaseId: 'r2' });
    const found = await findWarmRelease({
      serving: r3,
      imageDigest: 'sha256:r1',
      load: chain(r1, r2),
      replicasOf,
    });
    expect(found?.release.id).toBe('r1');
    expect(found?.replacedBy.id).toBe('r2');
  });

  it('finds nothing when the release of that image was retired, failed, or is further back than it looks', async () => {
    const retired = rel('r1', { containerId: null });
    const r2 = rel('r2', { previousReleaseId: 'r1' });
    expect(
      await findWarmRelease({
        serving: r2,
        imageDigest: 'sha256:r1',
        load: chain(retired),
        replicasOf,
      }),
    ).toBeNull();
    const failed = rel('r1', { status: 'failed' });
    expect(
      await findWarmRelease({
        serving: r2,
        imageDigest: 'sha256:r1',
        load: chain(failed),
        replicasOf,
      }),
    ).toBeNull();
    // The serving release itself is never taken: it is what serves.
    expect(
      await findWarmRelease({
        serving: r2,
        imageDigest: 'sha256:r2',
        load: chain(rel('r1')),
        replicasOf,
      }),
    ).toBeNull();
    // Nor an older copy of the image that serves: deploying it again is a restart.
    const again = rel('r2', { previousReleaseId: 'r1', imageDigest: 'sha256:r1' });
    expect(
      await findWarmRelease({
        serving: again,
        imageDigest: 'sha256:r1',
        load: chain(rel('r1')),
        replicasOf,
      }),
    ).toBeNull();
    const deep = [rel('r0')];
    for (let i = 1; i <= 6; i++) deep.push(rel(`r${i}`, { previousReleaseId: `r${i - 1}` }));
    expect(
      await findWarmRelease({
        serving: deep[6]!,
        imageDigest: 'sha256:r0',
        load: chain(...deep),
        replicasOf,
        depth: 5,
      }),
    ).toBeNull();
  });
});

// ------------------------------------------------------- the engine, with memory adapters

const running = (h: Harness) =>
  h.runtime
    .containers(dockerHost)
    .filter((c) => c.state === 'running')
    .map((c) => c.spec.name)
    .sort();
const lines = async (h: Harness, id: string) =>
  (await listReleaseLogs(h.deps, deployer, id)).map((l) => l.line);

describe('a redeploy of an earlier image whose release is still warm', () => {
  it("takes over that release's containers, health-checked, instead of starting new ones", async () => {
    const h = await setup({ warmSeconds: 300 });
    const v1 = await h.deploy('shop/web:1');
    const v1Container = h.runtime.container(dockerHost, containerName(v1))!;
    await h.deploy('shop/web:2');
    h.clock.advance(10_000);
    h.runtime.calls.length = 0;
    const v3 = await h.deploy('shop/web:1');

    expect(v3).toMatchObject({ status: 'completed', imageDigest: v1.imageDigest });
    expect(h.runtime.calls.filter((c) => c.method === 'start')).toEqual([]);
    expect(h.runtime.calls.filter((c) => c.method === 'rename')).toEqual([
      { method: 'rename', dockerHost, subject: `${v1Container.id} ${containerName(v3)}` },
    ]);
    // The same container, under v3's name, serves at v1's old address.
    expect(v3.containerId).toBe(v1Container.id);
    expect(v3.upstream).toBe(v1.upstream);
    expect((await h.edge.get('sdo-svc_0abc12-env_000001'))?.upstreams).toEqual([v1.upstream]);
    const log = await lines(h, v3.id);
    expect(log).toContainEqual(
      expect.stringMatching(
        new RegExp(`^reusing the warm containers of release ${v1.id} .*no new container started$`),
      ),
    );
    // Health-checked like any candidate before the switch.
    expect(log.some((l) => l.startsWith('healthy after'))).toBe(true);
    const v1After = await h.release(v1.id);
    expect(v1After.containerId).toBeNull();
    expect(v1After.replicaSet?.replicas.map((r) => r.health)).toEqual(['stopped']);
    expect(await lines(h, v1.id)).toContain(
      `containers taken over by release ${v3.id} (same image, same configuration): this release runs nothing any more`,
    );

    // Every retirement then due (v1's from v2's switch, v2's from v3's) leaves v3 running.
    h.clock.advance(300_000);
    await h.retireDue();
    expect(h.queue.of(releaseRetireQueue).every((s) => s.handled)).toBe(true);
    expect(running(h)).toEqual([containerName(v3)]);
  });

  it('starts fresh, and says why, when the environment, a secret or the resources changed', async () => {
    const changes: [string, (h: Harness) => Promise<void>][] = [
      ['env', (h) => h.repos((r) => r.services.update(h.service.id, { env: { FEATURE: 'on' } }))],
      ['secret', (h) => putSecret(h, 'API_TOKEN', 'rotated')],
      ['memory', (h) => h.repos((r) => r.services.update(h.service.id, { memoryMb: 512 }))],
      [
        'health check',
        (h) =>
          h.repos((r) =>
            r.services.update(h.service.id, { health: { ...h.service.health, successes: 3 } }),
          ),
      ],
    ];
    for (const [what, change] of changes) {
      const h = await setup({ warmSeconds: 300 });
      await putSecret(h, 'API_TOKEN', 'first');
      const v1 = await h.deploy('shop/web:1');
      await h.deploy('shop/web:2');
      await change(h);
      h.runtime.calls.length = 0;
      const v3 = await h.deploy('shop/web:1');
      expect(v3.status, what).toBe('completed');
      expect(
        h.runtime.calls.filter((c) => c.method === 'start').map((c) => c.subject),
        what,
      ).toEqual([containerName(v3)]);
      expect(await lines(h, v3.id), what).toContain(
        `release ${v1.id} is still warm with this image, but new containers start: the configuration changed since release ${v1.id} started (environment, secrets, linked data services, port, resources or health check)`,
      );
      // v1 keeps its containers for its own warm window.
      expect(running(h), what).toContain(containerName(v1));
    }
  });

  it('starts fresh when the warm release no longer answers, or its window is about to end', async () => {
    const h = await setup({ warmSeconds: 300 });
    const v1 = await h.deploy('shop/web:1');
    await h.deploy('shop/web:2');
    h.runtime.setHealthy(dockerHost, containerName(v1), false);
    const v3 = await h.deploy('shop/web:1');
    expect(v3.status).toBe('completed');
    expect(v3.containerId).not.toBe(h.runtime.container(dockerHost, containerName(v1))!.id);
    expect(await lines(h, v3.id)).toContain(
      `release ${v1.id} is still warm with this image, but new containers start: replica 0 did not answer GET /health at once`,
    );

    const late = await setup({ warmSeconds: 300 });
    const w1 = await late.deploy('shop/web:1');
    await late.deploy('shop/web:2');
    late.clock.advance(280_000);
    const w3 = await late.deploy('shop/web:1');
    expect(await lines(late, w3.id)).toContain(
      `release ${w1.id} is still warm with this image, but new containers start: its warm window ends in 20 s (under 30 s)`,
    );
  });

  it('leaves a retired release alone: nothing warm, nothing said', async () => {
    const h = await setup({ warmSeconds: 60 });
    await h.deploy('shop/web:1');
    await h.deploy('shop/web:2');
    h.clock.advance(60_000);
    await h.retireDue();
    const v3 = await h.deploy('shop/web:1');
    expect(v3.status).toBe('completed');
    expect((await lines(h, v3.id)).filter((l) => l.includes('warm'))).toEqual([]);
  });
});
