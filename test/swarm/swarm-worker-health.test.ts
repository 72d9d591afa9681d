/**
 * A worker's health command on a real three-manager Swarm (scripts/swarm-up.sh 7 8 9): it
 * is the Swarm task's health check, since selfdevop cannot exec into a task on a member's
 * engine. A worker whose command passes deploys (Swarm ran the task only once the check
 * passed; the service's spec carries the check); one whose command keeps failing fails its
 * release with Swarm's reason, and the previous release's worker keeps running. The command
 * reads a variable of the service's environment, which on a Swarm is sealed in a secret:
 * the check sees what the app sees. Bounded loops, no timing asserts.
 */
import { randomBytes } from 'node:crypto';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SystemClock } from '../../adapters/clock/system.ts';
import { MemoryEdgeRouter } from '../../adapters/edge/memory.ts';
import { SequenceIds } from '../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { MemoryHealthProbe } from '../../adapters/probe/memory.ts';
import { MemoryQueue } from '../../adapters/queue/memory.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { SwarmRuntime, withSwarm } from '../../adapters/runtime/swarm.ts';
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
import { aNode, aProject, aService, anEnvironment, anOrg } from '../core/releases/builders.ts';
import { deployer, orgId } from '../core/releases/harness.ts';
import {
  allMembersReady,
  cluster,
  managerHost,
  managerSocket,
  swarmReady,
} from '../support/swarm.ts';

const ready = await swarmReady('the Swarm worker health suite');

interface ServiceOnSwarm {
  ID: string;
  Spec: {
    Name: string;
    TaskTemplate: {
      ContainerSpec: {
        Healthcheck?: {
          Test: string[];
          Interval: number;
          Timeout: number;
          Retries: number;
          StartPeriod: number;
        };
      };
    };
  };
}

interface TaskOnSwarm {
  ServiceID: string;
  DesiredState?: string;
  Status?: { State?: string; Err?: string };
}

