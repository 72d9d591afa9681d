/**
 * swarmSwitch: 3 replicas (one-task Swarm services) on the 3-member Swarm, `switches`
 * blue/green deploys (v1 ↔ v2) under the issue's load through Caddy (bench/scale's load
 * child: ≥ 1,000 req/s keep-alive plus 50 new connections/s). The overhead of a deploy is
 * its time to completed minus the tasks' own start-to-healthy, measured apart in the same
 * run and under the same load: after each deploy, three services of the same image are
 * started at once straight through the Engine API (create, Swarm places, task running,
 * host port read back, each read every 10 ms) until each answers its first 2xx. The load
 * slows Swarm's own start of a task about twofold on this machine (the tasks and the load
 * share its two cores), so a baseline taken before the load counted that slowdown as
 * selfdevop's overhead; the samples taken before the load are still reported, beside it.
 * Each deploy and each sample starts once the release the deploy before replaced has
 * retired (its warm window, then its services stopped and removed) and the sample before
 * has left the members: neither is timed while the Swarm is still busy with the other's
 * leftovers, and each deploy is measured as a deploy on its own is.
 */
import Docker from 'dockerode';
import { HttpHealthProbe } from '../../adapters/probe/http.ts';
import { serviceSpec } from '../../adapters/runtime/swarm.ts';
import { median } from '../support/stats.ts';
import { type ScenarioResult, sleep } from '../scale/goal.ts';
import { failedOf, startLoad } from '../scale/load-client.ts';
import { orgId } from '../../test/core/releases/harness.ts';
import type { SwarmEnv } from './env.ts';

/**
 * Where a deploy's time went, from its step rows: each step's own time, and the time
 * between steps (queue hops and moves), in ms. The profile behind the overhead figure.
 */
async function stepTimes(env: SwarmEnv, releaseId: string): Promise<Record<string, number>> {
  const steps = await env.deps.store.withOrg(orgId, (r) => r.releaseSteps.list(releaseId));
  const release = await env.release(releaseId);
  const at = (iso: string) => Date.parse(iso);
  const out: Record<string, number> = {};
  let last = at(release.createdAt);
  let between = 0;
  for (const s of [...steps].sort((a, b) => at(a.startedAt) - at(b.startedAt))) {
    between += Math.max(0, at(s.startedAt) - last);
    const end = s.finishedAt ? at(s.finishedAt) : at(s.startedAt);
    out[s.name] = (out[s.name] ?? 0) + end - at(s.startedAt);
    last = Math.max(last, end);
  }
  out.betweenSteps = between;
  if (release.finishedAt) out.afterLastStep = Math.max(0, at(release.finishedAt) - last);
  return out;
}

interface OwnTask {
  ServiceID: string;
  NodeID?: string;
  DesiredState?: string;
  Status?: { State?: string; PortStatus?: { Ports?: { PublishedPort?: number }[] } };
}

/**
 * Three tasks started at once, until each answers: the set's own start-to-healthy, in ms.
 * Straight through the Engine API with the replicas' service spec, but none of what
 * selfdevop's runtime adds (the sealed environment, the spread and its pin, its reads and
 * their intervals): the overhead figure counts all of that, and every read here is 10 ms
 * apart. `image` is the reference the deploys run (the image id the build step resolved).
 */
