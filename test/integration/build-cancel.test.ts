/**
 * A cancel reaches a build in progress, for real: a release building a Dockerfile with a long
 * `RUN sleep` from a real git daemon on the real engine (BuildKit, then the legacy builder,
 * whose steps are containers) is cancelled mid-build. The step stops at once (the sleep is
 * killed, long before it would end), leaves no image, no container and no held build slot:
 * the next build on the node's only slot goes straight in.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SystemClock } from '../../adapters/clock/system.ts';
import { CaddyEdgeRouter } from '../../adapters/edge/caddy.ts';
import { SequenceIds } from '../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { HttpHealthProbe } from '../../adapters/probe/http.ts';
import { MemoryQueue } from '../../adapters/queue/memory.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { Builder } from '../../adapters/runtime/docker-build.ts';
import { GitCliSource } from '../../adapters/source/git-cli.ts';
import { MemoryStore } from '../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../adapters/vault/memory.ts';
import type { Release, ReleaseLogLine } from '../../core/models.ts';
import {
  cancelRelease,
  createRelease,
  handleReleaseRetire,
  handleReleaseStep,
  releaseRetireQueue,
  releaseStepsQueue,
  type ReleaseDeps,
} from '../../core/releases/engine.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages } from '../support/docker.ts';
import { makeRepo, startGitDaemon, type TestGitServer } from '../support/git-server.ts';
import { available, isCi } from '../support/services.ts';
import { aNode, aProject, aService, anEnvironment, anOrg } from '../core/releases/builders.ts';
import { deployer } from '../core/releases/harness.ts';

const run = promisify(execFile);
const ready = (await available('docker')) && (await available('caddy'));
if (!ready && isCi) throw new Error('build-cancel needs Docker and Caddy in CI');
if (!ready) console.warn('SKIPPED build-cancel: Docker Engine or Caddy not available here');
const runId = randomBytes(4).toString('hex');
const orgId = `org_bcancel${runId}`;
const principal = { ...deployer, orgId };
const host = { dockerHost: 'unix:///var/run/docker.sock' };

/** Pids of processes whose command line is `cmd`, read from /proc. */
async function processes(cmd: string): Promise<number[]> {
  const found: number[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const line = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (line.split('\0').join(' ').trim() === cmd) found.push(Number(pid));
  }
  return found;
}

