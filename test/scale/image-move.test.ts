/**
 * Built images moving between real engines without a registry: a git-built service with
 * three replicas over the extra engines 1-3 (../shared/ci/multi-node.sh; never stopped
 * here) is built once and its image streamed engine to engine to the other two; a rollback
 * whose image was removed from a node brings it back from a node that has it, without a
 * build; a redeploy of a sha no node holds any more rebuilds it, and the log says which.
 * A real git daemon, real BuildKit builds, a real Caddy in front.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
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
import type { Release, Service } from '../../core/models.ts';
import {
  createRelease,
  handleReleaseRetire,
  handleReleaseStep,
  releaseRetireQueue,
  releaseStepsQueue,
  rollbackRelease,
  type ReleaseDeps,
} from '../../core/releases/engine.ts';
import { defaultHosts } from '../../core/releases/plan.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages } from '../support/docker.ts';
import {
  makeRepo,
  startGitDaemon,
  type TestGitServer,
  type TestRepo,
} from '../support/git-server.ts';
import { available, isCi } from '../support/services.ts';
import { aNode, aProject, aService, anEnvironment, anOrg } from '../core/releases/builders.ts';
import { deployer, orgId } from '../core/releases/harness.ts';

const run = promisify(execFile);
const sockets = [1, 2, 3].map((i) => `/run/sdo-node${i}/docker.sock`);
const nodesUp = sockets.every((s) => existsSync(s));
if (!nodesUp) {
  const why = 'engines 1-3 are not up: run ../shared/ci/multi-node.sh up 9 with MN_IMAGES';
  if (isCi) throw new Error(`CI must not skip: ${why}`);
  console.warn(`\n*** SKIPPING the image-move suite: ${why} ***\n`);
}
const ready = nodesUp && (await available('docker')) && (await available('caddy'));

const localSocket = '/var/run/docker.sock';
const runId = randomBytes(4).toString('hex');

/** `app:v1` (on every engine) with its version baked in and a file of its own: one new layer. */
const appFiles = (version: string): Record<string, string> => ({
  Dockerfile: [
    'FROM selfdevop-test/app:v1',
    `ENV APP_VERSION=${version}`,
    'COPY note.txt /note.txt',
    '',
  ].join('\n'),
  'note.txt': `run ${runId}, ${version}\n`,
});

/** GET through the edge with a Host header; a refused or cut request is data, not a throw. */
function get(
  port: number,
  host: string,
  path = '/version',
): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get(
      { host: '127.0.0.1', port, path, headers: { host }, agent: false, timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ status: 0, body: e.message }));
  });
}

/** The image id of `image` on the engine at `socket`, or null. */
async function imageIdOn(socket: string, image: string): Promise<string | null> {
  try {
    const { stdout } = await run('docker', [
      '-H',
      `unix://${socket}`,
      'image',
      'inspect',
      '-f',
      '{{.Id}}',
      image,
    ]);
    return stdout.trim();
  } catch {
    return null;
  }
}

const removeImageOn = (socket: string, image: string) =>
  run('docker', ['-H', `unix://${socket}`, 'rmi', '-f', image]).catch(() => undefined);