async function ownStartToHealthy(env: SwarmEnv, image: string, sample: string): Promise<number> {
  const docker = new Docker({ socketPath: env.target.dockerHost.replace(/^unix:\/\//, '') });
  const probe = new HttpHealthProbe();
  // The members' addresses do not change: read before the clock starts.
  const addressOf = new Map(
    ((await docker.listNodes()) as { ID: string; Status?: { Addr?: string } }[]).map((n) => [
      n.ID,
      n.Status?.Addr ?? '',
    ]),
  );
  const names = [0, 1, 2].map((i) => `sdo-bench-own-${process.pid}-${sample}-${i}`);
  const ids: string[] = [];
  const t0 = performance.now();
  try {
    await Promise.all(
      names.map(async (name) => {
        const spec = serviceSpec({
          name,
          image,
          env: { PORT: '8080' },
          labels: { 'selfdevop.bench': 'swarm' },
          containerPort: 8080,
          restartPolicy: 'unless-stopped',
        });
        const { id } = (await docker.createService(spec as Docker.CreateServiceOptions)) as {
          id: string;
        };
        ids.push(id);
        let published: string | null = null;
        for (let n = 0; n < 6000 && !published; n++) {
          const tasks = (await docker.listTasks({ filters: { service: [id] } })) as OwnTask[];
          const task = tasks.find(
            (t) =>
              t.ServiceID === id && t.Status?.State === 'running' && t.DesiredState === 'running',
          );
          const port = task?.Status?.PortStatus?.Ports?.[0]?.PublishedPort;
          if (task && port) published = `${addressOf.get(task.NodeID ?? '')}:${port}`;
          else await sleep(10);
        }
        if (!published) throw new Error(`${name}: no task running`);
        for (let n = 0; n < 3000; n++) {
          if ((await probe.check(`http://${published}/health`, 500)).ok) return;
          await sleep(10);
        }
        throw new Error(`${name} not healthy`);
      }),
    );
    return performance.now() - t0;
  } finally {
    await Promise.all(names.map((n) => env.swarm.remove(env.target, n).catch(() => undefined)));
    // Until their tasks have stopped on the members (bounded), so the next deploy does not
    // share the members with them.
    await until(async () => {
      const tasks = (await docker.listTasks()) as OwnTask[];
      return !tasks.some((t) => ids.includes(t.ServiceID));
    }, 30_000);
  }
}

/** Polls `done` every 100 ms until it answers true or `ms` pass; the time waited, or null. */
async function until(done: () => Promise<boolean>, ms: number): Promise<number | null> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    if (await done().catch(() => false)) return Math.round(performance.now() - t0);
    await sleep(100);
  }
  return null;
}

/** The image id of `tag` on the manager: what the build step resolves and the deploys run. */
async function imageIdOf(env: SwarmEnv, tag: string): Promise<string> {
  const docker = new Docker({ socketPath: env.target.dockerHost.replace(/^unix:\/\//, '') });
  return ((await docker.getImage(tag).inspect()) as { Id: string }).Id;
}

export async function swarmSwitch(
  env: SwarmEnv,
  o: { switches: number; ownSamples: number },
): Promise<ScenarioResult> {
  const svc = await env.addService('switch');
  const first = await env.deploy(svc.id, env.app.v1);
  if (first.status !== 'completed') throw new Error(`first deploy ${first.status}: ${first.error}`);
  const ids = {
    v1: await imageIdOf(env, env.app.v1),
    v2: await imageIdOf(env, env.app.v2),
  };
  const idle: number[] = [];
  for (let i = 0; i < o.ownSamples; i++)
    idle.push(await ownStartToHealthy(env, ids[i % 2 === 0 ? 'v2' : 'v1'], `idle${i}`));
  const own: number[] = [];
  const load = await startLoad({
    port: env.caddy.httpPort,
    hosts: [svc.host],
    path: '/env/HOSTNAME',
    capSeconds: 60 + o.switches * 40,
  });
  const deployMs: number[] = [];
  const failedDeploys: string[] = [];
  const profiles: Record<string, number>[] = [];
  const manager = new Docker({ socketPath: env.target.dockerHost.replace(/^unix:\/\//, '') });
  const retireWaitMs: (number | null)[] = [];
  try {
    for (let i = 0; i < o.switches; i++) {
      const version = i % 2 === 0 ? 'v2' : 'v1';
      const t0 = performance.now();
      const r = await env.deploy(svc.id, env.app[version]);
      deployMs.push(Math.round(performance.now() - t0));
      if (r.status !== 'completed') failedDeploys.push(`${r.id}: ${r.error}`);
      else profiles.push(await stepTimes(env, r.id));
      // The release it replaced retires after its warm window: wait for it (bounded).
      const replaced = r.previousReleaseId;
      retireWaitMs.push(
        replaced
          ? await until(
              async () =>
                (
                  await manager.listServices({
                    filters: { label: [`selfdevop.release=${replaced}`] },
                  })
                ).length === 0,
              90_000,
            )
          : 0,
      );
      await sleep(500);
      // The tasks' own start-to-healthy under the same load, between two deploys.
      own.push(await ownStartToHealthy(env, ids[version], `load${i}`));
      process.stderr.write(
        `bench:swarm: switch ${i + 1}/${o.switches} ${r.status} ${deployMs.at(-1)} ms, own ${Math.round(own.at(-1)!)} ms, retire waited ${retireWaitMs.at(-1)} ms\n`,
      );
      await sleep(500);
    }
  } catch (e) {
    await load.stop().catch(() => undefined);
    throw e;
  }
  const result = await load.stop();
  const ownMedian = median(own);
  const overhead = deployMs.map((d) => d - ownMedian);
  const overheadMedian = Math.round(median(overhead));
  const idleMedian = median(idle);
  const connectionErrors =
    result.keepAlive.connectionErrors + result.newConnections.connectionErrors;
  const non2xx = result.keepAlive.non2xx + result.newConnections.non2xx;
  return {
    detail: {
      switches: o.switches,
      failedDeploys,
      deployMs: { median: median(deployMs), max: Math.max(...deployMs), samples: deployMs },
      // After each deploy, the wait for the release it replaced to retire (null: not within 90 s).
      retireWaitMs,
      // Each step's median time and the median time between steps, for the overhead.
      stepMedianMs: Object.fromEntries(
        [...new Set(profiles.flatMap((p) => Object.keys(p)))].map((k) => [
          k,
          Math.round(median(profiles.map((p) => p[k] ?? 0))),
        ]),
      ),
      // Under the load, one sample after each deploy: the baseline of the overhead.
      ownStartToHealthyMs: { samples: own.map(Math.round), median: Math.round(ownMedian) },
      // Before the load (the baseline of earlier runs), for comparison only.
      ownStartToHealthyIdleMs: { samples: idle.map(Math.round), median: Math.round(idleMedian) },
      overheadMs: { median: overheadMedian, max: Math.round(Math.max(...overhead)) },
      overheadVsIdleMs: { median: Math.round(median(deployMs.map((d) => d - idleMedian))) },
      load: result,
      failed: failedOf(result),
    },
    goals: {
      swarmSwitchNon2xx: { goal: '0', got: non2xx, met: non2xx === 0 },
      swarmSwitchConnectionErrors: {
        goal: '0',
        got: connectionErrors,
        met: connectionErrors === 0,
      },
      swarmOverheadMedianMs: {
        goal: '<= 1000',
        got: overheadMedian,
        met: failedDeploys.length === 0 && overheadMedian <= 1000,
      },
      swarmSwitchReqPerSec: {
        goal: '>= 1000 keep-alive + 50 new connections/s',
        got: result.keepAlive.reqPerSec,
        met: result.keepAlive.reqPerSec >= 1000 && result.newConnections.perSec >= 50,
      },
    },
  };
}
