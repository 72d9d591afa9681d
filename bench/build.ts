/**
 * `npm run bench:build` (issue 13 steps 1 and 2): builds from git on the self-hosted
 * control plane, for real — a git daemon on loopback, the control plane with its workers,
 * a private Caddy, the local Docker Engine (BuildKit) — for a small Node.js app with a
 * Dockerfile and vendored dependencies. Measured in one run:
 *
 * 1. rebuildVsColdRatio: the build step of a commit that changed one source file ÷ that of
 *    a cold build (fresh dependency layers); the same ratio built directly through the
 *    Engine API (same builder, same cache state) is reported beside it, with the context
 *    uploaded as a tar and sent as files over the BuildKit session (what the platform does).
 * 2. rollbackToEarlierShaMs: POST /api/releases {gitRef: <earlier sha>} → Caddy serves it,
 *    its image still on the node (no build step runs; the log says "reused") and its
 *    release still warm with the same configuration, so its container is taken over.
 * 3. controlPlaneBuildMemoryMb: peak RSS of this process (the control plane runs in it)
 *    during a cold build, above its idle RSS just before.
 * 4. warm/coldPushToServingOverRawMs: the cold and warm deploys are pushes: a push webhook
 *    signed as GitHub signs it, POSTed to the service's hook, until Caddy serves the new
 *    version; minus the raw baseline: the same build through the Engine API plus a plain
 *    image deploy of its result (POST /api/releases {image}, until Caddy serves it).
 *
 * Prints one JSON object. Loopback only; every loop is bounded; containers and images
 * (label `selfdevop.org=<orgId>`), Caddy, the git daemon and the database are removed at
 * the end, also on failure.
 */
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { promisify } from 'node:util';
import { DockerRuntime } from '../adapters/runtime/docker.ts';
import { GitCliSource } from '../adapters/source/git-cli.ts';
import { removeImagesByLabel } from '../test/support/docker.ts';
import { makeRepo, startGitDaemon, type TestGitServer } from '../test/support/git-server.ts';
import { dockerHost, startStack, type ReleaseWire, type Stack } from './support/stack.ts';
import { round } from './support/stats.ts';

const run = promisify(execFile);
const budgetMs = Number(process.env.BENCH_BUDGET_SECONDS ?? 300) * 1000;
const nonce = `${process.pid}-${Date.now()}`;
const log = (line: string) => process.stderr.write(`bench:build ${line}\n`);

/**
 * ~0.6 MB of vendored JavaScript: the dependency layer a rebuild should not redo. Each
 * package names the run, so a cold build copies and installs them for real: BuildKit's
 * cache keys COPY by content and outlives a run, so packages equal to an earlier run's
 * were CACHED in the "cold" build and only the install step ran.
 */
function vendored(run: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (let p = 0; p < 40; p++) {
    const body = Array.from(
      { length: 400 },
      (_, i) => `exports.f${i} = (x) => x * ${i} + ${p};`,
    ).join('\n');
    files[`node_modules/dep${p}/index.js`] = `${body}\n`;
    files[`node_modules/dep${p}/package.json`] = JSON.stringify({
      name: `dep${p}`,
      version: '1.0.0',
      vendoredFor: run,
    });
  }
  return files;
}

const server = (version: string) => `const http = require('node:http');
const deps = Array.from({ length: 40 }, (_, i) => require('dep' + i));
http.createServer((req, res) => {
  if (req.url === '/health') return res.end('ok');
  res.end('${version} ' + deps.length);
}).listen(Number(process.env.PORT || 8080));
`;

const dockerfile = (runNonce: string) => `FROM selfdevop-test/node:base
ENV BENCH_RUN=${runNonce}
WORKDIR /app
COPY package.json /app/package.json
COPY node_modules /app/node_modules
# Stands in for an install step: reads every vendored file (no network here).
RUN node -e "let n=0;for(const d of require('fs').readdirSync('node_modules'))n+=require('fs').readFileSync('node_modules/'+d+'/index.js').length;console.log('deps bytes',n)"
COPY src /app/src
CMD ["node", "/app/src/server.js"]
`;

/**
 * CPU this process (the control plane, and the bench's own polling) and the children it
 * waited for (git) have used, in ms: a load-independent figure beside the wall-clock ones,
 * which on a shared 2-core machine follow its load more than the code.
 */
