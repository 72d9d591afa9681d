/**
 * What bench:swarm drives, in this process: the release engine (ports in memory, as the
 * Swarm suite's) with the Swarm runtime behind a real Caddy reading dynamic upstreams from
 * selfdevop's own DNS server, on the three-manager Swarm of scripts/swarm-up.sh 7 8 9. The
 * queue retries a step as installs do (2 s, doubling; 5 attempts), so a leader election
 * shows as a retried step, not as a failure the bench made. `via` is the manager selfdevop
 * talks to (a scenario that kills the leader picks another one).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import type { UpstreamDnsServer } from '../../adapters/edge/upstream-dns.ts';
import { MemoryQueue } from '../../adapters/queue/memory.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { SwarmRuntime, withSwarm } from '../../adapters/runtime/swarm.ts';
import type { Release, Service } from '../../core/models.ts';
import type { DockerTarget } from '../../core/ports.ts';
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
import {
  aNode,
  aProject,
  aService,
  anEnvironment,
  anOrg,
} from '../../test/core/releases/builders.ts';
import { deployer, orgId } from '../../test/core/releases/harness.ts';
import { releaseDepsBehindCaddy } from '../../test/support/edge-release.ts';
import { sleep } from '../scale/goal.ts';
import { benchApps, placeImages, type BenchApp } from '../scale/env.ts';

export const members = [7, 8, 9];
export const socketOf = (i: number): string => `/run/sdo-node${i}/docker.sock`;
export const addressOf = (i: number): string => `10.213.0.${10 + i}`;
const script = fileURLToPath(new URL('../../../shared/ci/multi-node.sh', import.meta.url));
const run = promisify(execFile);
/** multi-node.sh on a Swarm member (kill, start): bounded. */
export const multiNode = (...args: string[]) =>
  run('bash', [script, ...args], { timeout: 180_000 });

interface MemberNode {
  ID: string;
  Description?: { Hostname?: string };
  Spec?: { Availability?: string };
  Status?: { State?: string; Addr?: string };
  ManagerStatus?: { Leader?: boolean };
}

/** The members as manager `via` sees them: hostname → state, leader. */
export async function memberView(via: number): Promise<
  {
    id: string;
    index: number;
    state: string;
    leader: boolean;
  }[]
> {
  const nodes = (await new Docker({ socketPath: socketOf(via) }).listNodes()) as MemberNode[];
  return nodes.map((n) => ({
    id: n.ID,
    index: Number((n.Description?.Hostname ?? '').replace('sdo-node', '')),
    state: n.Status?.State ?? 'unknown',
    leader: n.ManagerStatus?.Leader === true,
  }));
}

/**
 * The Swarm is whole: three members ready, and each member's engine is in one cluster
 * (the same cluster id). Bounded; returns why not, or null.
 */
export async function swarmHealthy(deadlineMs = 120_000): Promise<string | null> {
  const end = Date.now() + deadlineMs;
  let why: string;
  for (;;) {
    try {
      const ids = await Promise.all(
        members.map(async (i) => {
          const info = (await new Docker({ socketPath: socketOf(i) }).info()) as {
            Swarm?: { Cluster?: { ID?: string }; LocalNodeState?: string };
          };
          return info.Swarm?.Cluster?.ID ?? `node${i}:${info.Swarm?.LocalNodeState}`;
        }),
      );
      const view = await memberView(members[0]!);
      const ready = view.filter((m) => m.state === 'ready').length;
      if (new Set(ids).size === 1 && ready === 3) return null;
      why = `clusters ${JSON.stringify(ids)}, ${ready} of 3 ready`;
    } catch (e) {
      why = (e as Error).message;
    }
    if (Date.now() > end) return why;
    await sleep(1000);
  }
}

