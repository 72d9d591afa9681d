/**
 * Replicas that found no place, and a lost node deleted with force, on the real PostgreSQL
 * store (a fresh migrated database, RLS and foreign keys as an install has them), real Docker
 * Engines (../shared/ci/multi-node.sh nodes 1–3) and a real Caddy reading dynamic upstreams
 * from the edge DNS over PostgreSQL's `edge_upstreams`. test/core/nodes/delete.test.ts runs
 * the same paths on the memory ports.
 *
 * Nodes 1–3 serve the scale suites, so none is killed here: the "lost" node is engine 2
 * reached through a unix-socket proxy of this file, which is cut (its socket gone, its
 * connections reset), as a dead node's socket is. The node checks find it lost through the
 * real runtime's ping; its container keeps running behind the cut and is removed in afterAll.
 * Bounded waits, no timing asserts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SystemClock } from '../../adapters/clock/system.ts';
import { migrate } from '../../adapters/db/migrator.ts';
import { fromDatabaseUrl, type Database } from '../../adapters/db/postgres.ts';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { startUpstreamDns, type UpstreamDnsServer } from '../../adapters/edge/upstream-dns.ts';
import { PostgresUpstreamRegistry } from '../../adapters/edge/upstreams-postgres.ts';
import { RandomIds } from '../../adapters/ids/random.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { HttpHealthProbe } from '../../adapters/probe/http.ts';
import { MemoryQueue } from '../../adapters/queue/memory.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { PostgresStore } from '../../adapters/store/postgres.ts';
import { MemoryKeyVault } from '../../adapters/vault/memory.ts';
import type { CoreDeps } from '../../core/deps.ts';
import type { Release } from '../../core/models.ts';
import { NodeChecker } from '../../core/nodes/checks.ts';
import { deleteNode } from '../../core/nodes/delete.ts';
import { createNode } from '../../core/nodes/use-cases.ts';
import {
  createRelease,
  handleReleaseRetire,
  handleReleaseStep,
  releaseRetireQueue,
  releaseStepsQueue,
  type ReleaseDeps,
} from '../../core/releases/engine.ts';
import { defaultHosts, routeId } from '../../core/releases/plan.ts';
import { aUser } from '../contracts/store/builders.ts';
import { aNode, aProject, aService, anEnvironment, anOrg } from '../core/releases/builders.ts';
import { deployer, orgId } from '../core/releases/harness.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { createMigratedTestDatabase } from '../support/db.ts';
import { available, isCi } from '../support/services.ts';

const socketOf = (i: number) => `/run/sdo-node${i}/docker.sock`;
const nodesUp = [1, 2, 3].every((i) => existsSync(socketOf(i)));
if (!nodesUp) {
  const why = 'engines 1–3 are not up: run ../shared/ci/multi-node.sh up 3 with MN_IMAGES';
  if (isCi) throw new Error(`CI must not skip: ${why}`);
  console.warn(`\n*** SKIPPING unplaced-postgres suite: ${why} ***\n`);
}
const ready = nodesUp && (await available('caddy')) && (await available('postgres'));
const admin = { ...deployer, role: 'admin' as const };
const edgeDomain = 'apps.example.test';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every 100 ms for at most `ms`; its last answer when it never held. */
async function until<T>(probe: () => Promise<T>, ok: (v: T) => boolean, ms: number): Promise<T> {
  const end = Date.now() + ms;
  let v = await probe();
  while (!ok(v) && Date.now() < end) {
    await sleep(100);
    v = await probe();
  }
  return v;
}

/** GET through the edge with a Host header; a refused or cut request is data, not a throw. */
function get(port: number, host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get(
      { host: '127.0.0.1', port, path, headers: { host }, agent: false, timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ status: 0, body: e.message }));
  });
}

/**
 * A unix socket forwarding to a real engine's socket; `cut()` closes it and resets every
 * connection through it, so the node's engine stops answering selfdevop as a dead node's
 * would (the socket is gone) while the engine itself, shared with other suites, runs on.
 */
