/**
 * The build-prune job on the real Docker Engine: four commits of a git service built and
 * deployed for real (git daemon, BuildKit, Caddy), then the prune removes the one image no
 * release needs, keeps the serving one, the rollback target and one a stopped container
 * still uses, and trims the build cache through `POST /build/prune`. The rollback after it
 * reuses its image: nothing is rebuilt.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SystemClock } from '../../adapters/clock/system.ts';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { SequenceIds } from '../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { HttpHealthProbe } from '../../adapters/probe/http.ts';
import { MemoryQueue } from '../../adapters/queue/memory.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { GitCliSource } from '../../adapters/source/git-cli.ts';
import { MemoryStore } from '../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../adapters/vault/memory.ts';
import { pruneBuildImages } from '../../core/builds/prune.ts';
import type { Release } from '../../core/models.ts';
import {
  createRelease,
  handleReleaseRetire,
  handleReleaseStep,
  releaseRetireQueue,
  releaseStepsQueue,
  rollbackRelease,
  type ReleaseDeps,
} from '../../core/releases/engine.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages } from '../support/docker.ts';
import {
  makeRepo,
  startGitDaemon,
  type TestGitServer,
  type TestRepo,
} from '../support/git-server.ts';
import { available } from '../support/services.ts';
import { aNode, aProject, aService, anEnvironment, anOrg } from '../core/releases/builders.ts';
import { deployer } from '../core/releases/harness.ts';

const run = promisify(execFile);
const ready = (await available('docker')) && (await available('caddy'));
const runId = randomBytes(4).toString('hex');
// An org of this run only: the prune acts on every image labelled with its org.
const orgId = `org_prune${runId}`;
const principal = { ...deployer, orgId };

async function imageIdOf(image: string): Promise<string | null> {
  try {
    return (await run('docker', ['image', 'inspect', '-f', '{{.Id}}', image])).stdout.trim();
  } catch {
    return null;
  }
}

describe.skipIf(!ready)('pruning built images on the real engine', () => {
  let caddy: TestCaddy;
  let daemon: TestGitServer;
  let deps: ReleaseDeps;
  let stops: (() => Promise<void>)[] = [];
  const serviceId = `svc_${runId}`;
  const holder = `sdo-prune-holder-${runId}`;
  let repo: TestRepo;

  beforeAll(async () => {
    await ensureTestImages();
    [caddy, daemon] = await Promise.all([startCaddy(), startGitDaemon()]);
    deps = {
      store: new MemoryStore(),
      runtime: new DockerRuntime(),
      edge: new CaddyEdgeRouter({ adminUrl: caddy.adminUrl, server: caddy.serverName }),
      queue: new MemoryQueue({ retryDelaySeconds: 0, pollIntervalMs: 5 }),
      vault: new MemoryKeyVault(),
      probe: new HttpHealthProbe(),
      clock: new SystemClock(),
      ids: new SequenceIds(),
      logger: new MemoryLogger(),
      source: new GitCliSource(),
      config: {
        edgeDomain: 'apps.example.test',
        migrationTimeoutMs: 20_000,
        maxStepAttempts: 2,
        // A cap this engine's cache is far under: the request runs, other suites' cache stays.
        build: { timeoutMs: 60_000, keepImages: 1, cacheMaxBytes: 100 * 1024 * 1024 * 1024 },
      },
    };
    repo = await makeRepo(daemon.root, `prune-${runId}`);
    await repo.commit({ Dockerfile: 'FROM selfdevop-test/app:v1\nCOPY n /n\n', n: '0\n' });
    await deps.store.withOrg(orgId, async (r) => {
      await r.orgs.insert(anOrg({ id: orgId }));
      await r.projects.insert(aProject({ orgId }));
      await r.environments.insert(anEnvironment({ orgId }));
      await r.services.insert(
        aService({
          id: serviceId,
          orgId,
          name: 'prune',
          image: 'prune',
          git: {
            url: daemon.url(`prune-${runId}`),
            ref: 'main',
            subdir: '',
            dockerfile: 'Dockerfile',
            buildArgs: {},
          },
          health: { intervalMs: 100, timeoutMs: 1000, successes: 1, deadlineMs: 15_000 },
          warmSeconds: 0,
          drainSeconds: 0,
        }),
      );
      await r.nodes.insert(aNode({ orgId }));
    });
    stops = [
      await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps)),
      await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps)),
    ];
  }, 120_000);

  afterAll(async () => {
    for (const stop of stops) await stop();
    await run('docker', ['rm', '-f', holder]).catch(() => undefined);
    const target = { dockerHost: 'unix:///var/run/docker.sock' };
    const runtime = new DockerRuntime();
    for (const c of await runtime.list(target, { 'selfdevop.service': serviceId }).catch(() => []))
      await runtime.remove(target, c.name).catch(() => undefined);
    const { stdout } = await run('docker', [
      'images',
      '-q',
      '--filter',
      `label=selfdevop.service=${serviceId}`,
    ]).catch(() => ({ stdout: '' }));
    for (const id of new Set(stdout.split('\n').filter(Boolean)))
      await run('docker', ['rmi', '-f', id]).catch(() => undefined);
    await Promise.all([caddy?.stop(), daemon?.stop()]);
  });

  const release = (id: string) =>
    deps.store.withOrg(orgId, async (x) => (await x.releases.get(id))!);
  const logOf = (id: string) =>
    deps.store.withOrg(orgId, async (x) =>
      (await x.releaseLogs.list(id, 0, 5000)).map((l) => l.line),
    );

  async function settle(id: string): Promise<Release> {
    for (let i = 0; i < 1200; i++) {
      const r = await release(id);
      if (r.status === 'completed' || r.status === 'failed') return r;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`release ${id} did not settle`);
  }

  it('keeps what the serving, rollback-target and a container need, removes the rest, and a rollback after it builds nothing', async () => {
    const done: Release[] = [];
    for (const i of [1, 2, 3, 4]) {
      if (i > 1) await repo.commit({ n: `${i}\n` });
      const r = await settle(
        (await createRelease(deps, principal, { serviceId, gitRef: 'main' })).id,
      );
      expect(r.status, r.error ?? '').toBe('completed');
      done.push(r);
    }
    const [one, two, three, four] = done as [Release, Release, Release, Release];
    // A stopped container made from the first image: the engine must keep that image.
    await run('docker', ['create', '--name', holder, one.image]);

    const report = await pruneBuildImages(deps);
    expect(report.removed).toEqual([{ node: 'node-1', image: two.image }]);
    expect(report.inUse).toEqual([`${one.image} on node-1`]);
    expect(report.skipped).toEqual([]);
    expect(await imageIdOf(two.image)).toBeNull();
    expect(await imageIdOf(one.image)).toBe(one.imageDigest);
    expect(await imageIdOf(three.image)).toBe(three.imageDigest);
    expect(await imageIdOf(four.image)).toBe(four.imageDigest);

    // The rollback target's image was kept: going back reuses it, nothing is built.
    const back = await rollbackRelease(deps, principal, { releaseId: four.id });
    const redeployed = await settle(back.redeploy!.id);
    expect(redeployed.status, redeployed.error ?? '').toBe('completed');
    const log = await logOf(redeployed.id);
    expect(log).toContain(`image ${three.image} is already on node node-1: reused, nothing built`);
    expect(log.filter((l) => l.startsWith('building '))).toEqual([]);
  }, 300_000);
});
