/**
 * bench:scale's `nodeLoss` scenario (issue 14, item 3); alone: `node bench/scale/node-loss.ts`.
 *
 * Three replicas on three real Docker Engines (multi-node.sh nodes NODE_LOSS_NODES, default
 * 4,5,6: the node-loss range, the only ones this may kill) behind a real Caddy with dynamic
 * upstreams, the node checks running with their default policy (what installs run), and
 * requests through Caddy from 8 loops (a new connection each, bounded in count and time).
 * One node loses power (`multi-node.sh kill`: engine, containers and address gone), then:
 *  - survivorsOnlyMs: from the kill until the edge's upstreams no longer hold the lost
 *    replica, or the send time of the last request that still went there or failed, if
 *    later: from then on every request goes to survivors [goal ≤ 3000];
 *  - restoredMs: from the kill until the release has its three healthy replicas again, none
 *    on the lost node, and the edge serves them [goal ≤ 30000];
 *  - failed requests over the whole run (reported), the time to `lost`, and after the node
 *    boots again, the time until its stale container is removed.
 * The node is booted again in any case. Traffic goes to loopback (Caddy) and to the nodes'
 * namespaces only.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { NodeChecker } from '../../core/nodes/checks.ts';
import {
  createRelease,
  handleReleaseRetire,
  handleReleaseStep,
  releaseRetireQueue,
  releaseStepsQueue,
} from '../../core/releases/engine.ts';
import { defaultHosts, routeId } from '../../core/releases/plan.ts';
import { startCaddy } from '../../test/support/caddy.ts';
import {
  aNode,
  aProject,
  aService,
  anEnvironment,
  anOrg,
} from '../../test/core/releases/builders.ts';
import { deployer, orgId } from '../../test/core/releases/harness.ts';
import type { Goal } from './goal.ts';
import { releaseDepsBehindCaddy } from '../../test/support/edge-release.ts';

export interface NodeLossFigures {
  detail: Record<string, unknown>;
  goals: { nodeLossSurvivorsOnlyMs: Goal; nodeLossRestoredMs: Goal };
}

const run = promisify(execFile);
const script = fileURLToPath(new URL('../../../shared/ci/multi-node.sh', import.meta.url));
const socketOf = (i: number) => `/run/sdo-node${i}/docker.sock`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function get(
  port: number,
  host: string,
  path: string,
  address = '127.0.0.1',
): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get(
      { host: address, port, path, headers: { host }, agent: false, timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ status: -1, body: e.message }));
  });
}

async function until<T>(
  probe: () => Promise<T>,
  ok: (v: T) => boolean,
  ms: number,
): Promise<T | null> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > end) return null;
    await sleep(50);
  }
}

/** Runs the scenario on `indexes` (three multi-node.sh nodes); the lost one is the second. */
export async function nodeLossScenario(
  indexes: number[] = (process.env.NODE_LOSS_NODES ?? '4,5,6').split(',').map(Number),
): Promise<NodeLossFigures> {
  if (indexes.length !== 3 || !indexes.every((i) => existsSync(socketOf(i))))
    throw new Error(
      `nodeLoss needs multi-node.sh nodes ${indexes.join(',')} up (with the app images)`,
    );
  const serviceId = `svc_nl${Date.now().toString(36)}`;
  const nodeIds = ['node_00000a', 'node_00000b', 'node_00000c'];
  const caddy = await startCaddy();
  const { deps, dns } = await releaseDepsBehindCaddy(caddy, {
    runtime: new DockerRuntime({ requestTimeoutMs: 20_000 }),
  });
  const service = aService({
    id: serviceId,
    image: 'selfdevop-test/app:v1',
    replicas: 3,
    maxSurge: 3,
    health: { intervalMs: 100, timeoutMs: 1000, successes: 2, deadlineMs: 15_000 },
    warmSeconds: 0,
    drainSeconds: 1,
  });
  const host = defaultHosts({
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
  const stops = [
    await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps)),
    await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps)),
  ];
  const checker = new NodeChecker({ release: deps });
  let stopChecks: (() => Promise<void>) | null = null;
  const lostIndex = indexes[1]!;
  let killed = false;
  const release = (id: string) =>
    deps.store.withOrg(orgId, async (x) => (await x.releases.get(id))!);
  const node = (id: string) => deps.store.withOrg(orgId, async (x) => (await x.nodes.get(id))!);
  const edgeSet = async () =>
    (await deps.edge.get(routeId(serviceId, 'env_000001')))?.upstreams ?? [];
  try {
    const { id } = await createRelease(deps, deployer, {
      serviceId,
      image: 'selfdevop-test/app:v1',
    });
    const v1 = await until(
      () => release(id),
      (r) => r.status === 'completed' || r.status === 'failed',
      90_000,
    );
    if (v1?.status !== 'completed')
      throw new Error(`first deploy: ${v1?.status} ${v1?.error ?? ''}`);
    const lostUpstream = v1.replicaSet!.replicas.find((r) => r.nodeId === nodeIds[1])!.upstream!;
    const [ip, port] = lostUpstream.split(':');
    const lostName = (await get(Number(port), host, '/env/HOSTNAME', ip)).body;
    stopChecks = checker.start();
    await until(
      () => node(nodeIds[1]!),
      (n) => n.reachability === 'reachable',
      20_000,
    );

    // Load: 8 loops, a new connection per request, stopped below (at most 60 s, 40,000 requests).
    const samples: { sentAt: number; tookMs: number; status: number; body: string }[] = [];
    let loading = true;
    const loadEnd = Date.now() + 60_000;
    const loops = Array.from({ length: 8 }, async () => {
      while (loading && samples.length < 40_000 && Date.now() < loadEnd) {
        const sentAt = performance.now();
        const r = await get(caddy.httpPort, host, '/env/HOSTNAME');
        samples.push({ sentAt, tookMs: performance.now() - sentAt, ...r });
      }
    });
    await sleep(2_000);

    const t0 = performance.now();
    killed = true;
    await run('bash', [script, 'kill', String(lostIndex)], { timeout: 60_000 });
    const killCommandMs = performance.now() - t0;
    const [lostAt, edgeAt] = await Promise.all([
      until(
        () => node(nodeIds[1]!),
        (n) => n.reachability === 'lost',
        30_000,
      ).then((n) => (n ? performance.now() - t0 : null)),
      until(edgeSet, (u) => !u.includes(lostUpstream), 30_000).then((u) =>
        u ? performance.now() - t0 : null,
      ),
    ]);
    const restoredAt = await until(
      async () => ({ r: await release(id), edge: await edgeSet() }),
      ({ r, edge }) => {
        const healthy = r.replicaSet!.replicas.filter((x) => x.health === 'healthy');
        return (
          healthy.length === 3 &&
          healthy.every((x) => x.nodeId !== nodeIds[1]) &&
          edge.length === 3 &&
          healthy.every((x) => edge.includes(x.upstream!))
        );
      },
      60_000,
    ).then((v) => (v ? performance.now() - t0 : null));
    await sleep(2_000);
    loading = false;
    await Promise.all(loops);

    const bad = samples.filter((s) => s.sentAt >= t0 && (s.status !== 200 || s.body === lostName));
    const lastBad = bad.length ? Math.max(...bad.map((s) => s.sentAt - t0)) : null;
    // A loop whose request went to the dead replica waits for Caddy's dial timeout and sends
    // nothing meanwhile, so the last bad send alone would flatter: until the edge dropped
    // the replica, a request sent would have gone there too.
    const survivorsOnlyMs = edgeAt === null ? null : Math.max(lastBad ?? 0, edgeAt);
    const lastBadAnswered = bad.length
      ? Math.max(...bad.map((s) => s.sentAt - t0 + s.tookMs))
      : null;
    const failed = samples.filter((s) => s.status !== 200);

    // The node boots with its data; the checks find it and remove the replaced replica.
    const t1 = performance.now();
    await run('bash', [script, 'start', String(lostIndex)], { timeout: 120_000 });
    killed = false;
    const bootMs = performance.now() - t1;
    const runtime = new DockerRuntime();
    const cleanedAt = await until(
      () =>
        runtime
          .list({ dockerHost: `unix://${socketOf(lostIndex)}` }, { 'selfdevop.service': serviceId })
          .catch(() => [{}]),
      (l) => l.length === 0,
      60_000,
    ).then((v) => (v ? performance.now() - t1 : null));

    const round = (n: number | null) => (n === null ? null : Math.round(n));
    return {
      detail: {
        nodes: indexes,
        lostNode: lostIndex,
        replicas: 3,
        policy: checker.policy,
        requests: samples.length,
        failedRequests: failed.length,
        failedByStatus: Object.fromEntries(
          [...new Set(failed.map((f) => f.status))].map((s) => [
            s,
            failed.filter((f) => f.status === s).length,
          ]),
        ),
        requestsToLostReplicaAfterKill: bad.filter((s) => s.body === lostName).length,
        killCommandMs: round(killCommandMs),
        lostMs: round(lostAt),
        edgeDroppedMs: round(edgeAt),
        lastBadRequestSentMs: round(lastBad),
        // Requests already sent to the dead replica end at Caddy's dial timeout (a 502).
        lastBadRequestAnsweredMs: round(lastBadAnswered),
        survivorsOnlyMs: round(survivorsOnlyMs),
        restoredMs: round(restoredAt),
        nodeBootMs: round(bootMs),
        staleRemovedAfterBootMs: round(cleanedAt),
      },
      goals: {
        nodeLossSurvivorsOnlyMs: {
          goal: '<= 3000',
          got: round(survivorsOnlyMs),
          met: survivorsOnlyMs !== null && survivorsOnlyMs <= 3000,
        },
        nodeLossRestoredMs: {
          goal: '<= 30000',
          got: round(restoredAt),
          met: restoredAt !== null && restoredAt <= 30_000,
        },
      },
    };
  } finally {
    await stopChecks?.();
    for (const stop of stops) await stop();
    if (killed)
      await run('bash', [script, 'start', String(lostIndex)], { timeout: 120_000 }).catch(
        () => undefined,
      );
    const runtime = new DockerRuntime();
    for (const i of indexes) {
      const target = { dockerHost: `unix://${socketOf(i)}` };
      for (const c of await runtime
        .list(target, { 'selfdevop.service': serviceId })
        .catch(() => []))
        await runtime.remove(target, c.name).catch(() => undefined);
    }
    await caddy.stop();
    await dns.close();
  }
}

// Run alone (`node bench/scale/node-loss.ts`); never from bench/scale.ts's bundle, whose
// import.meta.url is the bundle's own.
if (process.argv[1]?.endsWith('node-loss.ts')) {
  const { detail, goals } = await nodeLossScenario();
  console.log(JSON.stringify({ bench: 'scale', nodeLoss: detail, goals }));
}
