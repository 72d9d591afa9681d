/**
 * The control plane bench:scale drives, in this process: the release engine over a fresh
 * PostgreSQL database (store and upstream registry, as an install runs them), the edge's
 * DNS server, a private Caddy with dynamic upstreams, and the three standalone engines of
 * ../shared/ci/multi-node.sh (nodes 1–3 only). Queue consumers run with the self-hosted
 * worker's concurrency (4). close() removes every container of the bench's own org on the
 * three engines, Caddy, the DNS server and the database.
 *
 * The app under load (`app`) is selfdevop-test/app-ka unless asked otherwise: it keeps its
 * connections open, as real apps do. busybox httpd (selfdevop-test/app) closes every one, so
 * each proxied request was a new upstream connection, a fork in the container and a DNS
 * question for the SRV target: bench:scale then measured that app, not the edge (190–262
 * req/s, under a static-upstream floor of 226–271, with Caddy alone at 935).
 */
import { randomBytes } from 'node:crypto';
import { SystemClock } from '../../adapters/clock/system.ts';
import { migrate } from '../../adapters/db/migrator.ts';
import { fromDatabaseUrl } from '../../adapters/db/postgres.ts';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { startUpstreamDns, type UpstreamDnsServer } from '../../adapters/edge/upstream-dns.ts';
import { PostgresUpstreamRegistry } from '../../adapters/edge/upstreams-postgres.ts';
import { RandomIds } from '../../adapters/ids/random.ts';
import { fromPino } from '../../adapters/logger/pino.ts';
import { HttpHealthProbe } from '../../adapters/probe/http.ts';
import { MemoryQueue } from '../../adapters/queue/memory.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { PostgresStore } from '../../adapters/store/postgres.ts';
import { MemoryKeyVault } from '../../adapters/vault/memory.ts';
import type { Principal } from '../../core/deps.ts';
import type { Release, Service } from '../../core/models.ts';
import {
  createRelease,
  handleReleaseRetire,
  handleReleaseStep,
  releaseRetireQueue,
  releaseStepsQueue,
  type ReleaseDeps,
} from '../../core/releases/engine.ts';
import { defaultHosts } from '../../core/releases/plan.ts';
import { startCaddy, type TestCaddy } from '../../test/support/caddy.ts';
import { createTestDatabase } from '../../test/support/db.ts';
// The engine the test images are built on: a node that lacks one gets it from there.
import { dockerTarget } from '../../test/support/docker.ts';
import {
  aNode,
  aProject,
  aService,
  anEnvironment,
  anOrg,
} from '../../test/core/releases/builders.ts';

export const nodeSockets = [1, 2, 3].map((i) => `/run/sdo-node${i}/docker.sock`);
export const nodeIds = ['node_000001', 'node_000002', 'node_000003'];
export const edgeDomain = 'apps.example.test';
export const environmentId = 'env_000001';
export const zone = 'upstreams.selfdevop.internal';

/** The two versions a scenario switches between, per test app (test-images/README.md). */
export const benchApps = {
  keepalive: { v1: 'selfdevop-test/app-ka:v1', v2: 'selfdevop-test/app-ka:v2' },
  busybox: { v1: 'selfdevop-test/app:v1', v2: 'selfdevop-test/app:v2' },
} as const;
export type BenchApp = keyof typeof benchApps;
export const isBenchApp = (name: string): name is BenchApp => name in benchApps;