describe.skipIf(!ready)('cancelling a release while it builds, on the real engine', () => {
  let caddy: TestCaddy;
  let daemon: TestGitServer;
  const stops: (() => Promise<void>)[] = [];
  const serviceIds: string[] = [];
  const markers: string[] = [];

  beforeAll(async () => {
    await ensureTestImages();
    [caddy, daemon] = await Promise.all([startCaddy(), startGitDaemon()]);
  }, 120_000);

  afterAll(async () => {
    for (const stop of stops) await stop();
    const runtime = new DockerRuntime();
    for (const serviceId of serviceIds) {
      for (const c of await runtime.list(host, { 'selfdevop.service': serviceId }).catch(() => []))
        await runtime.remove(host, c.name).catch(() => undefined);
      const { stdout } = await run('docker', [
        'images',
        '-q',
        '--filter',
        `label=selfdevop.service=${serviceId}`,
      ]).catch(() => ({ stdout: '' }));
      for (const id of new Set(stdout.split('\n').filter(Boolean)))
        await run('docker', ['rmi', '-f', id]).catch(() => undefined);
    }
    for (const marker of markers)
      for (const id of await containersRunning(marker)) await run('docker', ['rm', '-f', id]);
    await Promise.all([caddy?.stop(), daemon?.stop()]);
  });

  /** Containers (any state) whose command names `marker`: the legacy builder's step containers. */
  async function containersRunning(marker: string): Promise<string[]> {
    const { stdout } = await run('docker', [
      'ps',
      '-a',
      '--no-trunc',
      '--format',
      '{{.ID}} {{.Command}}',
    ]);
    return stdout
      .split('\n')
      .filter((l) => l.includes(`sleep ${marker}`))
      .map((l) => l.split(' ')[0]!);
  }

  async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>) {
    for (let i = 0; i < 1200; i++) {
      const v = await fn();
      if (v) return v;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`${what} did not happen`);
  }

  /** Release deps on the real engine with `builder`, one build slot on the node. */
  async function engineWith(builder: Builder, name: string) {
    const deps: ReleaseDeps = {
      store: new MemoryStore(),
      runtime: new DockerRuntime({ builder }),
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
        maxStepAttempts: 1,
        maxStepsPerOrg: 3,
        cancelPollMs: 200,
        build: { timeoutMs: 300_000, perNode: 1 },
      },
    };
    const org = `${orgId}${name}`;
    await deps.store.withOrg(org, async (r) => {
      await r.orgs.insert(anOrg({ id: org }));
      await r.projects.insert(aProject({ orgId: org }));
      await r.environments.insert(anEnvironment({ orgId: org }));
      await r.nodes.insert(aNode({ orgId: org }));
    });
    const marker = `${3_600_000 + Math.floor(Math.random() * 100_000)}`;
    markers.push(marker);
    const repo = await makeRepo(daemon.root, `cancel-${name}-${runId}`);
    // Never cached from an earlier run; the sleep would outlast the test many times over.
    await repo.commit({
      Dockerfile: `FROM selfdevop-test/app:v1\nENV RUN_ID=${runId}-${name}\nRUN sleep ${marker}\n`,
    });
    const serviceId = `svc_${name}${runId}`;
    serviceIds.push(serviceId);
    await deps.store.withOrg(org, (r) =>
      r.services.insert(
        aService({
          id: serviceId,
          orgId: org,
          name,
          image: name,
          git: {
            url: daemon.url(`cancel-${name}-${runId}`),
            ref: 'main',
            subdir: '',
            dockerfile: 'Dockerfile',
            buildArgs: {},
          },
          health: { intervalMs: 100, timeoutMs: 1000, successes: 1, deadlineMs: 15_000 },
          warmSeconds: 0,
          drainSeconds: 0,
        }),
      ),
    );
    stops.push(
      await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps), { concurrency: 3 }),
      await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps)),
    );
    const who = { ...principal, orgId: org };
    return {
      deps,
      marker,
      repo,
      serviceId,
      deploy: async () => (await createRelease(deps, who, { serviceId, gitRef: 'main' })).id,
      cancel: (releaseId: string) => cancelRelease(deps, who, { releaseId }),
      release: (id: string) => deps.store.withOrg(org, async (x) => (await x.releases.get(id))!),
      logOf: (id: string): Promise<ReleaseLogLine[]> =>
        deps.store.withOrg(org, (x) => x.releaseLogs.list(id, 0, 5000)),
    };
  }

  for (const builder of ['buildkit', 'legacy'] as const) {
    it(`${builder}: stops the build at once, kills its step, and leaves no image, container or slot`, async () => {
      const e = await engineWith(builder, builder === 'buildkit' ? 'bk' : 'legacy');
      const id = await e.deploy();
      // Mid-build: the RUN step's sleep is running on the engine.
      await until(
        'the build step running',
        async () => (await processes(`sleep ${e.marker}`)).length > 0,
      );
      const cancelled = await e.cancel(id);
      expect(cancelled.status).toBe('failed');
      expect(cancelled.error).toBe(`cancelled by user ${principal.actorId}`);

      const log = await until('the build step stopping', async () => {
        const lines = (await e.logOf(id)).map((l) => l.line);
        return lines.some((l) => l.startsWith('cancelled: ')) ? lines : null;
      });
      expect(log).toContain(`step build stopped at once: cancelled by user ${principal.actorId}`);
      expect(log.filter((l) => l.startsWith('release failed') || l.startsWith('built '))).toEqual(
        [],
      );
      // The step's process is killed with the build, not left to sleep out its hour.
      await until(
        'the sleep gone',
        async () => (await processes(`sleep ${e.marker}`)).length === 0,
      );
      // No image tagged or labelled for the service, no container (the legacy builder's step
      // container included).
      const images = await run('docker', [
        'images',
        '-q',
        '--filter',
        `label=selfdevop.service=${e.serviceId}`,
      ]);
      expect(images.stdout.trim()).toBe('');
      expect(await e.deps.runtime.localImage!(host, (await e.release(id)).image)).toBeNull();
      await until(
        'no step container',
        async () => (await containersRunning(e.marker)).length === 0,
      );
      expect(await e.deps.runtime.list(host, { 'selfdevop.service': e.serviceId })).toEqual([]);

      // The node's only slot is free: a quick build of the next commit goes straight in.
      await e.repo.commit({
        Dockerfile: `FROM selfdevop-test/app:v1\nENV RUN_ID=${runId}-${builder}-quick\n`,
      });
      const next = await e.deploy();
      const done = (await until('the next release settling', async () => {
        const r = await e.release(next);
        return r.status === 'completed' || r.status === 'failed' ? r : null;
      })) as Release;
      expect(done.status, done.error ?? '').toBe('completed');
      expect((await e.logOf(next)).some((l) => l.line.startsWith('waiting for a build slot'))).toBe(
        false,
      );
    }, 300_000);
  }
});