async function cpuNow(): Promise<{ self: number; children: number }> {
  const stat = await readFile('/proc/self/stat', 'utf8').catch(() => '');
  // Fields after the command's closing parenthesis; cutime and cstime are the 16th and 17th.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[13]) + Number(f[14]);
  const u = process.cpuUsage();
  return { self: (u.user + u.system) / 1000, children: Number.isFinite(ticks) ? ticks * 10 : NaN };
}
const cpuSince = async (from: { self: number; children: number }) => {
  const now = await cpuNow();
  return {
    selfMs: round(now.self - from.self, 0),
    gitAndOtherChildrenMs: now.children - from.children,
  };
};

const stepMs = (r: ReleaseWire, name: string) => {
  const s = r.steps.find((x) => x.name === name);
  return s?.finishedAt ? Date.parse(s.finishedAt) - Date.parse(s.startedAt) : NaN;
};

async function main(): Promise<void> {
  const startedAt = Date.now();
  let stack: Stack | null = null;
  let daemon: TestGitServer | null = null;
  const watchdog = setTimeout(() => {
    log(`over budget (${budgetMs} ms): stopping`);
    process.exit(2);
  }, budgetMs);
  try {
    daemon = await startGitDaemon();
    const repo = await makeRepo(daemon.root, 'bench-app');
    const base = {
      'package.json': '{"name":"bench-app","private":true}\n',
      ...vendored(nonce),
    };
    const v1 = await repo.commit({
      ...base,
      Dockerfile: dockerfile(nonce),
      'src/server.js': server('v1'),
    });
    const v2 = await repo.commit({ 'src/server.js': server('v2') });
    stack = await startStack({ queue: { pollingIntervalSeconds: 0.5 } });
    const s = stack;
    const svc = await s.createService('app', {
      git: { url: daemon.url('bench-app') },
      containerPort: 8080,
      healthcheckPath: '/health',
      health: { intervalMs: 50, successes: 2, timeoutMs: 1_000, deadlineMs: 15_000 },
      warmSeconds: 600,
      drainSeconds: 1,
    });
    const deployRef = async (gitRef: string) => {
      const cpu = await cpuNow();
      const t0 = Date.now();
      const res = await s.req('POST', '/api/releases', { body: { serviceId: svc.id, gitRef } });
      const tResp = Date.now();
      if (res.status !== 202)
        throw new Error(`deploy of ${gitRef} answered ${res.status}: ${res.text}`);
      return { id: res.body.id as string, t0, tResp, cpu };
    };
    // The cold and warm deploys arrive as pushes, signed as GitHub signs them.
    const made = await s.req('POST', `/api/services/${svc.id}/push-hook`);
    if (made.status !== 201) throw new Error(`push hook answered ${made.status}: ${made.text}`);
    const hook = made.body as { path: string; secret: string };
    let delivery = 0;
    const pushRef = async (sha: string) => {
      const body = JSON.stringify({ ref: 'refs/heads/main', before: '0'.repeat(40), after: sha });
      const sig = createHmac('sha256', hook.secret).update(body).digest('hex');
      const cpu = await cpuNow();
      const t0 = Date.now();
      const res = await s.req('POST', hook.path, {
        token: undefined,
        rawBody: body,
        headers: {
          'x-github-event': 'push',
          'x-github-delivery': `bench-${nonce}-${++delivery}`,
          'x-hub-signature-256': `sha256=${sig}`,
        },
      });
      const tResp = Date.now();
      if (res.status !== 202 || res.body.status !== 'deploying')
        throw new Error(`push of ${sha} answered ${res.status}: ${res.text}`);
      return { id: res.body.releaseId as string, t0, tResp, cpu };
    };
    const serves = async (version: string, t0: number) => {
      const end = Date.now() + 60_000;
      for (;;) {
        const r = await s.viaCaddy(svc.host, '/').catch(() => ({ status: 0, body: '' }));
        if (r.status === 200 && r.body.startsWith(`${version} `)) return Date.now() - t0;
        if (Date.now() > end) throw new Error(`${version} not served within 60 s`);
        await new Promise((x) => setTimeout(x, 10));
      }
    };

    // Idle RSS, then the peak while a cold build streams through this process.
    const samples: number[] = [];
    for (let i = 0; i < 20; i++) {
      samples.push(process.memoryUsage().rss);
      await new Promise((x) => setTimeout(x, 50));
    }
    const idleRss = samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]!;
    let peakRss = idleRss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 10);
    log('cold build of v1');
    const cold = await pushRef(v1);
    const coldRelease = await s.settle(cold.id, 120_000);
    clearInterval(sampler);
    if (coldRelease.status !== 'completed')
      throw new Error(`cold release ${coldRelease.status}: ${coldRelease.error}`);
    const coldPushMs = await serves('v1', cold.t0);
    const coldCpu = await cpuSince(cold.cpu);

    log('warm build of v2 (one source file changed)');
    const warm = await pushRef(v2);
    const warmRelease = await s.settle(warm.id, 120_000);
    if (warmRelease.status !== 'completed')
      throw new Error(`warm release ${warmRelease.status}: ${warmRelease.error}`);
    const warmPushMs = await serves('v2', warm.t0);
    const warmCpu = await cpuSince(warm.cpu);

    log('rollback to v1 by sha (image on the node)');
    const back = await deployRef(v1);
    const rollbackMs = await serves('v1', back.t0);
    const rollbackCpu = await cpuSince(back.cpu);
    const backRelease = await s.settle(back.id, 60_000);
    const backLog = await s.logs(back.id);
    const reused = backLog.some((l) => l.line.includes('reused, nothing built'));
    // Whether v1's still-warm container was taken over (same configuration) or a new one started.
    const warmTakenOver = backLog.some((l) => l.line.startsWith('reusing the warm containers'));

    // The raw baseline: the same Dockerfile through the Engine API, same builder, fresh
    // nonce (in the Dockerfile and the packages) for the cold build so its cache state
    // matches the platform's cold one.
    log('raw builds through the Engine API');
    const raw = await repo.commit({
      ...vendored(`${nonce}-raw`),
      Dockerfile: dockerfile(`${nonce}-raw`),
      'src/server.js': server('raw1'),
    });
    const raw2 = await repo.commit({ 'src/server.js': server('raw2') });
    const source = new GitCliSource();
    const runtime = new DockerRuntime();
    const rawBuild = async (sha: string) => {
      const archive = await source.archive(
        { url: daemon!.url('bench-app'), credential: null },
        sha,
        {
          subdir: '',
          dockerfile: 'Dockerfile',
        },
      );
      const t0 = Date.now();
      // The engine's own timeline: when the context was read to its end (uploaded), and
      // when each output line (a BuildKit vertex starting, a step's output) arrived.
      const marks: Record<string, number> = {};
      const lines: string[] = [];
      async function* timed(source: AsyncIterable<Uint8Array>) {
        let bytes = 0;
        for await (const chunk of source) {
          bytes += chunk.length;
          yield chunk;
        }
        marks[`contextSent (${Math.round(bytes / 1024)} KiB)`] = Date.now() - t0;
      }
      try {
        const result = await runtime.build(
          { dockerHost },
          {
            tag: `bench-raw-${nonce}:${sha}`,
            context: timed(archive.stream),
            dockerfile: 'Dockerfile',
            buildArgs: {},
            labels: { 'selfdevop.org': s.orgId },
            memoryMb: null,
            cpus: null,
            timeoutMs: 120_000,
          },
          (line) => {
            if (lines.length < 40) lines.push(`${Date.now() - t0} ${line.slice(0, 70)}`);
          },
        );
        if (result.error) throw new Error(`raw build failed: ${result.error}`);
        const ms = Date.now() - t0;
        timelines.push({ ...marks, lines, end: ms });
        return ms;
      } finally {
        await archive.close();
      }
    };
    const timelines: Record<string, unknown>[] = [];
    const rawColdMs = await rawBuild(raw);
    const rawWarmMs = await rawBuild(raw2);
    // The same pair through the Engine API with the context as files over the session (what
    // the platform sends now), fresh content so its cold build is cold too, one session key.
    const rawFs = await repo.commit({
      ...vendored(`${nonce}-rawfs`),
      Dockerfile: dockerfile(`${nonce}-rawfs`),
      'src/server.js': server('rawfs1'),
    });
    const rawFs2 = await repo.commit({ 'src/server.js': server('rawfs2') });
    const fileSyncBuild = async (sha: string) => {
      const tree = await source.fetch({ url: daemon!.url('bench-app'), credential: null }, sha, '');
      const t0 = Date.now();
      try {
        const result = await runtime.build(
          { dockerHost },
          {
            tag: `bench-raw-${nonce}:fs-${sha}`,
            context: tree.archive(),
            files: { open: async () => (await tree.checkout!()).dir, key: `bench-raw-fs-${nonce}` },
            dockerfile: 'Dockerfile',
            buildArgs: {},
            labels: { 'selfdevop.org': s.orgId },
            memoryMb: null,
            cpus: null,
            timeoutMs: 120_000,
          },
          () => undefined,
        );
        if (result.error) throw new Error(`raw file-sync build failed: ${result.error}`);
        return { ms: Date.now() - t0, transfer: result.transfer };
      } finally {
        await tree.close();
      }
    };
    const fsCold = await fileSyncBuild(rawFs);
    const fsWarm = await fileSyncBuild(rawFs2);
    // A plain image deploy of the raw build's result: the deploy half of the baseline.
    const rawDeploy = async (sha: string, version: string) => {
      const t0 = Date.now();
      const res = await s.req('POST', '/api/releases', {
        body: { serviceId: svc.id, image: `bench-raw-${nonce}:${sha}` },
      });
      if (res.status !== 202) throw new Error(`raw deploy answered ${res.status}: ${res.text}`);
      const ms = await serves(version, t0);
      await s.settle(res.body.id as string, 60_000);
      return ms;
    };
    const rawDeployMs = await rawDeploy(raw2, 'raw2');
    const coldOverRaw = coldPushMs - (rawColdMs + rawDeployMs);
    const warmOverRaw = warmPushMs - (rawWarmMs + rawDeployMs);

    // Where a warm build step spends its time: the gaps between its log lines (each line is
    // written when its phase starts), the largest first.
    const phases = async (id: string) => {
      const lines = await s.logs(id);
      const gaps: { ms: number; after: string }[] = [];
      for (let i = 1; i < lines.length; i++)
        gaps.push({
          ms: Date.parse(lines[i]!.at) - Date.parse(lines[i - 1]!.at),
          after: lines[i - 1]!.line.slice(0, 80),
        });
      return gaps.sort((a, b) => b.ms - a.ms).slice(0, 6);
    };
    const warmPhases = await phases(warm.id);
    // Where a push's time goes, in ms from the webhook POST: its answer, each step's start
    // and end (each step is one queue message, so a gap between steps is the queue's hop),
    // and the moment Caddy served the new version.
    const timeline = async (
      id: string,
      push: { t0: number; tResp: number },
      servedMs: number,
    ): Promise<Record<string, number>> => {
      const r = await s.getRelease(id);
      const at = (iso: string | null) => (iso ? Date.parse(iso) - push.t0 : NaN);
      const points: Record<string, number> = {
        webhookAnswered: push.tResp - push.t0,
        releaseCreated: at(r.createdAt),
      };
      for (const step of [...r.steps].sort((a, b) => a.startedAt.localeCompare(b.startedAt))) {
        points[`${step.name}:start`] = at(step.startedAt);
        points[`${step.name}:end`] = at(step.finishedAt);
      }
      for (const l of await s.logs(id)) {
        const key =
          /^(fetching|build context over|build context|building|built|started|healthy|traffic)/.exec(
            l.line,
          );
        if (key && !(`log:${key[1]}` in points)) points[`log:${key[1]}`] = at(l.at);
      }
      // The queue's part: when each step message was sent and when a worker took it.
      for (const [i, j] of (await s.stepJobs([id])).entries()) {
        points[`job${i}:${j.status}:sent`] = j.createdOn - push.t0;
        if (j.startedOn !== null) points[`job${i}:${j.status}:taken`] = j.startedOn - push.t0;
      }
      points.served = servedMs;
      return points;
    };
    // Whether each instruction of the warm build was taken from the cache.
    const instructions = (await s.logs(warm.id))
      .map((l) => l.line)
      .filter((l) => /^(CACHED )?\[\d+\/\d+\]/.test(l))
      .map((l) => l.slice(0, 60));
    const coldBuildMs = stepMs(coldRelease, 'build');
    const warmBuildMs = stepMs(warmRelease, 'build');
    const ratio = round(warmBuildMs / coldBuildMs, 3);
    const memoryMb = round((peakRss - idleRss) / 1024 / 1024, 1);
    const report = {
      bench: 'build',
      app: 'Node.js, Dockerfile FROM selfdevop-test/node:base, 40 vendored packages (~0.6 MB), one source file changed for the warm build',
      builder: 'buildkit (Engine API, version 2)',
      platform: {
        coldBuildStepMs: coldBuildMs,
        warmBuildStepMs: warmBuildMs,
        coldPushToServingMs: coldPushMs,
        warmPushToServingMs: warmPushMs,
        warmReleaseLongestGaps: warmPhases,
        warmBuildInstructions: instructions,
        warmContextSent: (await s.logs(warm.id))
          .map((l) => l.line)
          .find((l) => l.startsWith('build context over the BuildKit session')),
        coldTimelineMs: await timeline(cold.id, cold, coldPushMs),
        warmTimelineMs: await timeline(warm.id, warm, warmPushMs),
        // Every line of the warm build step, in ms from the push: where the step's time goes.
        warmBuildLogMs: (await s.logs(warm.id))
          .filter((l) => {
            const at = Date.parse(l.at);
            const step = warmRelease.steps.find((x) => x.name === 'build');
            return step?.finishedAt
              ? at >= Date.parse(step.startedAt) && at <= Date.parse(step.finishedAt)
              : false;
          })
          .map((l) => `${Date.parse(l.at) - warm.t0} ${l.line.slice(0, 90)}`),
        rollbackTimelineMs: await timeline(back.id, back, rollbackMs),
        cpuUntilServedMs: { cold: coldCpu, warm: warmCpu, rollback: rollbackCpu },
      },
      raw: {
        coldBuildMs: rawColdMs,
        warmBuildMs: rawWarmMs,
        rebuildVsColdRatio: round(rawWarmMs / rawColdMs, 3),
        // ms from the build request: the context's upload done, each output line, the end.
        coldBuildTimelineMs: timelines[0],
        warmBuildTimelineMs: timelines[1],
        imageDeployToServingMs: rawDeployMs,
        // The context as files over the session (checkout included), the same pair of builds.
        fileSync: {
          coldBuildMs: fsCold.ms,
          warmBuildMs: fsWarm.ms,
          rebuildVsColdRatio: round(fsWarm.ms / fsCold.ms, 3),
          coldTransfer: fsCold.transfer && { ...fsCold.transfer, paths: undefined },
          warmTransfer: fsWarm.transfer,
        },
      },
      rollback: {
        ms: rollbackMs,
        status: backRelease.status,
        reusedImage: reused,
        warmContainersTakenOver: warmTakenOver,
      },
      memory: {
        idleRssMb: round(idleRss / 1024 / 1024, 1),
        peakRssMb: round(peakRss / 1024 / 1024, 1),
      },
      goals: {
        warmPushToServingOverRawMs: {
          goal: '<= 1500',
          got: warmOverRaw,
          met: warmOverRaw <= 1500,
        },
        coldPushToServingOverRawMs: {
          goal: '<= 3000',
          got: coldOverRaw,
          met: coldOverRaw <= 3000,
        },
        rebuildVsColdRatio: { goal: '<= 0.3', got: ratio, met: ratio <= 0.3 },
        rollbackToEarlierShaMs: {
          goal: '<= 1000',
          got: rollbackMs,
          met: rollbackMs <= 1000 && reused,
        },
        controlPlaneBuildMemoryMb: { goal: '<= 30', got: memoryMb, met: memoryMb <= 30 },
      },
      machine: {
        cpus: os.cpus().length,
        node: process.version,
        loadAverage: os.loadavg().map((l) => round(l, 2)),
        benchSeconds: round((Date.now() - startedAt) / 1000, 1),
      },
    };
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  } catch (e) {
    log(`failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exitCode = 1;
  } finally {
    const orgId = stack?.orgId;
    await stack?.close().catch(() => undefined);
    if (orgId) await removeImagesByLabel({ 'selfdevop.org': orgId }).catch(() => undefined);
    await run('docker', [
      'image',
      'prune',
      '-f',
      '--filter',
      `label=selfdevop.org=${orgId ?? 'none'}`,
    ]).catch(() => undefined);
    await daemon?.stop();
    clearTimeout(watchdog);
  }
}

await main();
