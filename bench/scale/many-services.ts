/**
 * manyServices: `services` services × 2 replicas over the 3 nodes. Deploy overhead: the
 * p95 of `samples` deploys of a lone 2-replica service before the others exist, against the
 * p95 of as many deploys of it once they all serve. Upstream DNS: SRV questions for the
 * services' routes asked of the edge's DNS server one at a time, as Caddy asks them, from a
 * thread of their own (Caddy is another process): while the 200 deploy (`duringDeploy`, every
 * 5 ms, the routes already created) and once they all serve (`dnsQueries` back to back).
 * Control-plane memory: this process's RSS (release engine, DNS server, pools) with all of
 * them serving; the load generator is another process and is not running here.
 */
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import { srvNameOf, upstreamLabel } from '../../core/edge/caddy-route.ts';
import { createRelease } from '../../core/releases/create.ts';
import { routeId } from '../../core/releases/plan.ts';
import { percentile, round } from '../support/stats.ts';
import { askDns } from './dns-asker.ts';
import { environmentId, zone, type ScaleEnv } from './env.ts';
import { type ScenarioResult, sleep } from './goal.ts';

export async function manyServices(
  env: ScaleEnv,
  o: { services: number; samples: number; dnsQueries: number; deadlineMs: number },
): Promise<ScenarioResult> {
  const lone = await env.addService('lone', { replicas: 2, maxSurge: 2 });
  let image = 'selfdevop-test/app:v1';
  const flip = () =>
    (image = image.endsWith('v1') ? 'selfdevop-test/app:v2' : 'selfdevop-test/app:v1');
  /**
   * Where a deploy's time went, from its step rows: each step's run (started → finished) and
   * the waits before them (the release's creation → its first step, a step's end → the
   * next one's start: the queue's and the group's share), summed by name over the samples.
   */
  const steps: Record<'alone' | 'withMany', Record<string, number[]>> = {
    alone: {},
    withMany: {},
  };
  const timeDeploys = async (phase: 'alone' | 'withMany'): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < o.samples; i++) {
      const t0 = performance.now();
      const r = await env.deploy(lone.id, flip());
      if (r.status !== 'completed') throw new Error(`lone deploy ${r.status}: ${r.error}`);
      out.push(performance.now() - t0);
      const rows = await env.deps.store.withOrg(env.orgId, (x) => x.releaseSteps.list(r.id));
      let prev = Date.parse(r.createdAt);
      for (const row of [...rows].sort((a, b) => a.startedAt.localeCompare(b.startedAt))) {
        const start = Date.parse(row.startedAt);
        const end = row.finishedAt ? Date.parse(row.finishedAt) : start;
        (steps[phase][`wait before ${row.name}`] ??= []).push(start - prev);
        (steps[phase][row.name] ??= []).push(end - start);
        prev = Math.max(prev, end);
      }
      (steps[phase]['after the last step'] ??= []).push(Date.parse(r.updatedAt) - prev);
    }
    return out;
  };
  const medians = (m: Record<string, number[]>) =>
    Object.fromEntries(Object.entries(m).map(([k, v]) => [k, round(percentile(v, 50))]));
  // The first deploy creates the route (a Caddy load); the samples are switches, like the later ones.
  await env.deploy(lone.id, image);
  const aloneMs = await timeDeploys('alone');

  const srvName = (id: string) => srvNameOf(upstreamLabel(routeId(id, environmentId)), zone);
  // Asked while the engine deploys the others: the lone service's route is answered all
  // along, and it is the event loop the deploys keep busy that the answers must not wait for.
  const during = askDns({
    server: env.dns.address,
    names: [srvName(lone.id)],
    expect: 2,
    count: 100_000,
    pauseMs: 5,
    floor: true,
    maxMs: o.deadlineMs,
  });
  const t0 = performance.now();
  const ids: string[] = [];
  const createMs: number[] = [];
  for (let i = 0; i < o.services; i++) {
    const s = await env.addService(`many-${i}`, { replicas: 2, maxSurge: 2 });
    const c0 = performance.now();
    ids.push(
      (
        await createRelease(env.deps, env.deployer, {
          serviceId: s.id,
          image: 'selfdevop-test/app:v1',
        })
      ).id,
    );
    createMs.push(performance.now() - c0);
  }
  const serviceIds: string[] = [];
  const createAllMs = Math.round(performance.now() - t0);
  let completed: number;
  let failed: number;
  const end = Date.now() + o.deadlineMs;
  for (;;) {
    const releases = await env.deps.store.withOrg(env.orgId, async (x) =>
      Promise.all(ids.map((id) => x.releases.get(id))),
    );
    completed = releases.filter((r) => r?.status === 'completed').length;
    failed = releases.filter((r) => r?.status === 'failed').length;
    if (completed + failed === ids.length || Date.now() > end) {
      for (const r of releases) if (r?.status === 'completed') serviceIds.push(r.serviceId);
      break;
    }
    await sleep(1000);
  }
  const massDeployMs = Math.round(performance.now() - t0);
  const duringDns = await during.stop();
  const withManyMs = await timeDeploys('withMany');

  const after = await askDns({
    server: env.dns.address,
    names: serviceIds.map(srvName),
    expect: 2,
    count: serviceIds.length > 0 ? o.dnsQueries : 0,
    pauseMs: 0,
    floor: true,
    maxMs: 120_000,
  }).done;
  const dnsMs = after.ms;
  const dnsErrors = after.errors;
  (globalThis as { gc?: () => void }).gc?.();
  const memory = process.memoryUsage();
  const rssMb = Math.round(memory.rss / 1048576);
  const dnsThread = await env.dns.threadHeap();

  const aloneP95 = percentile(aloneMs, 95);
  const manyP95 = percentile(withManyMs, 95);
  const ratio = manyP95 / aloneP95;
  const dnsP99 = percentile(dnsMs, 99);
  const duringP99 = percentile(duringDns.ms, 99);
  return {
    detail: {
      services: o.services,
      replicasEach: 2,
      servicesServing: completed,
      servicesFailed: failed,
      massDeployMs,
      // The 200 createRelease calls (placement reads what every release holds).
      createMs: {
        all: createAllMs,
        p50: round(percentile(createMs, 50)),
        p95: round(percentile(createMs, 95)),
      },
      deployMs: {
        alone: {
          p95: round(aloneP95),
          samples: aloneMs.map((x) => round(x)),
          stepMedians: medians(steps.alone),
        },
        withMany: {
          p95: round(manyP95),
          samples: withManyMs.map((x) => round(x)),
          stepMedians: medians(steps.withMany),
        },
      },
      dns: {
        queries: dnsMs.length,
        errors: dnsErrors,
        p50Ms: round(percentile(dnsMs, 50), 2),
        p99Ms: round(dnsP99, 2),
        maxMs: round(Math.max(...dnsMs), 2),
        floorP50Ms: round(percentile(after.floorMs, 50), 2),
        floorP99Ms: round(percentile(after.floorMs, 99), 2),
        duringDeploy: {
          floorP50Ms: round(percentile(duringDns.floorMs, 50), 2),
          floorP99Ms: round(percentile(duringDns.floorMs, 99), 2),
          queries: duringDns.ms.length,
          errors: duringDns.errors,
          p50Ms: round(percentile(duringDns.ms, 50), 2),
          p99Ms: round(duringP99, 2),
          maxMs: round(Math.max(...duringDns.ms), 2),
        },
      },
      memory: {
        // What ran: the esbuild bundle (npm run bench:scale), as an install runs, or the sources.
        runtime: process.env.SELFDEVOP_BENCH_RUNTIME ?? 'typescript sources',
        rssMb,
        heapUsedMb: Math.round(memory.heapUsed / 1048576),
        heapTotalMb: Math.round(memory.heapTotal / 1048576),
        externalMb: Math.round(memory.external / 1048576),
        arrayBuffersMb: Math.round(memory.arrayBuffers / 1048576),
        // Where the rest is: anonymous memory (heaps, malloc arenas, WebAssembly) or files.
        ...statusMb(['VmRSS', 'RssAnon', 'RssFile', 'VmHWM']),
        threads: statusMb(['Threads']).Threads,
        // The main isolate's spaces, committed: a young generation grown under the mass deploy
        // stays committed after it.
        heapSpacesMb: Object.fromEntries(
          v8
            .getHeapSpaceStatistics()
            .filter((x) => x.space_size > 0)
            .map((x) => [x.space_name, Math.round(x.space_size / 1048576)]),
        ),
        dnsThreadHeapMb: dnsThread && {
          used: Math.round(dnsThread.used / 1048576),
          total: Math.round(dnsThread.total / 1048576),
        },
        gcBeforeReading: typeof (globalThis as { gc?: unknown }).gc === 'function',
      },
    },
    goals: {
      manyServicesOverheadRatio: {
        goal: '<= 1.5',
        got: round(ratio, 2),
        met: completed === o.services && ratio <= 1.5,
      },
      upstreamDnsP99Ms: {
        goal: '<= 2',
        got: round(dnsP99, 2),
        met: dnsErrors === 0 && dnsP99 <= 2,
      },
      upstreamDnsDuringDeployP99Ms: {
        goal: '<= 2',
        got: round(duringP99, 2),
        met: duringDns.errors === 0 && duringP99 <= 2,
      },
      controlPlaneMemoryMb: { goal: '<= 200', got: rssMb, met: rssMb <= 200 },
      manyServicesServing: {
        goal: `${o.services} of ${o.services} deployed within ${o.deadlineMs} ms`,
        got: completed,
        met: completed === o.services,
      },
    },
  };
}

/** Fields of /proc/self/status: kB ones in MB, counts as they are. */
function statusMb(fields: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync('/proc/self/status', 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+)( kB)?/.exec(line);
    if (m && fields.includes(m[1]!))
      out[m[1]!] = m[3] ? Math.round(Number(m[2]) / 1024) : Number(m[2]);
  }
  return out;
}
