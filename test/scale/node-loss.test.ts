/**
 * Node loss on real Docker Engines (../shared/ci/multi-node.sh: each in its own network
 * namespace) behind a real Caddy with dynamic upstreams: a node holding a replica loses
 * power under requests, the node checks find it lost, its replica leaves the edge, the count
 * is restored on the survivors (health-gated), and when the node boots again its stale
 * container is removed. Bounded loops, no timing asserts (bench/scale/node-loss.ts times it).
 *
 * The engines are shared between suites by purpose: this one kills and boots only the nodes
 * of NODE_LOSS_NODES (default 4,5,6, the node-loss range), and boots them again in afterAll.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type UpstreamDnsServer } from '../../adapters/edge/upstream-dns.ts';
import { MemoryMetrics } from '../../adapters/metrics/memory.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { NodeRecord, Release } from '../../core/models.ts';
import { NodeChecker } from '../../core/nodes/checks.ts';
import {
  createRelease,
  handleReleaseRetire,
  handleReleaseStep,
  releaseRetireQueue,
  releaseStepsQueue,
  type ReleaseDeps,
} from '../../core/releases/engine.ts';
import { defaultHosts, routeId } from '../../core/releases/plan.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { available, isCi } from '../support/services.ts';
import { aNode, aProject, aService, anEnvironment, anOrg } from '../core/releases/builders.ts';
import { deployer, orgId } from '../core/releases/harness.ts';
import { releaseDepsBehindCaddy } from '../support/edge-release.ts';

/** Which multi-node.sh nodes this suite may kill: the node-loss range unless CI says otherwise. */
const indexes = (process.env.NODE_LOSS_NODES ?? '4,5,6').split(',').map((s) => Number(s.trim()));
const script = fileURLToPath(new URL('../../../shared/ci/multi-node.sh', import.meta.url));
const socketOf = (i: number) => `/run/sdo-node${i}/docker.sock`;
const nodesUp =
  indexes.length === 3 &&
  indexes.every((i) => Number.isInteger(i) && i >= 1 && i <= 9 && existsSync(socketOf(i))) &&
  existsSync(script);
if (!nodesUp) {
  const why = `engines ${indexes.join(',')} are not up: run ../shared/ci/multi-node.sh up 9 with MN_IMAGES`;
  if (isCi) throw new Error(`CI must not skip: ${why}`);
  console.warn(`\n*** SKIPPING node-loss suite: ${why} ***\n`);
}
const ready = nodesUp && (await available('caddy'));
const run = promisify(execFile);
const multiNode = (...args: string[]) => run('bash', [script, ...args], { timeout: 120_000 });

