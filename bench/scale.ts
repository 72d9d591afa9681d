/**
 * npm run bench:scale [-- --switches 20 --requests-per-switch 400]
 *
 * Replicas on three real Docker Engines (../shared/ci/multi-node.sh up 3, with
 * selfdevop-test/app:v1 and :v2 in MN_IMAGES) behind a real Caddy, driven by the release
 * engine in this process. Traffic goes only to loopback (Caddy) and the engines' own
 * namespaces. Measures:
 *  - replicaSwitch: 3 replicas on 3 nodes, N blue/green deploys (default 5; the issue's run
 *    is 20) under a bounded request loop: non-2xx, connection errors, spread over replicas.
 *  - scaleUp: 1 → 10 replicas (maxSurge 3) under the same loop: failed requests, time.
 * Not yet: ≥ 1,000 req/s keep-alive plus 50 new connections/s (this loop is one request
 * at a time, new connection each), drain, node loss, many services.
 * Last output line: one JSON object with a `goals` map of {goal, got, met}.
 */
import { existsSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { SystemClock } from '../adapters/clock/system.ts';
import { CaddyEdgeRouter } from '../adapters/edge/caddy.ts';
import { startUpstreamDns } from '../adapters/edge/upstream-dns.ts';
import { MemoryUpstreamRegistry } from '../adapters/edge/upstreams-memory.ts';
import { SequenceIds } from '../adapters/ids/sequence.ts';
import { MemoryLogger } from '../adapters/logger/memory.ts';
import { HttpHealthProbe } from '../adapters/probe/http.ts';
import { MemoryQueue } from '../adapters/queue/memory.ts';
import { DockerRuntime } from '../adapters/runtime/docker.ts';
import { MemoryStore } from '../adapters/store/memory.ts';
import { MemoryKeyVault } from '../adapters/vault/memory.ts';
import {
  createRelease,
  handleReleaseRetire,
  handleReleaseStep,
  releaseRetireQueue,
  releaseStepsQueue,
  type ReleaseDeps,
} from '../core/releases/engine.ts';
import { defaultHosts } from '../core/releases/plan.ts';
import { scaleService } from '../core/services/scale.ts';
import { startCaddy } from '../test/support/caddy.ts';
import { nodeLossScenario } from './scale/node-loss.ts';
import { aNode, aProject, aService, anEnvironment, anOrg } from '../test/core/releases/builders.ts';
import { deployer, orgId } from '../test/core/releases/harness.ts';

const { values } = parseArgs({
  options: {
    switches: { type: 'string', default: '5' },
    'requests-per-switch': { type: 'string', default: '150' },
  },
});
const switches = Number(values.switches);
const perSwitch = Number(values['requests-per-switch']);
const sockets = [1, 2, 3].map((i) => `/run/sdo-node${i}/docker.sock`);
if (!sockets.every((s) => existsSync(s))) {
  console.error(
    'bench:scale needs ../shared/ci/multi-node.sh up 3 (MN_IMAGES with the app images)',
  );
  process.exit(2);
}

function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get(
      {
        host: '127.0.0.1',
        port,
        path: '/env/HOSTNAME',
        headers: { host },
        agent: false,
        timeout: 5000,
      },
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

const serviceId = `svc_bench${Date.now().toString(36)}`;
const caddy = await startCaddy();
// Dynamic upstreams, as every install runs them: switches and scale steps never reload Caddy.
const registry = new MemoryUpstreamRegistry();
const zone = 'sdo.internal';
const dns = await startUpstreamDns({ registry, zone, host: '127.0.0.1', port: 0, cacheMs: 50 });
const deps: ReleaseDeps = {
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
  config: { edgeDomain: 'apps.example.test', migrationTimeoutMs: 20_000, maxStepAttempts: 3 },
};
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
  for (const i of [1, 2, 3])
    await r.nodes.insert(
      aNode({
        id: `node_00000${i}`,
        name: `sdo-node${i}`,
        dockerHost: `unix://${sockets[i - 1]}`,
        address: `10.213.0.1${i}`,
      }),
    );
});
const stops = [
  await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps)),
  await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps)),
];

const release = (id: string) => deps.store.withOrg(orgId, async (x) => (await x.releases.get(id))!);
async function deploy(image: string) {
  const { id } = await createRelease(deps, deployer, { serviceId, image });
  for (let i = 0; i < 1200; i++) {
    const r = await release(id);
    if (r.status === 'completed' || r.status === 'failed') return r;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`release ${id} did not settle`);
}

