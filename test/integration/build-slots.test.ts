/**
 * At most N builds per node, for real: three services' builds from a real git daemon on the
 * real engine with one slot. The second waits while the first builds and its log says for
 * whom; the third, queued behind it, is cancelled while it waits and leaves nothing behind
 * (no build, no image, no container, no slot).
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
import { available } from '../support/services.ts';
import { aNode, aProject, aService, anEnvironment, anOrg } from '../core/releases/builders.ts';
import { deployer } from '../core/releases/harness.ts';

const run = promisify(execFile);
const ready = (await available('docker')) && (await available('caddy'));
const runId = randomBytes(4).toString('hex');
const orgId = `org_slots${runId}`;
const principal = { ...deployer, orgId };
const names = ['one', 'two', 'three'] as const;

describe.skipIf(!ready)('builds per node on the real engine', () => {
  let caddy: TestCaddy;
  let daemon: TestGitServer;
  let deps: ReleaseDeps;
  let stops: (() => Promise<void>)[] = [];
  const serviceIds = names.map((n) => `svc_${n}${runId}`);

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
        maxStepsPerOrg: 3,
        build: { timeoutMs: 60_000, perNode: 1 },
      },
    };
    await deps.store.withOrg(orgId, async (r) => {
      await r.orgs.insert(anOrg({ id: orgId }));
      await r.projects.insert(aProject({ orgId }));
      await r.environments.insert(anEnvironment({ orgId }));
      await r.nodes.insert(aNode({ orgId }));
    });
    for (const [i, name] of names.entries()) {
      const repo = await makeRepo(daemon.root, `slots-${name}-${runId}`);
      // A build that takes a few seconds, never cached from an earlier run.
      await repo.commit({
        Dockerfile: `FROM selfdevop-test/app:v1\nENV RUN_ID=${runId}-${name}\nRUN sleep 3\n`,
      });
      await deps.store.withOrg(orgId, (r) =>
        r.services.insert(
          aService({
            id: serviceIds[i]!,
            orgId,
            name,
            image: name,
            git: {
              url: daemon.url(`slots-${name}-${runId}`),
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
    }
    stops = [
      await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps), { concurrency: 3 }),
      await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps)),
    ];
  }, 120_000);

  afterAll(async () => {
    for (const stop of stops) await stop();
    const target = { dockerHost: 'unix:///var/run/docker.sock' };
    const runtime = new DockerRuntime();
    for (const serviceId of serviceIds) {
      for (const c of await runtime
        .list(target, { 'selfdevop.service': serviceId })
        .catch(() => []))
        await runtime.remove(target, c.name).catch(() => undefined);
      const { stdout } = await run('docker', [
        'images',
        '-q',
        '--filter',
        `label=selfdevop.service=${serviceId}`,
      ]).catch(() => ({ stdout: '' }));
      for (const id of new Set(stdout.split('\n').filter(Boolean)))
        await run('docker', ['rmi', '-f', id]).catch(() => undefined);
    }
    await Promise.all([caddy?.stop(), daemon?.stop()]);
  });

  const release = (id: string) =>
    deps.store.withOrg(orgId, async (x) => (await x.releases.get(id))!);
  const logOf = (id: string): Promise<ReleaseLogLine[]> =>
    deps.store.withOrg(orgId, (x) => x.releaseLogs.list(id, 0, 5000));

  async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>) {
    for (let i = 0; i < 1200; i++) {
      const v = await fn();
      if (v) return v;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`${what} did not happen`);
  }

  const settled = (id: string) =>
    until(`release ${id} settling`, async () => {
      const r = await release(id);
      return r.status === 'completed' || r.status === 'failed' ? r : null;
    });

  it('runs one build at a time on the node, says whom the others wait for, and a cancel while waiting leaves nothing', async () => {
    const deploy = async (i: number) =>
      (await createRelease(deps, principal, { serviceId: serviceIds[i]!, gitRef: 'main' })).id;
    const first = await deploy(0);
    await until('the first build starting', async () =>
      (await logOf(first)).some((l) => l.line.startsWith('building ')),
    );
    const second = await deploy(1);
    const third = await deploy(2);
    const waiting = (ahead: number) =>
      `waiting for a build slot on node node-1: 1 of 1 in use (release ${first}), ${ahead} waiting ahead`;
    await until('the second waiting', async () =>
      (await logOf(second)).some((l) => l.line === waiting(0)),
    );
    await until('the third waiting', async () =>
      (await logOf(third)).some((l) => l.line === waiting(1)),
    );
    // Cancelled while it waits for its turn.
    const cancelled = await cancelRelease(deps, principal, { releaseId: third });
    expect(cancelled.status).toBe('failed');

    const [one, two] = (await Promise.all([settled(first), settled(second)])) as Release[];
    expect(one!.status, one!.error ?? '').toBe('completed');
    expect(two!.status, two!.error ?? '').toBe('completed');
    // The second build started only after the first had ended.
    const firstLog = await logOf(first);
    const secondLog = await logOf(second);
    const builtAt = firstLog.find((l) => l.line.startsWith('built '))!.at;
    const startedAt = secondLog.find((l) => l.line.startsWith('building '))!.at;
    expect(startedAt >= builtAt).toBe(true);

    // The cancelled one built nothing and left nothing: no build, image or container.
    await until('the cancel clean-up', async () =>
      (await logOf(third)).some((l) => l.line.startsWith('cancelled: ')),
    );
    expect((await logOf(third)).filter((l) => l.line.startsWith('building '))).toEqual([]);
    const images = await run('docker', [
      'images',
      '-q',
      '--filter',
      `label=selfdevop.service=${serviceIds[2]}`,
    ]);
    expect(images.stdout.trim()).toBe('');
    expect(
      await deps.runtime.list(
        { dockerHost: 'unix:///var/run/docker.sock' },
        { 'selfdevop.service': serviceIds[2]! },
      ),
    ).toEqual([]);
    // And holds no slot: the next build of it goes straight in.
    const again = await settled(await deploy(2));
    expect(again.status, again.error ?? '').toBe('completed');
    expect((await logOf(again.id)).some((l) => l.line.startsWith('waiting for a build slot'))).toBe(
      false,
    );
  }, 300_000);
});