/** GET through the edge with a Host header; a refused or cut request is data, not a throw. */
function get(port: number, host: string, path = '/'): Promise<{ status: number; body: string }> {
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

describe.skipIf(!ready)('node loss on real engines behind a real Caddy', () => {
  const serviceId = `svc_${randomBytes(4).toString('hex')}`;
  const nodeIds = ['node_00000a', 'node_00000b', 'node_00000c'];
  let caddy: TestCaddy;
  let dns: UpstreamDnsServer;
  let deps: ReleaseDeps;
  let checker: NodeChecker;
  let stopChecks: (() => Promise<void>) | null = null;
  let host: string;
  let stops: (() => Promise<void>)[] = [];
  const killed = new Set<number>();
  const metrics = new MemoryMetrics();

  beforeAll(async () => {
    caddy = await startCaddy();
    ({ deps, dns } = await releaseDepsBehindCaddy(caddy, {
      // Short engine calls: a killed node's socket is gone, so calls fail at once anyway.
      runtime: new DockerRuntime({ requestTimeoutMs: 20_000 }),
    }));
    const service = aService({
      id: serviceId,
      image: 'selfdevop-test/app:v1',
      replicas: 2,
      maxSurge: 2,
      health: { intervalMs: 100, timeoutMs: 1000, successes: 2, deadlineMs: 15_000 },
      warmSeconds: 0,
      drainSeconds: 1,
    });
    host = defaultHosts({
      service,
      environment: anEnvironment(),
      edgeDomain: 'apps.example.test',
    })[0]!;
    await deps.store.withOrg(orgId, async (r) => {
      await r.orgs.insert(anOrg());
      await r.projects.insert(aProject());
      await r.environments.insert(anEnvironment());
      await r.services.insert(service);
      for (const [k, i] of indexes.entries())
        await r.nodes.insert(
          aNode({
            id: nodeIds[k],
            name: `sdo-node${i}`,
            dockerHost: `unix://${socketOf(i)}`,
            address: `10.213.0.1${i}`,
          }),
        );
    });
    stops = [
      await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps)),
      await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps)),
    ];
    checker = new NodeChecker({
      release: deps,
      metrics,
      policy: { intervalMs: 500, timeoutMs: 1000, missesToLose: 3 },
    });
  });

  afterAll(async () => {
    await stopChecks?.();
    for (const stop of stops) await stop();
    // Every node this suite killed boots again, whatever failed above.
    for (const i of killed)
      await multiNode('start', String(i)).catch((e: Error) => console.warn(e.message));
    const runtime = new DockerRuntime();
    for (const i of indexes) {
      const target = { dockerHost: `unix://${socketOf(i)}` };
      for (const c of await runtime
        .list(target, { 'selfdevop.service': serviceId })
        .catch(() => []))
        await runtime.remove(target, c.name).catch(() => undefined);
    }
    await caddy?.stop();
    await dns?.close();
  });

  const release = (id: string) =>
    deps.store.withOrg(orgId, async (x) => (await x.releases.get(id))!);
  const node = (id: string) =>
    deps.store.withOrg(orgId, async (x) => (await x.nodes.get(id)) as NodeRecord);
  const audit = (action: string) =>
    deps.store.withOrg(orgId, async (x) => (await x.audit.list({ limit: 20 }, { action })).items);

  async function settle(id: string): Promise<Release> {
    return until(
      () => release(id),
      (r) => r.status === 'completed' || r.status === 'failed',
      60_000,
    );
  }

  it('takes a dead node out of the edge, restores the count on the survivors, and cleans up on its return', async () => {
    const { id } = await createRelease(deps, deployer, {
      serviceId,
      image: 'selfdevop-test/app:v1',
    });
    const v1 = await settle(id);
    expect(v1.status).toBe('completed');
    const before = v1.replicaSet!.replicas;
    expect(before.map((r) => r.nodeId)).toEqual([nodeIds[0], nodeIds[1]]);
    stopChecks = checker.start();
    await until(
      () => node(nodeIds[1]!),
      (n) => n.reachability === 'reachable',
      20_000,
    );

    // Requests through Caddy all along: bounded in count and time, stopped below.
    let loading = true;
    const answers: { sentAt: number; status: number; body: string }[] = [];
    const load = (async () => {
      const end = Date.now() + 120_000;
      for (let sent = 0; loading && sent < 20_000 && Date.now() < end; sent++) {
        const sentAt = Date.now();
        const r = await get(caddy.httpPort, host, '/env/HOSTNAME');
        answers.push({ sentAt, ...r });
        await sleep(10);
      }
    })();
    await until(
      async () => answers.length,
      (n) => n >= 20,
      20_000,
    );

    const lostIndex = indexes[1]!;
    const lostUpstream = before[1]!.upstream!;
    killed.add(lostIndex);
    await multiNode('kill', String(lostIndex));
    const lost = await until(
      () => node(nodeIds[1]!),
      (n) => n.reachability === 'lost',
      30_000,
    );
    expect(lost.reachability).toBe('lost');
    // The edge serves the survivor only (the change is an upstream write, no reload).
    const edgeNow = await until(
      async () => (await deps.edge.get(routeId(serviceId, 'env_000001')))?.upstreams ?? [],
      (u) => !u.includes(lostUpstream),
      10_000,
    );
    expect(edgeNow).not.toContain(lostUpstream);
    expect(metrics.gauges.get(`selfdevop_node_up{org="${orgId}",node="${nodeIds[1]}"}`)).toBe(0);

    // Restored: two healthy replicas, none on the lost node, both in the edge.
    const restored = await until(
      () => release(id),
      (r) => {
        const set = r.replicaSet!.replicas.filter((x) => x.health === 'healthy');
        return set.length === 2 && set.every((x) => x.nodeId !== nodeIds[1]);
      },
      60_000,
    );
    const after = restored.replicaSet!.replicas;
    expect(after.map((r) => [r.nodeId, r.health])).toEqual([
      [nodeIds[0], 'healthy'],
      [nodeIds[2], 'healthy'],
    ]);
    const serving = await until(
      async () => (await deps.edge.get(routeId(serviceId, 'env_000001')))?.upstreams ?? [],
      (u) => u.length === 2,
      10_000,
    );
    expect(serving).toEqual(after.map((r) => r.upstream));
    // The last requests are answered, by the two survivors only.
    const mark = answers.length;
    const markAt = Date.now();
    await until(
      async () => answers.length,
      (n) => n >= mark + 40,
      30_000,
    );
    loading = false;
    await load;
    // Sent after the restore (one sent to the dead replica before may end later, at Caddy's
    // dial timeout, as a 502: counted in `failed` below, not here).
    const tail = answers.filter((a) => a.sentAt >= markAt);
    expect(tail.filter((a) => a.status !== 200)).toEqual([]);
    const bodies = new Set(tail.map((a) => a.body));
    expect(bodies.size).toBe(2);
    const failed = answers.filter((a) => a.status !== 200).length;
    console.info(`node loss under load: ${failed} of ${answers.length} requests failed`);

    const [lostEvent] = await audit('node.lost');
    expect(lostEvent).toMatchObject({
      targetId: nodeIds[1],
      data: { releases: [{ releaseId: id, lostReplicas: [1], desired: 2, action: 'replacing' }] },
    });

    // The node boots with its data: the replaced replica's container is still there until
    // the checks see the node answer and remove it.
    await multiNode('start', String(lostIndex));
    killed.delete(lostIndex);
    const back = await until(
      () => node(nodeIds[1]!),
      (n) => n.reachability === 'reachable',
      60_000,
    );
    expect(back.reachability).toBe('reachable');
    const runtime = new DockerRuntime();
    const left = await until(
      () =>
        runtime.list(
          { dockerHost: `unix://${socketOf(lostIndex)}` },
          { 'selfdevop.service': serviceId },
        ),
      (l) => l.length === 0,
      30_000,
    );
    expect(left).toEqual([]);
    const [recovered] = await until(
      () => audit('node.recovered'),
      (l) => l.length > 0,
      10_000,
    );
    expect(recovered).toMatchObject({
      targetId: nodeIds[1],
      data: {
        removed: [{ releaseId: id, reason: 'replaced while the node was lost' }],
        rejoined: [],
      },
    });
    // Not served twice: the edge still has the two replacements only.
    expect((await deps.edge.get(routeId(serviceId, 'env_000001')))?.upstreams).toEqual(
      after.map((r) => r.upstream),
    );
  }, 240_000);
});