describe.skipIf(!ready)('built images move between real engines', () => {
  let caddy: TestCaddy;
  let daemon: TestGitServer;
  let deps: ReleaseDeps;
  let stops: (() => Promise<void>)[] = [];
  const services: Service[] = [];

  beforeAll(async () => {
    // The default engine's copies: app:v1 for the rollback service, node:base for the move test.
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
        build: { timeoutMs: 60_000, memoryMb: 512, cpus: 1 },
      },
    };
    await deps.store.withOrg(orgId, async (r) => {
      await r.orgs.insert(anOrg());
      await r.projects.insert(aProject());
      await r.environments.insert(anEnvironment());
      for (const i of [1, 2, 3])
        await r.nodes.insert(
          aNode({
            id: `node_00000${i}`,
            name: `sdo-node${i}`,
            dockerHost: `unix://${sockets[i - 1]}`,
            address: `10.213.0.1${i}`,
            labels: i === 3 ? { spread: 'yes', back: 'yes' } : { spread: 'yes' },
          }),
        );
      // The default engine is one more node; the rollback service runs on it and on node 3.
      await r.nodes.insert(
        aNode({
          id: 'node_000004',
          name: 'local',
          dockerHost: `unix://${localSocket}`,
          address: '127.0.0.1',
          labels: { back: 'yes' },
        }),
      );
    });
    stops = [
      await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps)),
      await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps)),
    ];
  }, 120_000);

  afterAll(async () => {
    for (const stop of stops) await stop();
    const runtime = new DockerRuntime();
    for (const socket of [...sockets, localSocket]) {
      const target = { dockerHost: `unix://${socket}` };
      for (const s of services) {
        for (const c of await runtime.list(target, { 'selfdevop.service': s.id }).catch(() => []))
          await runtime.remove(target, c.name).catch(() => undefined);
        const { stdout } = await run('docker', [
          '-H',
          `unix://${socket}`,
          'images',
          '-q',
          '--filter',
          `label=selfdevop.service=${s.id}`,
        ]).catch(() => ({ stdout: '' }));
        for (const id of new Set(stdout.split('\n').filter(Boolean)))
          await removeImageOn(socket, id);
      }
    }
    await Promise.all([caddy?.stop(), daemon?.stop()]);
  });

  async function gitService(name: string, repo: TestRepo, o: Partial<Service>): Promise<Service> {
    const service = aService({
      id: `svc_${randomBytes(4).toString('hex')}`,
      name,
      image: name,
      git: {
        url: daemon.url(
          repo.bare
            .split('/')
            .pop()!
            .replace(/\.git$/, ''),
        ),
        ref: 'main',
        subdir: '',
        dockerfile: 'Dockerfile',
        buildArgs: {},
      },
      health: { intervalMs: 100, timeoutMs: 1000, successes: 2, deadlineMs: 15_000 },
      warmSeconds: 0,
      drainSeconds: 1,
      ...o,
    });
    await deps.store.withOrg(orgId, (r) => r.services.insert(service));
    services.push(service);
    return service;
  }

  const release = (id: string) =>
    deps.store.withOrg(orgId, async (x) => (await x.releases.get(id))!);
  const logOf = (id: string) =>
    deps.store.withOrg(orgId, async (x) =>
      (await x.releaseLogs.list(id, 0, 5000)).map((l) => l.line),
    );

  async function settle(id: string): Promise<Release> {
    for (let i = 0; i < 2400; i++) {
      const r = await release(id);
      if (r.status === 'completed' || r.status === 'failed') return r;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`release ${id} did not settle`);
  }

  /** Waits until the containers of `r` are gone from every engine (its retirement ran). */
  async function retired(r: Release): Promise<void> {
    const runtime = new DockerRuntime();
    for (let i = 0; i < 300; i++) {
      let left = 0;
      for (const socket of [...sockets, localSocket])
        left += (
          await runtime.list({ dockerHost: `unix://${socket}` }, { 'selfdevop.release': r.id })
        ).length;
      if (left === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`release ${r.id} was not retired`);
  }

  const hostOf = (service: Service) =>
    defaultHosts({ service, environment: anEnvironment(), edgeDomain: 'apps.example.test' })[0]!;

  it('builds a 3-replica service once and streams its image to the two other engines', async () => {
    const repo = await makeRepo(daemon.root, `spread-${runId}`);
    const sha = await repo.commit(appFiles('one'));
    const service = await gitService('spread', repo, {
      replicas: 3,
      maxSurge: 3,
      placement: { labels: { spread: 'yes' } },
    });
    const { id } = await createRelease(deps, deployer, { serviceId: service.id, gitRef: 'main' });
    const done = await settle(id);
    const log = await logOf(id);
    expect(done.status, `${done.error}\n${log.join('\n')}`).toBe('completed');
    expect(done.gitSha).toBe(sha);
    const nodes = done.replicaSet!.replicas.map((r) => r.nodeId);
    expect(new Set(nodes).size).toBe(3);
    // Built once, on the release's node; moved to each of the others, with size and time.
    expect(log.filter((l) => l.startsWith('building '))).toHaveLength(1);
    const moves = log.filter((l) => l.startsWith('moved image '));
    expect(moves).toHaveLength(2);
    for (const m of moves)
      expect(m).toMatch(
        new RegExp(
          `^moved image ${done.image.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} from node \\S+ to node \\S+ \\(\\d+\\.\\d MB, \\d+\\.\\d s\\)$`,
        ),
      );
    // The same image id on every engine that runs a replica.
    const byNode = new Map(
      [1, 2, 3, 4].map((i) => [`node_00000${i}`, i <= 3 ? sockets[i - 1]! : localSocket]),
    );
    for (const nodeId of nodes)
      expect(await imageIdOn(byNode.get(nodeId)!, done.image)).toBe(done.imageDigest);
    // Every replica answers through the edge with the built version.
    const answers = new Set<string>();
    for (let i = 0; i < 9; i++) {
      const r = await get(caddy.httpPort, hostOf(service));
      expect(r.status, r.body).toBe(200);
      answers.add(r.body);
    }
    expect([...answers]).toEqual(['one']);
  }, 240_000);

  it('rolls back to a sha whose image was removed from a node by moving it from a node that has it, and rebuilds a sha no node holds', async () => {
    const repo = await makeRepo(daemon.root, `back-${runId}`);
    const sha1 = await repo.commit(appFiles('first'));
    const service = await gitService('back', repo, {
      replicas: 2,
      maxSurge: 2,
      placement: { labels: { back: 'yes' } },
    });
    const onNode = { node_000003: sockets[2]!, node_000004: localSocket } as Record<string, string>;
    const first = await settle(
      (await createRelease(deps, deployer, { serviceId: service.id, gitRef: 'main' })).id,
    );
    expect(first.status, first.error ?? '').toBe('completed');
    await repo.commit(appFiles('second'));
    const second = await settle(
      (await createRelease(deps, deployer, { serviceId: service.id, gitRef: 'main' })).id,
    );
    expect(second.status, second.error ?? '').toBe('completed');
    expect((await get(caddy.httpPort, hostOf(service))).body).toBe('second');

    // The node the first release was built on loses its image (an operator's prune, a
    // disk clean-up); the other still holds it.
    const builtOn = first.nodeId!;
    const other = Object.keys(onNode).find((n) => n !== builtOn)!;
    // Its containers are retired first (warm 0 s): an image a container uses is only untagged.
    await retired(first);
    await removeImageOn(onNode[builtOn]!, first.imageDigest!);
    expect(await imageIdOn(onNode[builtOn]!, first.image)).toBeNull();
    expect(await imageIdOn(onNode[other]!, first.image)).toBe(first.imageDigest);

    const rolled = await rollbackRelease(deps, deployer, { releaseId: second.id });
    expect(rolled.path).toBe('redeploy');
    const back = await settle(rolled.redeploy!.id);
    const log = await logOf(back.id);
    expect(back.status, `${back.error}\n${log.join('\n')}`).toBe('completed');
    expect(back.gitSha).toBe(sha1);
    expect(back.imageDigest).toBe(first.imageDigest);
    // Moved, not built: no build step output, and a move line naming the node it came from.
    expect(log.filter((l) => l.startsWith('building '))).toEqual([]);
    expect(log).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `^moved image \\S+ from node ${other === 'node_000004' ? 'local' : 'sdo-node3'} to node `,
        ),
      ),
    );
    for (const socket of Object.values(onNode))
      expect(await imageIdOn(socket, first.image)).toBe(first.imageDigest);
    expect((await get(caddy.httpPort, hostOf(service))).body).toBe('first');

    // Now no node has the second sha's image: its redeploy rebuilds it from the commit, and says so.
    await retired(second);
    for (const socket of Object.values(onNode)) await removeImageOn(socket, second.imageDigest!);
    const again = await settle(
      (await createRelease(deps, deployer, { serviceId: service.id, gitRef: second.gitSha! })).id,
    );
    const againLog = await logOf(again.id);
    expect(again.status, `${again.error}\n${againLog.join('\n')}`).toBe('completed');
    expect(againLog).toContainEqual(
      expect.stringMatching(new RegExp(`^rebuilding sha ${second.gitSha}: no node has its image`)),
    );
    expect(againLog.filter((l) => l.startsWith('building '))).toHaveLength(1);
    expect((await get(caddy.httpPort, hostOf(service))).body).toBe('second');
  }, 300_000);
  it('cancels a move that runs out of time or is aborted, and refuses an image the source lacks', async () => {
    const runtime = new DockerRuntime();
    const from = { dockerHost: `unix://${localSocket}` };
    const to = { dockerHost: `unix://${sockets[0]}` };
    // A base image node 1 lacks, tagged for this run so nothing else depends on it.
    const image = `selfdevop-test/move-${runId}:v1`;
    await run('docker', ['tag', 'selfdevop-test/node:base', image]);
    try {
      await expect(runtime.moveImage(from, to, image, { timeoutMs: 1 })).rejects.toThrow(
        `moving image ${image} did not finish in 0 s and was cancelled`,
      );
      const aborted = new AbortController();
      aborted.abort();
      await expect(
        runtime.moveImage(from, to, image, { timeoutMs: 60_000, signal: aborted.signal }),
      ).rejects.toThrow(`moving image ${image} was cancelled`);
      expect(await imageIdOn(sockets[0]!, image)).toBeNull();
      await expect(
        runtime.moveImage(from, to, `${image}-absent`, { timeoutMs: 60_000 }),
      ).rejects.toThrow(`image ${image}-absent is not on unix://${localSocket}: nothing to move`);
      // And a move that runs: the same id there, the whole archive counted.
      const moved = await runtime.moveImage(from, to, image, { timeoutMs: 120_000 });
      expect(moved.imageId).toBe(await imageIdOn(localSocket, image));
      expect(await imageIdOn(sockets[0]!, image)).toBe(moved.imageId);
      expect(moved.bytes).toBeGreaterThan(50 * 1024 * 1024);
    } finally {
      await removeImageOn(localSocket, image);
      await removeImageOn(sockets[0]!, image);
    }
  }, 180_000);
});
