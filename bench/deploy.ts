/**
 * `npm run bench:deploy`: the deploy path of the self-hosted control plane, for real — a
 * fresh database, the control plane with its workers, a private Caddy, the local Docker
 * Engine running the offline test images — and four figures measured in one run:
 *
 * 1. overheadMs: POST /api/releases → traffic switched, minus the time the image needs by
 *    itself to become healthy (measured apart, see bench/support/first-healthy.ts), with
 *    where the time goes per queue hop and step (bench/support/timeline.ts).
 * 2. switchFailures: failed requests of keep-alive load through Caddy during 20
 *    blue/green deploys of the service it hits.
 * 3. wsDrops: WebSockets held through Caddy on that route and on another one.
 * 4. rollbackMs: POST /rollback → Caddy serves the previous release again.
 *
 * Prints one JSON object. Loopback only; every loop is bounded; containers (label
 * `selfdevop.org=<orgId>`), Caddy and the database are removed at the end, also on failure.
 *
 * Knobs (env): BENCH_POLL_SECONDS (pg-boss polling, default 0.5; the shipped default is
 * 2), BENCH_DEFAULTS_DEPLOYS (deploys re-measured on shipped queue defaults, default 5, 0
 * skips), BENCH_RATE (req/s of the load, default 600), BENCH_BUDGET_SECONDS (default 420).
 */
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { defaultPgBossConfig } from '../adapters/queue/pg-boss.ts';
import { testImages } from '../test/support/docker.ts';
import { measureFirstHealthy, type FirstHealthySample } from './support/first-healthy.ts';
import { dockerHost, startStack, type Stack } from './support/stack.ts';
import { brief, median, round, summary } from './support/stats.ts';
import { deployTimeline, messagesToSwitch, type DeployTimeline } from './support/timeline.ts';
import type { TrafficOptions, TrafficResult } from './support/traffic.ts';

const env = process.env;
const settings = {
  pollingIntervalSeconds: Number(env.BENCH_POLL_SECONDS ?? 0.5),
  overheadDeploys: 10,
  switchDeploys: 20,
  rollbacks: 3,
  defaultsDeploys: Number(env.BENCH_DEFAULTS_DEPLOYS ?? 5),
  firstHealthySamples: 5,
  health: { intervalMs: 50, successes: 2, timeoutMs: 1_000, deadlineMs: 15_000 },
  // Longer than the run: Caddy cuts a proxied stream drainSeconds after the last config
  // change (of any route), and a warm release retired mid-run would close its sockets.
  drainSeconds: 600,
  warmSeconds: 600,
  load: {
    rate: Number(env.BENCH_RATE ?? 600),
    connections: 10,
    path: '/',
    wsPerRoute: 3,
    wsEveryMs: 500,
    echoTimeoutMs: 3_000,
  },
  budgetSeconds: Number(env.BENCH_BUDGET_SECONDS ?? 420),
};

const goals = {
  overheadMedianMs: 500,
  overheadP95Ms: 1_000,
  non2xx: 0,
  connectionErrors: 0,
  wsDropsOtherRoute: 0,
  wsDropsSwitchedRouteBeforeDrain: 0,
  rollbackMedianMs: 1_000,
};