async function engineProxy(target: string, path: string): Promise<{ cut(): Promise<void> }> {
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const engine = net.connect({ path: target });
    open.add(client).add(engine);
    const drop = () => {
      client.destroy();
      engine.destroy();
      open.delete(client);
      open.delete(engine);
    };
    client.on('error', drop).on('close', drop);
    engine.on('error', drop).on('close', drop);
    client.pipe(engine).pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  let cut: Promise<void> | null = null;
  return {
    cut: () =>
      (cut ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of open) s.destroy();
      })),
  };
}

describe.skipIf(!ready)('unplaced replicas and force delete on PostgreSQL and real engines', () => {
  const tag = randomBytes(3).toString('hex');
  let dir: string;
  let db: { url: string; drop: () => Promise<void> };
  let pool: Database;
  let caddy: TestCaddy;
  let dns: UpstreamDnsServer;
  let deps: ReleaseDeps;
  let checker: NodeChecker;
  const proxies: { cut(): Promise<void> }[] = [];
  const serviceIds: string[] = [];
  let stops: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sdo-unplaced-'));
    db = await createMigratedTestDatabase('unplaced');
    await migrate(db.url);
    pool = fromDatabaseUrl(db.url, { appRole: 'selfdevop_app', max: 5 });
    const store = new PostgresStore(pool);
    const registry = new PostgresUpstreamRegistry(pool);
    caddy = await startCaddy();
    const zone = 'upstreams.selfdevop.internal';
    dns = await startUpstreamDns({ registry, zone, host: '127.0.0.1', port: 0, cacheMs: 50 });
    deps = {
      store,
      runtime: new DockerRuntime({ requestTimeoutMs: 20_000 }),
      edge: new CaddyEdgeRouter({
        adminUrl: caddy.adminUrl,
        server: caddy.serverName,
        dynamicUpstreams: { registry, zone, resolver: dns.address, refreshMs: 100, dnsCacheMs: 50 },
      }),
      queue: new MemoryQueue({ retryDelaySeconds: 0, pollIntervalMs: 5 }),
      vault: new MemoryKeyVault(),
      probe: new HttpHealthProbe(),
      clock: new SystemClock(),
      ids: new RandomIds(),
      logger: new MemoryLogger(),
      config: { edgeDomain, migrationTimeoutMs: 20_000, maxStepAttempts: 3 },
    };
    await store.identity.createUserFirstIsOperator(aUser({ id: deployer.userId! }));
    await store.withOrg(orgId, async (r) => {
      await r.orgs.insert(anOrg());
      await r.projects.insert(aProject());
      await r.environments.insert(anEnvironment());
    });
    stops = [
      await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps)),
      await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps)),
    ];
    checker = new NodeChecker({
      release: deps,
      policy: { intervalMs: 0, timeoutMs: 1000, missesToLose: 2 },
    });
  }, 120_000);

  afterAll(async () => {
    for (const stop of stops) await stop();
    await checker?.settled();
    for (const p of proxies) await p.cut();
    // Only this file's services: the engines and the org id are shared with other suites.
    const runtime = new DockerRuntime();
    for (const i of [1, 2, 3]) {
      const target = { dockerHost: `unix://${socketOf(i)}` };
      for (const serviceId of serviceIds)
        for (const c of await runtime
          .list(target, { 'selfdevop.service': serviceId })
          .catch(() => []))
          await runtime.remove(target, c.name).catch(() => undefined);
    }
    await caddy?.stop();
    await dns?.close();
    await pool?.close();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 180_000);

  const release = (id: string) =>
    deps.store.withOrg(orgId, async (x) => (await x.releases.get(id))!);
  const audit = (action: string) =>
    deps.store.withOrg(orgId, async (x) => (await x.audit.list({ limit: 20 }, { action })).items);
  const healthy = (r: Release) => r.replicaSet!.replicas.filter((x) => x.health === 'healthy');

  /**
   * Registers nodes 1 and 3 at their engines and node 2 through a proxy to its engine, a
   * service of `replicas` on them, and deploys it. Node ids are this test's own.
   */
  async function scene(name: string, o: { withNode3: boolean }) {
    const ids = [1, 2, 3].map((i) => `node_${tag}${name}${i}`);
    const proxyPath = join(dir, `${name}-node2.sock`);
    const proxy = await engineProxy(socketOf(2), proxyPath);
    proxies.push(proxy);
    const service = aService({
      id: `svc_${tag}${name}`,
      name: `web-${name}`,
      image: 'selfdevop-test/app:v1',
      replicas: 2,
      maxSurge: 2,
      memoryMb: null,
      cpus: null,
      health: { intervalMs: 100, timeoutMs: 1000, successes: 2, deadlineMs: 20_000 },
      warmSeconds: 0,
      drainSeconds: 1,
    });
    serviceIds.push(service.id);
    const host = defaultHosts({ service, environment: anEnvironment(), edgeDomain })[0]!;
    await deps.store.withOrg(orgId, async (r) => {
      // An earlier test's nodes take nothing of this one's (the org is shared in the file).
      for (const n of (await r.nodes.list({ limit: 50 })).items)
        await r.nodes.setDrainMode(n.id, true);
      await r.services.insert(service);
      const hosts = [`unix://${socketOf(1)}`, `unix://${proxyPath}`, `unix://${socketOf(3)}`];
      for (const i of o.withNode3 ? [0, 1, 2] : [0, 1])
        await r.nodes.insert(
          aNode({
            id: ids[i],
            name: `${name}-node${i + 1}`,
            dockerHost: hosts[i],
            address: `10.213.0.1${i + 1}`,
            // Node 3, when registered now, takes nothing until the test says so: the
            // deploy's two replicas go to nodes 1 and 2.
            drainMode: i === 2,
          }),
        );
    });
    const { id } = await createRelease(deps, deployer, {
      serviceId: service.id,
      image: 'selfdevop-test/app:v1',
    });
    const v1 = await until(
      () => release(id),
      (r) => r.status === 'completed' || r.status === 'failed',
      90_000,
    );
    expect(v1.status).toBe('completed');
    expect(v1.replicaSet!.replicas.map((r) => r.nodeId)).toEqual([ids[0], ids[1]]);
    return { ids, service, host, proxy, v1 };
  }

  /**
   * Node 1 takes no new replicas, and node 2 (its proxy cut) is found lost by the real
   * checks: its replica leaves the edge and finds no place, which node.lost says.
   */
  async function loseNode2(s: Awaited<ReturnType<typeof scene>>) {
    await deps.store.withOrg(orgId, (r) => r.nodes.setDrainMode(s.ids[0]!, true));
    await checker.round();
    await s.proxy.cut();
    for (let i = 0; i < 2; i++) await checker.round();
    await checker.settled();
    const lost = await deps.store.withOrg(orgId, (r) => r.nodes.get(s.ids[1]!));
    expect(lost!.reachability).toBe('lost');
    const events = (await audit('node.lost')).filter((e) => e.targetId === s.ids[1]);
    expect(events).toMatchObject([
      { data: { releases: [{ releaseId: s.v1.id, lostReplicas: [1], action: 'unplaceable' }] } },
    ]);
    // The edge serves the survivor on node 1 only.
    const survivor = s.v1.replicaSet!.replicas[0]!.upstream!;
    const upstreams = await until(
      async () => (await deps.edge.get(routeId(s.service.id, 'env_000001')))?.upstreams ?? [],
      (u) => u.length === 1,
      10_000,
    );
    expect(upstreams).toEqual([survivor]);
  }

  /** Both replicas healthy on node 3, in Caddy, answering through it, running on engine 3. */
  async function expectServedFromNode3(s: Awaited<ReturnType<typeof scene>>) {
    const restored = await until(
      () => release(s.v1.id),
      (r) => {
        const up = healthy(r);
        return up.length === 2 && up.every((x) => x.nodeId === s.ids[2]);
      },
      90_000,
    );
    const up = healthy(restored);
    expect(up.map((r) => r.nodeId)).toEqual([s.ids[2], s.ids[2]]);
    const upstreams = await until(
      async () => (await deps.edge.get(routeId(s.service.id, 'env_000001')))?.upstreams ?? [],
      (u) => u.length === 2 && u.every((x) => x.startsWith('10.213.0.13:')),
      10_000,
    );
    expect(upstreams.sort()).toEqual(up.map((r) => r.upstream).sort());
    const running = await new DockerRuntime().list(
      { dockerHost: `unix://${socketOf(3)}` },
      { 'selfdevop.service': s.service.id },
    );
    expect(
      running
        .filter((c) => c.state === 'running')
        .map((c) => c.id)
        .sort(),
    ).toEqual(up.map((r) => r.containerId).sort());
    // Through Caddy: both node-3 replicas answer, and nothing else does.
    const answers = [];
    for (let i = 0; i < 12; i++) answers.push(await get(caddy.httpPort, s.host, '/env/HOSTNAME'));
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(new Set(answers.map((a) => a.body)).size).toBe(2);
    return restored;
  }

  it('deletes a lost node with force: its replica is written off and restored on another node', async () => {
    const s = await scene('f', { withNode3: true });
    await loseNode2(s);

    // Without force, the lost node holding a serving replica is refused, naming the way out.
    const refused = await deleteNode(deps, admin, s.ids[1]!, {}, null).then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({
      kind: 'conflict',
      code: 'node_holds_replicas',
      message: expect.stringContaining('delete it with force=true to write them off'),
    });
    expect(await deps.store.withOrg(orgId, (r) => r.nodes.get(s.ids[1]!))).not.toBeNull();

    // Capacity appears on node 3 (no retry by itself: the flag only), then the forced delete.
    await deps.store.withOrg(orgId, (r) => r.nodes.setDrainMode(s.ids[2]!, false));
    const result = await deleteNode(deps, admin, s.ids[1]!, { force: true }, null);
    expect(result).toEqual({
      writtenOff: [{ releaseId: s.v1.id, serviceId: s.service.id, replicas: [1] }],
      replacing: [s.v1.id],
      containers: {
        removed: [],
        kept: [],
        errors: [expect.stringMatching(/^the engine did not answer: /)],
      },
    });
    // Gone from PostgreSQL; the release's log and the audit say what happened.
    expect(await deps.store.withOrg(orgId, (r) => r.nodes.get(s.ids[1]!))).toBeNull();
    const log = await deps.store.withOrg(orgId, (r) => r.releaseLogs.list(s.v1.id, 0, 500));
    expect(log.map((l) => l.line)).toContain(
      'node f-node2 deleted while lost: replica 1 written off',
    );
    const deleted = (await audit('node.deleted')).filter((e) => e.targetId === s.ids[1]);
    expect(deleted).toMatchObject([
      { data: { force: true, reachability: 'lost', writtenOff: result.writtenOff } },
    ]);
    expect(
      (await audit('node.containers_removed')).filter((e) => e.targetId === s.ids[1]),
    ).toMatchObject([{ data: { reachability: 'lost', errors: result.containers.errors } }]);

    // The reshape restores the count on node 3 (and moves the one off node 1, which drains).
    await expectServedFromNode3(s);
    // The written-off replica is no longer live anywhere in the stored set.
    const after = await release(s.v1.id);
    expect(
      after.replicaSet!.replicas.filter((r) => r.nodeId === s.ids[1] && r.health !== 'stopped'),
    ).toEqual([]);
  }, 240_000);

  it('places the replicas that found no place on a node registered meanwhile', async () => {
    const s = await scene('r', { withNode3: false });
    await loseNode2(s);
    // Still short: nothing retried on a timer.
    expect(healthy(await release(s.v1.id)).filter((r) => r.nodeId !== s.ids[1])).toHaveLength(1);

    const core = {
      ...deps,
      auth: {},
      config: { ...deps.config },
      release: deps,
    } as unknown as CoreDeps & { release: ReleaseDeps };
    const created = await createNode(
      core,
      admin,
      { name: 'r-node3', dockerHost: `unix://${socketOf(3)}`, address: '10.213.0.13' },
      { requestId: `req_${tag}` } as never,
    );
    s.ids[2] = created.id;
    await expectServedFromNode3(s);
    const logged = await deps.store.withOrg(orgId, (r) => r.releaseLogs.list(s.v1.id, 0, 500));
    expect(logged.map((l) => l.line).join('\n')).toContain('node r-node3 registered');
  }, 240_000);
});
