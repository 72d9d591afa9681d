/**
 * The ContainerRuntime contract on a real three-manager Swarm (scripts/swarm-up.sh 7 8 9),
 * through `withSwarm` as a swarm node's target is run: every container the suite starts is
 * a one-task Swarm service, published in host mode on its member's address. The tasks are
 * pinned to the manager's member (a node label), where builds land and the test images
 * are moved to: a locally built image is only on the engine that built it, and Swarm
 * would otherwise place its task where the image is not (ARCHITECTURE.md, Swarm).
 */
import { existsSync } from 'node:fs';
import Docker from 'dockerode';
import { describe } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { SwarmRuntime, withSwarm } from '../../adapters/runtime/swarm.ts';
import type { DockerTarget } from '../../core/ports.ts';
import { runContainerRuntimeContract } from '../contracts/container-runtime.case.ts';
import {
  dockerTarget,
  ensureTestImages,
  httpGet,
  removeImagesByLabel,
  testImages,
  testRun,
  unreachableTargets,
} from '../support/docker.ts';
import { isCi } from '../support/services.ts';

const socket = '/run/sdo-node7/docker.sock';
const target: DockerTarget = { dockerHost: `unix://${socket}`, swarm: true };
const pin = { key: 'sdo-contract', value: 'here' };

async function absence(): Promise<string | null> {
  if (!existsSync(socket)) return `no engine at ${socket}`;
  try {
    await new SwarmRuntime().ping(target);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
const absent = await absence();
if (absent) {
  const why = `the Swarm on nodes 7-9 is not up (${absent}): run ../shared/ci/multi-node.sh up 9, then bash scripts/swarm-up.sh 7 8 9`;
  if (isCi) throw new Error(`CI must not skip: ${why}`);
  console.warn(`\n*** SKIPPING the Swarm runtime contract: ${why} ***\n`);
}

/** Labels the manager's own member so the suite's tasks run where its images are. */
async function pinToManager(docker: Docker, on: boolean): Promise<void> {
  const info = (await docker.info()) as { Swarm?: { NodeID?: string } };
  const node = docker.getNode(info.Swarm!.NodeID!);
  const now = (await node.inspect()) as {
    Version: { Index: number };
    Spec: { Labels?: Record<string, string> };
  };
  const { [pin.key]: _pin, ...labels } = now.Spec.Labels ?? {};
  await node.update({
    version: now.Version.Index,
    ...now.Spec,
    Labels: on ? { ...labels, [pin.key]: pin.value } : labels,
  });
}

describe.skipIf(absent !== null)('SwarmRuntime contract (withSwarm, a swarm target)', () => {
  runContainerRuntimeContract({
    images: testImages,
    healthDeadlineMs: 30_000,
    make: async () => {
      await ensureTestImages();
      const docker = new Docker({ socketPath: socket });
      const engine = new DockerRuntime();
      const manager = { dockerHost: target.dockerHost };
      // The suite's images, on the member its tasks are pinned to (a no-op when there).
      for (const image of [
        testImages.app,
        testImages.appV2,
        testImages.unhealthy,
        testImages.crash,
        testImages.migrateOk,
        testImages.migrateFail,
      ])
        if ((await engine.localImage!(manager, image)) === null)
          await engine.moveImage!(dockerTarget, manager, image, { timeoutMs: 120_000 });
      await pinToManager(docker, true);
      const run = testRun(import.meta.url);
      const swarm = new SwarmRuntime({ taskStartTimeoutMs: 30_000 });
      const runtime = withSwarm(engine, swarm);
      return {
        runtime,
        target,
        unreachable: unreachableTargets.map((t) => ({ ...t, swarm: true })),
        httpGet: (published, path) => httpGet(published, path),
        labels: run.labels,
        name: run.name,
        publishedHost: '10\\.213\\.0\\.17',
        idPattern: /^[0-9a-z]{25}$/,
        specDefaults: { placementLabels: { [pin.key]: pin.value } },
        cleanup: async () => {
          for (const s of await swarm.list(target, run.labels).catch(() => []))
            await swarm.remove(target, s.name).catch(() => undefined);
          await removeImagesByLabel(run.labels);
          await pinToManager(docker, false);
        },
      };
    },
  });
});