export interface ScaleEnv {
  deps: ReleaseDeps;
  caddy: TestCaddy;
  dns: UpstreamDnsServer;
  /** The images of the app the load scenarios deploy, on every node. */
  app: { v1: string; v2: string };
  orgId: string;
  deployer: Principal;
  admin: Principal;
  /** Inserts a web service of selfdevop-test/app (no resource limits: tiny containers). */
  addService(name: string, o?: Partial<Service>): Promise<{ id: string; host: string }>;
  /** Creates a release and waits until it is completed or failed (bounded by deadlineMs). */
  deploy(serviceId: string, image: string, deadlineMs?: number): Promise<Release>;
  /**
   * Caddy's error lines since the last call, counted by message (upstream ports folded), so
   * a failed request can be traced to what the edge saw (a refused dial, a reset).
   */
  edgeErrors(): Record<string, number>;
  /** The serving (newest completed) release of a service. */
  serving(serviceId: string): Promise<Release | null>;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startScaleEnv(o: { app: BenchApp }): Promise<ScaleEnv> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const c of cleanups.splice(0).reverse())
      await c().catch((e: unknown) => process.stderr.write(`bench: clean-up: ${String(e)}\n`));
  };
  try {
    const db = await createTestDatabase('bench_scale');
    cleanups.push(() => db.drop());
    await migrate(db.url);
    const pool = fromDatabaseUrl(db.url, { appRole: 'selfdevop_app', max: 10 });
    cleanups.push(() => pool.close());
    const store = new PostgresStore(pool);
    const registry = new PostgresUpstreamRegistry(pool);
    const caddy = await startCaddy();
    cleanups.push(() => caddy.stop());
    // The shipped answer cache (200 ms), so the DNS figures are an install's.
    const dns = await startUpstreamDns({ registry, zone, host: '127.0.0.1', port: 0 });
    cleanups.push(() => dns.close());
    const orgId = `org_bench${randomBytes(4).toString('hex')}`;
    const runtime = new DockerRuntime();
    cleanups.push(() => removeOrgContainers(runtime, orgId));
    const app = benchApps[o.app];
    await placeImages(runtime, [app.v1, app.v2]);
    const deps: ReleaseDeps = {
      store,
      runtime,
      edge: new CaddyEdgeRouter({
        adminUrl: caddy.adminUrl,
        server: caddy.serverName,
        dynamicUpstreams: { registry, zone, resolver: dns.address, refreshMs: 100 },
      }),
      queue: new MemoryQueue({ retryDelaySeconds: 1, pollIntervalMs: 10 }),
      vault: new MemoryKeyVault(),
      probe: new HttpHealthProbe(),
      clock: new SystemClock(),
      ids: new RandomIds(),
      // An install's logger, writing nowhere: a MemoryLogger keeps every line, which the
      // control-plane memory figure would count though no install holds them.
      logger: fromPino({ destination: { write: () => undefined } }),
      config: { edgeDomain, migrationTimeoutMs: 20_000, maxStepAttempts: 3 },
    };
    const environment = anEnvironment({ orgId, projectId: 'prj_000001' });
    await store.withOrg(orgId, async (r) => {
      await r.orgs.insert(anOrg({ id: orgId }));
      await r.projects.insert(aProject({ orgId }));
      await r.environments.insert(environment);
      for (const i of [1, 2, 3])
        await r.nodes.insert(
          aNode({
            id: nodeIds[i - 1],
            orgId,
            name: `sdo-node${i}`,
            dockerHost: `unix://${nodeSockets[i - 1]}`,
            address: `10.213.0.1${i}`,
          }),
        );
    });
    // The self-hosted worker's concurrency; the org's share of it (2) applies as in production.
    const stops = [
      await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps), { concurrency: 4 }),
      await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps), { concurrency: 4 }),
    ];
    cleanups.push(async () => {
      for (const stop of stops) await stop();
    });
    const deployer: Principal = {
      actorType: 'user',
      actorId: 'usr_bench',
      userId: 'usr_bench',
      orgId,
      role: 'deployer',
    };
    let n = 0;
    const env: ScaleEnv = {
      deps,
      caddy,
      dns,
      app,
      orgId,
      deployer,
      admin: { ...deployer, role: 'admin' },
      async addService(name, o = {}) {
        const service = aService({
          id: `svc_${(n++).toString().padStart(4, '0')}${randomBytes(4).toString('hex')}`,
          orgId,
          name,
          image: 'selfdevop-test/app:v1',
          env: {},
          memoryMb: null,
          cpus: null,
          health: { intervalMs: 100, timeoutMs: 1000, successes: 2, deadlineMs: 20_000 },
          warmSeconds: 0,
          drainSeconds: 2,
          ...o,
        });
        await store.withOrg(orgId, (r) => r.services.insert(service));
        const host = defaultHosts({ service, environment, edgeDomain })[0]!;
        return { id: service.id, host };
      },
      async deploy(serviceId, image, deadlineMs = 120_000) {
        const { id } = await createRelease(deps, deployer, { serviceId, image });
        const end = Date.now() + deadlineMs;
        for (;;) {
          const r = await store.withOrg(orgId, (x) => x.releases.get(id));
          if (r && (r.status === 'completed' || r.status === 'failed')) return r;
          if (Date.now() > end)
            throw new Error(`release ${id} still ${r?.status} after ${deadlineMs} ms`);
          await sleep(50);
        }
      },
      edgeErrors() {
        const out: Record<string, number> = {};
        for (const line of caddy.takeErrors()) {
          try {
            const l = JSON.parse(line) as { msg?: string; error?: string };
            const key = `${l.msg ?? ''}: ${l.error ?? ''}`.replace(/:\d{2,5}\b/g, ':<port>');
            out[key] = (out[key] ?? 0) + 1;
          } catch {
            // Not a JSON log line: not one of Caddy's.
          }
        }
        return out;
      },
      serving: (serviceId) =>
        store.withOrg(orgId, (x) => x.releases.latest(serviceId, environmentId, ['completed'])),
      close,
    };
    return env;
  } catch (e) {
    await close();
    throw e;
  }
}

/**
 * Copies each image a node (1–3 unless `sockets` says) lacks from the host engine (multi-node.sh loads only the
 * MN_IMAGES it was started with, once per state directory), as the release engine moves
 * built images between nodes; the host engine must have them (scripts/build-test-images.sh).
 */
export async function placeImages(
  runtime: DockerRuntime,
  images: string[],
  sockets: readonly string[] = nodeSockets,
): Promise<void> {
  for (const image of images) {
    if (!(await runtime.localImage(dockerTarget, image)))
      throw new Error(`${image} is not on the host engine: run scripts/build-test-images.sh`);
    await Promise.all(
      sockets.map(async (s) => {
        const node = { dockerHost: `unix://${s}` };
        if (await runtime.localImage(node, image)) return;
        process.stderr.write(`bench: copying ${image} to ${s}\n`);
        await runtime.moveImage(dockerTarget, node, image, { timeoutMs: 120_000 });
      }),
    );
  }
}

/** Removes every container of `orgId` on nodes 1–3, a few at a time per node. */
export async function removeOrgContainers(runtime: DockerRuntime, orgId: string): Promise<number> {
  let removed = 0;
  await Promise.all(
    nodeSockets.map(async (s) => {
      const target = { dockerHost: `unix://${s}` };
      const all = await runtime.list(target, { 'selfdevop.org': orgId }).catch(() => []);
      let next = 0;
      const worker = async () => {
        while (next < all.length) {
          const c = all[next++]!;
          await runtime.remove(target, c.name).then(
            () => removed++,
            () => undefined,
          );
        }
      };
      await Promise.all(Array.from({ length: 4 }, worker));
    }),
  );
  return removed;
}