describe.skipIf(!ready)(
  "a worker's health command as the Swarm task's health check",
  // Generous: a shared two-core machine; these wait on a real cluster, never on a timing.
  { timeout: 180_000 },
  () => {
    const serviceId = `svc_${randomBytes(4).toString('hex')}`;
    const docker = new Docker({ socketPath: managerSocket });
    let deps: ReleaseDeps;
    let stops: (() => Promise<void>)[] = [];
    const passing = 'test "$WORKER_QUEUE" = emails';
    const failing = 'test "$WORKER_QUEUE" = nowhere';

    beforeAll(async () => {
      await allMembersReady();
      deps = {
        store: new MemoryStore(),
        runtime: withSwarm(new DockerRuntime(), new SwarmRuntime()),
        // A worker has no route and no HTTP probe: neither port is used.
        edge: new MemoryEdgeRouter(),
        queue: new MemoryQueue({ retryDelaySeconds: 0, pollIntervalMs: 5 }),
        vault: new MemoryKeyVault(),
        probe: new MemoryHealthProbe(),
        clock: new SystemClock(),
        ids: new SequenceIds(),
        logger: new MemoryLogger(),
        config: { edgeDomain: 'apps.example.test', migrationTimeoutMs: 60_000, maxStepAttempts: 3 },
      };
      await deps.store.withOrg(orgId, async (r) => {
        await r.orgs.insert(anOrg());
        await r.projects.insert(aProject());
        await r.environments.insert(anEnvironment());
        await r.services.insert(
          aService({
            id: serviceId,
            kind: 'worker',
            containerPort: null,
            image: 'selfdevop-test/app:v1',
            env: { WORKER_QUEUE: 'emails' },
            health: { intervalMs: 200, timeoutMs: 1000, successes: 2, deadlineMs: 30_000 },
            workerHealth: { stableSeconds: 2, command: passing },
            warmSeconds: 0,
            drainSeconds: 1,
          }),
        );
        await r.nodes.insert(
          aNode({
            id: 'node_swarm1',
            name: 'swarm-7-9',
            kind: 'swarm',
            dockerHost: managerHost,
            address: '10.213.0.17',
          }),
        );
      });
      stops = [
        await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps)),
        await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps)),
      ];
    }, 180_000);

    afterAll(async () => {
      for (const stop of stops) await stop();
      const swarm = new SwarmRuntime();
      for (const s of await swarm.list(cluster, { 'selfdevop.service': serviceId }).catch(() => []))
        await swarm.remove(cluster, s.name).catch(() => undefined);
    });

    const release = (id: string) =>
      deps.store.withOrg(orgId, async (x) => (await x.releases.get(id))!);

    async function settle(id: string): Promise<Release> {
      for (let i = 0; i < 2400; i++) {
        const r = await release(id);
        if (r.status === 'completed' || r.status === 'failed') return r;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error(`release ${id} did not settle`);
    }

    const logOf = async (id: string) =>
      (await deps.store.withOrg(orgId, (x) => x.releaseLogs.list(id, 0, 500)))
        .map((l) => l.line)
        .join('\n');

    const servicesOf = async (releaseId: string) =>
      (await docker.listServices({
        filters: { label: [`selfdevop.release=${releaseId}`] },
      })) as unknown as ServiceOnSwarm[];

    const tasksOf = async (serviceId: string) =>
      ((await docker.listTasks({ filters: { service: [serviceId] } })) as TaskOnSwarm[]).filter(
        (t) => t.ServiceID === serviceId,
      );

    let first: Release;

    it('deploys a worker whose command passes: the task ran once its health check passed', async () => {
      const { id } = await createRelease(deps, deployer, {
        serviceId,
        image: 'selfdevop-test/app:v1',
      });
      first = await settle(id);
      const log = await logOf(id);
      expect(first.status, `${first.error ?? ''}\n${log}`).toBe('completed');
      // The gate did not exec (409 not_on_swarm): Swarm ran the command.
      expect(log).toContain(
        `health command \`${passing}\` is the Swarm task's health check: it passed`,
      );
      const [service] = await servicesOf(id);
      expect(service, 'the release has its Swarm service').toBeDefined();
      // Run through the sealed environment's shim, so the check sees WORKER_QUEUE.
      expect(service!.Spec.TaskTemplate.ContainerSpec.Healthcheck).toEqual({
        Test: ['CMD', '/bin/sh', '-c', '. /run/secrets/selfdevop-env', 'sh', 'sh', '-c', passing],
        Interval: 1_000_000_000,
        Timeout: 5_000_000_000,
        Retries: 3,
        StartPeriod: 2_000_000_000,
      });
      const tasks = await tasksOf(service!.ID);
      expect(tasks.map((t) => `${t.Status?.State}->${t.DesiredState}`)).toEqual([
        'running->running',
      ]);
    });

    it("fails a release whose command keeps failing, with Swarm's reason, and keeps the previous worker", async () => {
      await deps.store.withOrg(orgId, (r) =>
        r.services.update(serviceId, { workerHealth: { stableSeconds: 2, command: failing } }),
      );
      const { id } = await createRelease(deps, deployer, {
        serviceId,
        image: 'selfdevop-test/app:v1',
      });
      const r = await settle(id);
      const log = await logOf(id);
      expect(r.status, log).toBe('failed');
      // The app exits 0 on the stop Swarm sends an unhealthy task: Swarm's task is then
      // `complete` with no error of its own, and the release says what it knows.
      expect(r.error).toContain(
        `its health check \`${failing}\` did not pass: Swarm ended the task before it ran (task complete, exit code 0;`,
      );
      // The failed candidate's service goes (its removal waits for Swarm's reaper); the
      // previous release's worker still runs.
      let left = await servicesOf(id);
      for (let i = 0; i < 120 && left.length > 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 500));
        left = await servicesOf(id);
      }
      expect(left.map((s) => s.Spec.Name)).toEqual([]);
      const [previous] = await servicesOf(first.id);
      expect(previous, 'the previous release keeps its service').toBeDefined();
      const running = (await tasksOf(previous!.ID)).filter(
        (t) => t.Status?.State === 'running' && t.DesiredState === 'running',
      );
      expect(running).toHaveLength(1);
      const current = await deps.store.withOrg(orgId, (x) => x.releases.get(first.id));
      expect(current!.status).toBe('completed');
    });
  },
);