export interface SwarmEnv {
  deps: ReleaseDeps;
  caddy: TestCaddy;
  dns: UpstreamDnsServer;
  target: DockerTarget;
  swarm: SwarmRuntime;
  /** The two versions of the app the scenarios deploy (bench/scale/env.ts benchApps). */
  app: { v1: string; v2: string };
  /** A web service of the bench's app with 3 replicas on the Swarm, and its edge host. */
  addService(name: string, o?: Partial<Service>): Promise<{ id: string; host: string }>;
  /** createRelease, then its status until completed or failed (bounded). */
  deploy(serviceId: string, image: string, deadlineMs?: number): Promise<Release>;
  release(id: string): Promise<Release>;
  close(): Promise<void>;
}

export async function startSwarmEnv(
  via: number,
  appName: BenchApp = 'keepalive',
): Promise<SwarmEnv> {
  const app = benchApps[appName];
  // Every member may run a task: each needs both versions (multi-node.sh loads only the
  // MN_IMAGES it started with).
  await placeImages(new DockerRuntime(), [app.v1, app.v2], members.map(socketOf));
  const caddy = await startCaddy();
  const swarm = new SwarmRuntime();
  const { deps, dns } = await releaseDepsBehindCaddy(caddy, {
    runtime: withSwarm(new DockerRuntime(), swarm),
    migrationTimeoutMs: 60_000,
  });
  // An install's retries (pg-boss: 2 s doubling; the engine's 5 attempts).
  deps.queue = new MemoryQueue({ retryDelaySeconds: 2, pollIntervalMs: 10 });
  deps.config = { ...deps.config, maxStepAttempts: 5 };
  const target: DockerTarget = { dockerHost: `unix://${socketOf(via)}`, swarm: true };
  await deps.store.withOrg(orgId, async (r) => {
    await r.orgs.insert(anOrg());
    await r.projects.insert(aProject());
    await r.environments.insert(anEnvironment());
    await r.nodes.insert(
      aNode({
        id: 'node_swarm1',
        name: 'swarm-7-9',
        kind: 'swarm',
        dockerHost: target.dockerHost,
        address: addressOf(via),
      }),
    );
  });
  const stops = [
    await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps), { concurrency: 4 }),
    await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps), { concurrency: 4 }),
  ];
  const serviceIds: string[] = [];
  const release = (id: string) =>
    deps.store.withOrg(orgId, async (x) => (await x.releases.get(id))!);
  return {
    deps,
    caddy,
    dns,
    target,
    swarm,
    app,
    async addService(name, o = {}) {
      const service = aService({
        id: `svc_sw${randomBytes(4).toString('hex')}`,
        name,
        image: app.v1,
        env: {},
        memoryMb: null,
        cpus: null,
        replicas: 3,
        maxSurge: 3,
        health: { intervalMs: 100, timeoutMs: 1000, successes: 2, deadlineMs: 30_000 },
        warmSeconds: 5,
        drainSeconds: 2,
        ...o,
      });
      serviceIds.push(service.id);
      await deps.store.withOrg(orgId, (r) => r.services.insert(service));
      const host = defaultHosts({
        service,
        environment: anEnvironment(),
        edgeDomain: 'apps.example.test',
      })[0]!;
      return { id: service.id, host };
    },
    async deploy(serviceId, image, deadlineMs = 240_000) {
      const { id } = await createRelease(deps, deployer, { serviceId, image });
      const end = Date.now() + deadlineMs;
      for (;;) {
        const r = await release(id);
        if (r.status === 'completed' || r.status === 'failed') return r;
        if (Date.now() > end)
          throw new Error(`release ${id} still ${r.status} after ${deadlineMs} ms`);
        // Read often: the deploy's time is the figure, and the tasks' own is read every 10 ms.
        await sleep(10);
      }
    },
    release,
    async close() {
      for (const stop of stops) await stop().catch(() => undefined);
      // Every service of the bench's services goes, through any manager that answers.
      for (const i of members) {
        const t = { dockerHost: `unix://${socketOf(i)}`, swarm: true };
        try {
          for (const id of serviceIds)
            for (const s of await swarm.list(t, { 'selfdevop.service': id }))
              await swarm.remove(t, s.name).catch(() => undefined);
          break;
        } catch {
          // That manager does not answer: the next one.
        }
      }
      await caddy.stop();
      await dns.close();
    },
  };
}