interface Load {
  ok: number;
  non2xx: number;
  connectionErrors: number;
  byReplica: Map<string, number>;
}
/** One request at a time until `until` resolves, then `tail` more; bounded by `max`. */
async function underLoad(work: Promise<unknown>, tail: number, max: number): Promise<Load> {
  const load: Load = { ok: 0, non2xx: 0, connectionErrors: 0, byReplica: new Map() };
  let done = false;
  void work.finally(() => (done = true));
  let after = 0;
  for (let sent = 0; sent < max && after < tail; sent++) {
    const r = await get(caddy.httpPort, host);
    if (r.status === 200) {
      load.ok++;
      load.byReplica.set(r.body, (load.byReplica.get(r.body) ?? 0) + 1);
    } else if (r.status === -1) load.connectionErrors++;
    else load.non2xx++;
    if (done) after++;
  }
  await work;
  return load;
}

const totals = { non2xx: 0, connectionErrors: 0, ok: 0 };
let worstSpreadPct = 0;
try {
  const first = await deploy('selfdevop-test/app:v1');
  if (first.status !== 'completed') throw new Error(`first deploy ${first.status}: ${first.error}`);
  for (let i = 0; i < switches; i++) {
    const image = i % 2 === 0 ? 'selfdevop-test/app:v2' : 'selfdevop-test/app:v1';
    const load = await underLoad(deploy(image), perSwitch, 20_000);
    totals.non2xx += load.non2xx;
    totals.connectionErrors += load.connectionErrors;
    totals.ok += load.ok;
    // Spread over the serving set after the switch: a steady window of round-robin requests.
    const steady = await underLoad(Promise.resolve(), 300, 300);
    const counts = [...steady.byReplica.values()];
    const even = steady.ok / 3;
    const pct =
      counts.length < 3 ? 100 : Math.max(...counts.map((c) => (Math.abs(c - even) / even) * 100));
    worstSpreadPct = Math.max(worstSpreadPct, pct);
  }

  // scaleUp: 1 → 10.
  const one = await scaleService(deps, deployer, serviceId, { replicas: 1 }, null);
  const live = async () =>
    (await deps.store.withOrg(orgId, (x) => x.releases.get(one.releaseId!)))!.replicaSet!.replicas
      .length;
  for (let i = 0; i < 400 && (await live()) !== 1; i++) await new Promise((r) => setTimeout(r, 50));
  const t0 = performance.now();
  await scaleService(deps, deployer, serviceId, { replicas: 10 }, null);
  const waitTen = (async () => {
    for (let i = 0; i < 1200 && (await live()) !== 10; i++)
      await new Promise((r) => setTimeout(r, 50));
  })();
  const scaleLoad = await underLoad(waitTen, 50, 20_000);
  const scaleUpMs = Math.round(performance.now() - t0);
  const scaleUpFailed = scaleLoad.non2xx + scaleLoad.connectionErrors;
  const result = {
    bench: 'scale',
    nodes: 3,
    replicaSwitch: {
      switches,
      requests: totals.ok + totals.non2xx + totals.connectionErrors,
      ...totals,
    },
    scaleUp: {
      from: 1,
      to: 10,
      maxSurge: 3,
      ms: scaleUpMs,
      requests: scaleLoad.ok,
      failed: scaleUpFailed,
    },
    goals: {
      replicaSwitchNon2xx: { goal: '0', got: totals.non2xx, met: totals.non2xx === 0 },
      replicaSwitchConnectionErrors: {
        goal: '0',
        got: totals.connectionErrors,
        met: totals.connectionErrors === 0,
      },
      replicaSpreadPct: {
        goal: '<= 15',
        got: Math.round(worstSpreadPct * 10) / 10,
        met: worstSpreadPct <= 15,
      },
      scaleUpFailedRequests: { goal: '0', got: scaleUpFailed, met: scaleUpFailed === 0 },
    },
  };
  const nodeLoss = await nodeLossScenario(); // nodes 4–6, its own Caddy (bench/scale/node-loss.ts)
  Object.assign(result, {
    nodeLoss: nodeLoss.detail,
    goals: { ...result.goals, ...nodeLoss.goals },
  });
  console.log(JSON.stringify(result));
} finally {
  for (const stop of stops) await stop();
  const runtime = new DockerRuntime();
  for (const s of sockets) {
    const target = { dockerHost: `unix://${s}` };
    for (const c of await runtime.list(target, { 'selfdevop.service': serviceId }).catch(() => []))
      await runtime.remove(target, c.name).catch(() => undefined);
  }
  await caddy.stop();
  await dns.close();
}