const log = (msg: string) =>
  process.stderr.write(`bench:deploy ${new Date().toISOString().slice(11, 23)} ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const versionOf = (image: string) => image.slice(image.lastIndexOf(':') + 1);

/** Deploys, waits for the release to complete, and returns its timeline. */
async function deployAndTime(
  stack: Stack,
  serviceId: string,
  image: string,
): Promise<DeployTimeline> {
  const sent = await stack.deploy(serviceId, image);
  const release = await stack.settle(sent.id, 60_000, 50);
  if (release.status !== 'completed')
    throw new Error(`release ${release.id} of ${image} ended ${release.status}: ${release.error}`);
  return deployTimeline(sent, release, await stack.stepJobs([release.id]));
}

/** Median and p95 of every segment over a set of deploys. */
function breakdown(timelines: DeployTimeline[]) {
  const of = (pick: (t: DeployTimeline) => number | null | undefined) =>
    brief(
      timelines.map(pick).filter((v): v is number => typeof v === 'number' && Number.isFinite(v)),
    );
  return {
    toSwitchMs: of((t) => t.toSwitchMs),
    toCompletedMs: of((t) => t.toCompletedMs),
    apiResponseMs: of((t) => t.apiMs),
    apiToFirstSendMs: of((t) => t.apiToSendMs),
    queuePickupMs: {
      ...Object.fromEntries(messagesToSwitch.map((m) => [m, of((t) => t.pickupMs[m])])),
      total: of((t) => Object.values(t.pickupMs).reduce((a, b) => a + b, 0)),
    },
    handlerMs: Object.fromEntries(messagesToSwitch.map((m) => [m, of((t) => t.handlerMs[m])])),
    stepRowMs: Object.fromEntries(
      ['build', 'start_candidate', 'health_check', 'switch_traffic', 'complete'].map((s) => [
        s,
        of((t) => t.stepMs[s]),
      ]),
    ),
    unaccountedMs: of((t) => t.unaccountedMs),
    toSwitchWithoutQueuePickupMs: of((t) => t.withoutPickupMs),
    retries: timelines.reduce((n, t) => n + t.retries, 0),
  };
}

function overheadOf(timelines: DeployTimeline[], firstHealthy: Record<string, number>) {
  const samples = timelines.map((t) => t.toSwitchMs - firstHealthy[t.image]!);
  return summary(samples);
}

async function measureOverhead(
  stack: Stack,
  serviceId: string,
  count: number,
  firstImage: string,
): Promise<DeployTimeline[]> {
  const images = [testImages.app, testImages.appV2];
  const out: DeployTimeline[] = [];
  let next = images.indexOf(firstImage as (typeof images)[number]);
  for (let i = 0; i < count; i++) {
    const image = images[next % 2]!;
    next++;
    const t = await deployAndTime(stack, serviceId, image);
    log(`deploy ${i + 1}/${count} ${versionOf(image)}: switch after ${t.toSwitchMs} ms`);
    out.push(t);
  }
  return out;
}

function startTraffic(
  options: TrafficOptions,
): Promise<{ child: ChildProcess; result: Promise<TrafficResult> }> {
  const file = fileURLToPath(new URL('./support/traffic.ts', import.meta.url));
  const child = fork(file, [JSON.stringify(options)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    const result = new Promise<TrafficResult>((res, rej) => {
      child.on('message', (m: { type: string; result?: TrafficResult }) => {
        if (m.type === 'result') res(m.result!);
      });
      child.once('exit', (code) =>
        rej(new Error(`traffic generator exited with ${code} before reporting`)),
      );
    });
    result.catch(() => undefined);
    const timer = setTimeout(
      () => reject(new Error('traffic generator not ready within 30 s')),
      30_000,
    );
    child.on('message', (m: { type: string }) => {
      if (m.type === 'ready') {
        clearTimeout(timer);
        resolve({ child, result });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`traffic generator exited with ${code} before it was ready`));
    });
  });
}

/** Polls Caddy every 5 ms until `host` answers `want` at /version; when it did (performance.now()), or null. */
async function untilServes(
  stack: Stack,
  host: string,
  want: string,
  deadlineMs: number,
): Promise<number | null> {
  const start = performance.now();
  for (let i = 0; i < deadlineMs / 5 + 10 && performance.now() - start < deadlineMs; i++) {
    const r = await stack.viaCaddy(host, '/version', 1000).catch(() => null);
    if (r?.status === 200 && r.body === want) return performance.now();
    await sleep(5);
  }
  return null;
}

async function main(): Promise<void> {
  const startedAt = Date.now();
  const loadAtStart = os.loadavg();
  log(
    `starting: pg-boss polling ${settings.pollingIntervalSeconds} s, load average ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}`,
  );
  const stack = await startStack({
    queue: { pollingIntervalSeconds: settings.pollingIntervalSeconds },
  });
  let traffic: ChildProcess | null = null;
  const cleanup = async () => {
    if (traffic && traffic.exitCode === null) traffic.kill('SIGKILL');
    await stack.close();
  };
  // Exits only once everything is removed, whichever of these comes first.
  const abort = (why: string, code: number) => {
    log(`${why}: cleaning up and exiting`);
    void cleanup().finally(() => process.exit(code));
  };
  const watchdog = setTimeout(
    () => abort(`budget of ${settings.budgetSeconds} s exceeded`, 1),
    settings.budgetSeconds * 1000,
  );
  process.once('SIGINT', () => abort('interrupted', 130));
  process.once('SIGTERM', () => abort('terminated', 143));

  try {
    const service = (name: string, image: string) =>
      stack.createService(name, {
        image,
        containerPort: 8080,
        healthcheckPath: '/health',
        health: settings.health,
        warmSeconds: settings.warmSeconds,
        drainSeconds: settings.drainSeconds,
      });

    // 0. What each image needs by itself: docker start, then first healthy probe.
    const firstHealthySamples: Record<string, FirstHealthySample[]> = {};
    let n = 0;
    for (const image of [testImages.app, testImages.appV2]) {
      firstHealthySamples[image] = await measureFirstHealthy({
        target: { dockerHost },
        image,
        containerPort: 8080,
        healthPath: '/health',
        labels: { 'selfdevop.org': stack.orgId, 'selfdevop.role': 'bench' },
        name: () => `sdo-bench-${stack.orgId.toLowerCase().replace(/[^a-z0-9]/g, '')}-fh-${n++}`,
        samples: settings.firstHealthySamples,
      });
    }
    // The candidate's own start-to-first-healthy: from asking Docker to start it to its
    // first 2xx, measured apart from the engine. Everything above that is the platform's.
    const firstHealthy = Object.fromEntries(
      Object.entries(firstHealthySamples).map(([image, s]) => [
        image,
        median(s.map((x) => x.dockerStartMs + x.firstHealthyMs)),
      ]),
    );
    // The stricter reading, which charges Docker's create+start to the platform too.
    const firstHealthyAfterStart = Object.fromEntries(
      Object.entries(firstHealthySamples).map(([image, s]) => [
        image,
        median(s.map((x) => x.firstHealthyMs)),
      ]),
    );
    log(
      `first healthy after start (median): ${JSON.stringify(Object.fromEntries(Object.entries(firstHealthy).map(([k, v]) => [versionOf(k), round(v)])))}`,
    );

    // 1. Overhead: one deploy creates the route, then the measured ones alternate v2/v1.
    const web = await service('web', testImages.app);
    await deployAndTime(stack, web.id, testImages.app);
    const overheadTimelines = await measureOverhead(
      stack,
      web.id,
      settings.overheadDeploys,
      testImages.appV2,
    );

    // 2 + 3. Load and WebSockets through Caddy while one ws service is redeployed 20 times.
    const other = await service('other', testImages.ws);
    const live = await service('live', testImages.ws);
    await deployAndTime(stack, other.id, testImages.ws);
    await deployAndTime(stack, live.id, testImages.ws);
    const load = await startTraffic({
      caddyPort: stack.caddy.httpPort,
      switchedHost: live.host,
      otherHost: other.host,
      httpPath: settings.load.path,
      connections: settings.load.connections,
      rate: settings.load.rate,
      capSeconds: 200,
      wsPerRoute: settings.load.wsPerRoute,
      wsEveryMs: settings.load.wsEveryMs,
      echoTimeoutMs: settings.load.echoTimeoutMs,
    });
    traffic = load.child;
    const loadStarted = Date.now();
    await sleep(1000);
    const switchTimelines: DeployTimeline[] = [];
    const switchesAt: number[] = [];
    for (let i = 0; i < settings.switchDeploys; i++) {
      const image = i % 2 === 0 ? testImages.wsV2 : testImages.ws;
      const t = await deployAndTime(stack, live.id, image);
      switchTimelines.push(t);
      switchesAt.push(Date.now() - loadStarted);
      log(
        `switch ${i + 1}/${settings.switchDeploys} ${versionOf(image)}: switch after ${t.toSwitchMs} ms`,
      );
      // Each generation of the switched route gets a socket of its own, held to the end.
      traffic.send({ type: 'add-switched' });
    }
    await sleep(1000);
    traffic.send({ type: 'stop' });
    const result = await Promise.race([
      load.result,
      sleep(30_000).then(() => {
        throw new Error('traffic generator did not report within 30 s of stop');
      }),
    ]);
    traffic = null;
    const runMs = Date.now() - loadStarted;
    const beforeDrain = (d: { atMs: number }) => d.atMs < settings.drainSeconds * 1000;

    // 4. Rollback to the warm previous release of `web`, traffic checked through Caddy.
    const rollbackSamples: number[] = [];
    const rollbackResponses: number[] = [];
    const rollbackPaths: string[] = [];
    for (let i = 0; i < settings.rollbacks; i++) {
      const before = await stack.viaCaddy(web.host, '/version');
      const image = before.body === 'v1' ? testImages.appV2 : testImages.app;
      const t = await deployAndTime(stack, web.id, image);
      const shown = await untilServes(stack, web.host, versionOf(image), 5_000);
      if (shown === null)
        throw new Error(
          `Caddy does not serve ${versionOf(image)} after release ${t.releaseId} completed`,
        );
      const t0 = performance.now();
      const posted = stack
        .req('POST', `/api/releases/${t.releaseId}/rollback`)
        .then((r) => ({ r, at: performance.now() }));
      const back = await untilServes(stack, web.host, before.body, 10_000);
      const { r, at } = await posted;
      if (r.status !== 202)
        throw new Error(`rollback of ${t.releaseId} answered ${r.status}: ${r.text}`);
      if (back === null)
        throw new Error(`traffic did not return to ${before.body} within 10 s of the rollback`);
      rollbackSamples.push(back - t0);
      rollbackResponses.push(at - t0);
      rollbackPaths.push(String(r.body.path));
      log(
        `rollback ${i + 1}/${settings.rollbacks}: ${before.body} serves again after ${round(back - t0)} ms (${r.body.path})`,
      );
    }

    // The same deploys on the shipped queue defaults, to show what they would give.
    let shippedDefaults: Record<string, unknown> | null = null;
    if (settings.defaultsDeploys > 0) {
      const queue = { pollingIntervalSeconds: defaultPgBossConfig.pollingIntervalSeconds };
      log(
        `restarting the control plane on the shipped queue defaults (polling ${queue.pollingIntervalSeconds} s)`,
      );
      await stack.restart(queue);
      const serving = (await stack.viaCaddy(web.host, '/version')).body;
      const timelines = await measureOverhead(
        stack,
        web.id,
        settings.defaultsDeploys,
        serving === 'v1' ? testImages.appV2 : testImages.app,
      );
      shippedDefaults = {
        pollingIntervalSeconds: queue.pollingIntervalSeconds,
        overheadMs: overheadOf(timelines, firstHealthy),
        breakdown: breakdown(timelines),
      };
    }

    const overhead = overheadOf(overheadTimelines, firstHealthy);
    const otherDrops = result.ws.drops.filter((d) => d.route === 'other').length;
    const switchedDrops = result.ws.drops.filter(
      (d) => d.route === 'switched' && beforeDrain(d),
    ).length;
    const rollbackMedian = round(median(rollbackSamples));
    const report = {
      bench: 'deploy',
      settings: {
        pollingIntervalSeconds: settings.pollingIntervalSeconds,
        shippedPollingIntervalSeconds: defaultPgBossConfig.pollingIntervalSeconds,
        workerConcurrency: 4,
        health: settings.health,
        warmSeconds: settings.warmSeconds,
        drainSeconds: settings.drainSeconds,
        load: settings.load,
      },
      overheadMs: {
        ...overhead,
        method:
          'toSwitch = POST /api/releases sent → switch_traffic step finished (route points at the candidate and Caddy has it; the release moves to traffic_shifted next); ' +
          "overhead = toSwitch − the candidate's own start-to-first-healthy, measured apart as the median of DockerRuntime.start() called → first 2xx of GET /health with the engine's HttpHealthProbe every 10 ms.",
        countingDockerStartAsOverhead: overheadOf(overheadTimelines, firstHealthyAfterStart),
        firstHealthyMs: Object.fromEntries(
          Object.entries(firstHealthySamples).map(([image, s]) => [
            image,
            summary(s.map((x) => x.firstHealthyMs)),
          ]),
        ),
        dockerStartMs: Object.fromEntries(
          Object.entries(firstHealthySamples).map(([image, s]) => [
            image,
            summary(s.map((x) => x.dockerStartMs)),
          ]),
        ),
        breakdown: breakdown(overheadTimelines),
      },
      switchFailures: {
        requests: result.http.requests,
        non2xx: result.http.non2xx,
        connectionErrors: result.http.connectionErrors,
        timeouts: result.http.timeouts,
        reqPerSec: result.http.reqPerSec,
        seconds: result.http.seconds,
        latencyP99Ms: result.http.latencyP99Ms,
        deploys: switchTimelines.length,
        image: 'selfdevop-test/ws:v1 ⇄ ws:v2 (the switched route also carries WebSockets)',
        deployToSwitchUnderLoadMs: brief(switchTimelines.map((t) => t.toSwitchMs)),
        switchesAtMs: switchesAt,
        failureKinds: result.http.failureKinds,
        failuresDuringRouteChange: {
          count: result.http.failureTimes.filter((at) =>
            switchTimelines.some(
              (t) => at >= t.switchWindow[0] - 50 && at <= t.switchWindow[1] + 250,
            ),
          ).length,
          window:
            'switch_traffic step started − 50 ms … finished + 250 ms (the Caddy config reload)',
        },
        firstFailures: result.http.firstFailures,
      },
      wsDrops: {
        otherRoute: otherDrops,
        switchedRouteBeforeDrain: switchedDrops,
        held: result.ws.held,
        heldMs: result.ws.heldMs,
        drainSeconds: settings.drainSeconds,
        runMs,
        echoes: result.ws.echoes,
        echoMismatches: result.ws.mismatches,
        echoLate: result.ws.late,
        connectFailures: result.ws.connectFailures,
        versionsSeen: result.ws.versionsSeen,
        drops: result.ws.drops,
      },
      rollbackMs: {
        ...summary(rollbackSamples),
        method:
          'POST /api/releases/{id}/rollback sent → Caddy answers the previous version at /version (polled every 5 ms)',
        responseMs: summary(rollbackResponses),
        paths: rollbackPaths,
      },
      shippedDefaults,
      goals: {
        overheadMedianMs: {
          goal: `<= ${goals.overheadMedianMs}`,
          got: overhead.median,
          met: overhead.median <= goals.overheadMedianMs,
        },
        overheadP95Ms: {
          goal: `<= ${goals.overheadP95Ms}`,
          got: overhead.p95,
          met: overhead.p95 <= goals.overheadP95Ms,
        },
        non2xx: { goal: '0', got: result.http.non2xx, met: result.http.non2xx === goals.non2xx },
        connectionErrors: {
          goal: '0',
          got: result.http.connectionErrors,
          met: result.http.connectionErrors === goals.connectionErrors,
        },
        reqPerSec: {
          goal: '>= 500',
          got: result.http.reqPerSec,
          met: result.http.reqPerSec >= 500,
        },
        wsDropsOtherRoute: {
          goal: '0',
          got: otherDrops,
          met: otherDrops === goals.wsDropsOtherRoute,
        },
        wsDropsSwitchedRouteBeforeDrain: {
          goal: '0',
          got: switchedDrops,
          met: switchedDrops === goals.wsDropsSwitchedRouteBeforeDrain,
        },
        rollbackMedianMs: {
          goal: `<= ${goals.rollbackMedianMs}`,
          got: rollbackMedian,
          met: rollbackMedian <= goals.rollbackMedianMs,
        },
      },
      machine: {
        cpus: os.cpus().length,
        node: process.version,
        loadAverageAtStart: loadAtStart.map((l) => round(l, 2)),
        loadAverageAtEnd: os.loadavg().map((l) => round(l, 2)),
        benchSeconds: round((Date.now() - startedAt) / 1000, 1),
      },
    };
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  } catch (e) {
    log(`failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  } finally {
    log('cleaning up');
    await cleanup();
    clearTimeout(watchdog);
  }
}

await main();
