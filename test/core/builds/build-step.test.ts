/**
 * The build step with every port in memory: where a ref is resolved, what is reused, what
 * a rollback of a built release does when the node lost its image, and how failures read.
 */
import { describe, expect, it } from 'vitest';
import { MemorySource } from '../../../adapters/source/memory.ts';
import { gitCredentialContext } from '../../../core/builds/git-source.ts';
import type { GitSource } from '../../../core/models.ts';
import { cancelRelease, createRelease, rollbackRelease } from '../../../core/releases/engine.ts';
import { aNode } from '../releases/builders.ts';
import { deployer, dockerHost, orgId, setup, type Harness } from '../releases/harness.ts';

const url = 'https://git.example.test/shop/web.git';
const sha = (c: string) => c.repeat(40);
const git: GitSource = {
  url,
  ref: 'main',
  subdir: 'app',
  dockerfile: 'Dockerfile',
  buildArgs: { A: '1' },
};
const files = { 'app/Dockerfile': 'FROM x\n', 'app/index.js': 'ok\n' };

async function harness(
  opts: { token?: string } = {},
): Promise<{ h: Harness; source: MemorySource }> {
  const h = await setup({ git, image: 'web-0abc12' }, { maxStepAttempts: 1 });
  const source = new MemorySource().addRepository(url, {
    refs: { main: sha('a'), next: sha('b') },
    commits: { [sha('a')]: files, [sha('b')]: files },
    ...(opts.token ? { token: opts.token } : {}),
  });
  h.deps.source = source;
  if (opts.token) {
    const sealed = await h.vault.seal(
      JSON.stringify({ token: opts.token }),
      gitCredentialContext(orgId, h.service.id),
    );
    await h.repos((r) =>
      r.services.update(h.service.id, { gitCredentialKind: 'token', sealedGitCredential: sealed }),
    );
  }
  return { h, source };
}

const logOf = (h: Harness, id: string) =>
  h.repos(async (r) => (await r.releaseLogs.list(id)).map((l) => l.line));

async function deployRef(h: Harness, gitRef?: string) {
  const r = await createRelease(h.deps, deployer, {
    serviceId: h.service.id,
    ...(gitRef ? { gitRef } : {}),
  });
  await h.drain();
  return h.release(r.id);
}

describe('a release built from git', () => {
  it('resolves the followed branch before queueing, builds <service>:<sha> with the source and build args, and serves it', async () => {
    const { h, source } = await harness({ token: 'the-token' });
    const queued = await createRelease(h.deps, deployer, { serviceId: h.service.id });
    expect(queued).toMatchObject({
      gitRef: 'main',
      gitSha: sha('a'),
      image: `web-0abc12:${sha('a')}`,
    });
    await h.drain();
    const done = await h.release(queued.id);
    expect(done.status, done.error ?? '').toBe('completed');
    expect(h.runtime.builds).toEqual([
      {
        tag: `web-0abc12:${sha('a')}`,
        dockerfile: 'Dockerfile',
        buildArgs: { A: '1' },
        labels: {
          'selfdevop.org': orgId,
          'selfdevop.service': h.service.id,
          'selfdevop.release': done.id,
          'selfdevop.git-sha': sha('a'),
        },
        memoryMb: 2048,
        cpus: 2,
        timeoutMs: 900_000,
        contextBytes: expect.any(Number),
      },
    ]);
    expect(h.runtime.builds[0]!.contextBytes).toBeGreaterThan(0);
    expect(done.imageDigest).toBe(
      await h.runtime.localImage({ dockerHost: 'unix:///var/run/docker.sock' }, done.image),
    );
    expect(source.open).toBe(0);
    expect(await logOf(h, done.id)).toEqual(
      expect.arrayContaining([
        `fetching ${url} at ${sha('a')}`,
        `[1/1] building web-0abc12:${sha('a')}`,
      ]),
    );
  });

  it('leaves the ref to the build step where the API cannot read repositories, and records the commit then', async () => {
    const { h } = await harness();
    const api = { ...h.deps, source: undefined };
    const queued = await createRelease(api, deployer, { serviceId: h.service.id, gitRef: 'next' });
    expect(queued).toMatchObject({ gitRef: 'next', gitSha: null, image: 'web-0abc12' });
    await h.drain();
    const done = await h.release(queued.id);
    expect(done.status, done.error ?? '').toBe('completed');
    expect(done).toMatchObject({ gitSha: sha('b'), image: `web-0abc12:${sha('b')}` });
    expect(await logOf(h, done.id)).toEqual(
      expect.arrayContaining([`resolving next of ${url}`, `next is ${sha('b')}`]),
    );
  });

  it('fails a release whose ref the build step cannot find, with the reason, and names an unknown ref at once where it can', async () => {
    const { h } = await harness();
    await expect(
      createRelease(h.deps, deployer, { serviceId: h.service.id, gitRef: 'gone' }),
    ).rejects.toMatchObject({ code: 'git_ref_not_found', kind: 'invalid' });
    const api = { ...h.deps, source: undefined };
    const queued = await createRelease(api, deployer, { serviceId: h.service.id, gitRef: 'gone' });
    await h.drain();
    const failed = await h.release(queued.id);
    expect(failed.status).toBe('failed');
    expect(failed.error).toBe(
      `gitRef: gone is not a branch or tag of ${url} (a commit is named by its full 40-character sha)`,
    );
  });

  it('names a refused credential at once', async () => {
    const { h } = await harness();
    h.deps.source = new MemorySource().addRepository(url, {
      refs: { main: sha('a') },
      commits: { [sha('a')]: files },
      token: 'needed',
    });
    await expect(
      createRelease(h.deps, deployer, { serviceId: h.service.id }),
    ).rejects.toMatchObject({
      code: 'git_access_denied',
    });
  });

  it('fails a build that fails, naming the instruction, and keeps the current release serving', async () => {
    const { h } = await harness();
    const good = await deployRef(h);
    expect(good.status).toBe('completed');
    h.runtime.setBuild({
      error: '[2/3] RUN npm test: exit code: 1',
      lines: ['RUN npm test', 'npm ERR! 1 failing'],
    });
    const bad = await deployRef(h, 'next');
    expect(bad.status).toBe('failed');
    expect(bad.error).toBe('build failed: [2/3] RUN npm test: exit code: 1');
    expect(await logOf(h, bad.id)).toEqual(expect.arrayContaining(['npm ERR! 1 failing']));
    const route = await h.edge.get(`sdo-${h.service.id}-env_000001`);
    expect(route?.upstreams).toEqual([good.upstream]);
  });

  it('stops a build in progress at once when its release is cancelled, and frees its node slot', async () => {
    const { h } = await harness();
    h.deps.config.cancelPollMs = 10;
    h.deps.config.build = { perNode: 1 };
    h.runtime.setBuild({ untilAborted: true });
    const r = await createRelease(h.deps, deployer, { serviceId: h.service.id });
    const draining = h.drain();
    for (let i = 0; i < 500 && h.runtime.buildsRunning === 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(h.runtime.buildsRunning).toBe(1);
    // The step's own move (queued → building) is no cancel: several polls later it still runs.
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(h.runtime.buildsRunning).toBe(1);
    const cancelled = await cancelRelease(h.deps, deployer, { releaseId: r.id });
    expect(cancelled.status).toBe('failed');
    // The build ends with the cancel, not after it: drain returns (the build never would).
    await draining;
    expect(h.runtime.buildsRunning).toBe(0);
    const log = await logOf(h, r.id);
    expect(log).toContain(`step build stopped at once: cancelled by user ${deployer.actorId}`);
    expect(log).toContain('cancelled: what its steps had started is undone');
    expect(log.filter((l) => l.startsWith('release failed'))).toEqual([]);
    const done = await h.release(r.id);
    expect(done).toMatchObject({
      status: 'failed',
      error: `cancelled by user ${deployer.actorId}`,
    });
    const step = await h.repos(async (x) =>
      (await x.releaseSteps.list(r.id)).find((s) => s.name === 'build'),
    );
    expect(step).toMatchObject({
      status: 'failed',
      error: `stopped: cancelled by user ${deployer.actorId}`,
    });
    // The node's only slot is free: the next build goes straight in.
    h.runtime.setBuild({});
    const next = await createRelease(h.deps, deployer, { serviceId: h.service.id });
    await h.drain();
    expect((await h.release(next.id)).status).toBe('completed');
    expect((await logOf(h, next.id)).some((l) => l.startsWith('waiting for a build slot'))).toBe(
      false,
    );
  });

  it("stops an image move to a replica's node at once when its release is cancelled, and removes what started", async () => {
    const { h } = await harness();
    h.deps.config.cancelPollMs = 10;
    await h.repos((r) =>
      r.nodes.insert(
        aNode({ id: 'node_000002', name: 'node-2', dockerHost: 'tcp://10.0.0.2:2376' }),
      ),
    );
    await h.repos((r) => r.services.update(h.service.id, { replicas: 2, maxSurge: 2 }));
    h.runtime.holdMoves = true;
    const r = await createRelease(h.deps, deployer, { serviceId: h.service.id });
    const draining = h.drain();
    for (let i = 0; i < 500 && h.runtime.movesRunning === 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 5));
    expect(h.runtime.movesRunning).toBe(1);
    await cancelRelease(h.deps, deployer, { releaseId: r.id });
    await draining;
    expect(h.runtime.movesRunning).toBe(0);
    expect(h.runtime.moves).toEqual([]);
    const log = await logOf(h, r.id);
    expect(log).toContain(
      `step start_candidate stopped at once: cancelled by user ${deployer.actorId}`,
    );
    expect(log.filter((l) => l.startsWith('release failed'))).toEqual([]);
    expect(log).toContain('cancelled: what its steps had started is undone');
    // The replica that started on the release's own node is gone with the clean-up.
    for (const host of [dockerHost, 'tcp://10.0.0.2:2376'])
      expect(await h.runtime.list({ dockerHost: host }, { 'selfdevop.release': r.id })).toEqual([]);
  });

  it('reuses the image of a sha the node has, and a rollback to a retired built release rebuilds it from its sha when the node lost it', async () => {
    const { h } = await harness();
    const first = await deployRef(h, 'main');
    const second = await deployRef(h, 'next');
    expect(second.status).toBe('completed');
    const again = await deployRef(h, sha('a'));
    expect(again.status).toBe('completed');
    expect(h.runtime.builds.map((b) => b.tag)).toEqual([
      `web-0abc12:${sha('a')}`,
      `web-0abc12:${sha('b')}`,
    ]);
    expect(await logOf(h, again.id)).toContain(
      `image web-0abc12:${sha('a')} is already on node node-1: reused, nothing built`,
    );
    expect(again.imageDigest).toBe(first.imageDigest);

    // The release `again` replaced retires; then the node loses its image.
    h.clock.advance(h.service.warmSeconds * 1000 + 1);
    await h.retireDue();
    h.runtime.removeImage(`web-0abc12:${sha('b')}`);
    const result = await rollbackRelease(h.deps, deployer, { releaseId: again.id });
    expect(result.path).toBe('redeploy');
    await h.drain();
    const back = await h.release(result.redeploy!.id);
    expect(back.status, back.error ?? '').toBe('completed');
    expect(back).toMatchObject({
      gitRef: sha('b'),
      gitSha: sha('b'),
      image: `web-0abc12:${sha('b')}`,
    });
    expect(h.runtime.builds.map((b) => b.tag)).toEqual([
      `web-0abc12:${sha('a')}`,
      `web-0abc12:${sha('b')}`,
      `web-0abc12:${sha('b')}`,
    ]);
    expect(await logOf(h, back.id)).toContainEqual(
      expect.stringMatching(new RegExp(`^rebuilding sha ${sha('b')}: no node has its image`)),
    );
  });

  it("moves a built image to the other replicas' nodes, and a rollback brings it from a node that still has it instead of rebuilding", async () => {
    const { h } = await harness();
    await h.repos((r) =>
      r.nodes.insert(
        aNode({ id: 'node_000002', name: 'node-2', dockerHost: 'tcp://10.0.0.2:2376' }),
      ),
    );
    await h.repos((r) => r.services.update(h.service.id, { replicas: 2, maxSurge: 2 }));
    const first = await deployRef(h, 'main');
    expect(first.status, first.error ?? '').toBe('completed');
    const built = h.runtime.builds.length;
    const other = first.replicaSet!.replicas.find((r) => r.nodeId !== first.nodeId)!.nodeId;
    const hostOf = (id: string) => (id === 'node_000002' ? 'tcp://10.0.0.2:2376' : dockerHost);
    expect(h.runtime.moves).toEqual([
      { from: hostOf(first.nodeId!), to: hostOf(other), image: `web-0abc12:${sha('a')}` },
    ]);
    expect(await logOf(h, first.id)).toContainEqual(
      expect.stringMatching(
        /^moved image web-0abc12:a{40} from node node-\d to node node-\d \(1\.0 MB, \d+\.\d s\)$/,
      ),
    );
    const second = await deployRef(h, 'next');
    expect(second.status).toBe('completed');
    // The first release's containers are gone (retired), so a rollback redeploys its image; a
    // warm one would only move the edge back to containers still running.
    for (const r of first.replicaSet!.replicas)
      await h.runtime.remove({ dockerHost: hostOf(r.nodeId) }, r.containerId!);
    // The node the first sha was built on loses it; the other keeps it.
    h.runtime.dropImage(hostOf(first.nodeId!), `web-0abc12:${sha('a')}`);
    const result = await rollbackRelease(h.deps, deployer, { releaseId: second.id });
    expect(result.path).toBe('redeploy');
    await h.drain();
    const back = await h.release(result.redeploy!.id);
    expect(back.status, back.error ?? '').toBe('completed');
    expect(back.imageDigest).toBe(first.imageDigest);
    expect(h.runtime.builds.length).toBe(built + 1);
    expect(h.runtime.moves.slice(-1)).toEqual([
      { from: hostOf(other), to: hostOf(first.nodeId!), image: `web-0abc12:${sha('a')}` },
    ]);
  });

  it('refuses a ref for a service without a git source, and both an image and a ref', async () => {
    const { h } = await harness();
    await h.repos((r) => r.services.update(h.service.id, { git: null }));
    await expect(
      createRelease(h.deps, deployer, { serviceId: h.service.id, gitRef: 'main' }),
    ).rejects.toThrow(/^gitRef: the service has no git source to build/);
    await expect(createRelease(h.deps, deployer, { serviceId: h.service.id })).rejects.toThrow(
      /^image: is required \(the service has no git source to build\)/,
    );
    await expect(
      createRelease(h.deps, deployer, {
        serviceId: h.service.id,
        image: 'shop/web:1',
        gitRef: 'main',
      }),
    ).rejects.toThrow(/^gitRef: give an image or a gitRef, not both/);
  });
});

describe('what a build sends', () => {
  async function build(commit: Record<string, string>, limits: Record<string, unknown> = {}) {
    const { h } = await harness();
    h.deps.config = { ...h.deps.config, build: { ...h.deps.config.build, ...limits } };
    const source = new MemorySource().addRepository(url, {
      refs: { main: sha('c') },
      commits: { [sha('c')]: commit },
    });
    h.deps.source = source;
    const r = await deployRef(h, 'main');
    return { h, r, source, log: await logOf(h, r.id) };
  }

  it('writes a Dockerfile for a Node.js app without one, and names what a zero-config build lacks', async () => {
    const { h, r, source, log } = await build({
      'app/package.json': '{"scripts":{"start":"node server.js"}}',
      'app/package-lock.json': '{}',
      'app/server.js': '',
    });
    expect(r.status, r.error ?? '').toBe('completed');
    expect(h.runtime.builds[0]!.dockerfile).toBe('.selfdevop.Dockerfile');
    expect(log).toContain(
      'no app/Dockerfile: zero-config Node.js build on selfdevop/node-build:24 (npm ci from package-lock.json, npm start)',
    );
    expect(source.open).toBe(0);

    const noLock = await build({ 'app/package.json': '{"scripts":{"start":"x"}}' });
    expect(noLock.r.status).toBe('failed');
    expect(noLock.r.error).toContain('no lockfile beside app/package.json');
    const nothing = await build({ 'app/index.html': 'hi' });
    expect(nothing.r.error).toBe(
      `Dockerfile app/Dockerfile is not in commit ${sha('c')}, and there is no app/package.json for a zero-config Node.js build`,
    );
  });

  it('leaves out what .dockerignore names, and fails a context over the cap naming it', async () => {
    const big = 'x'.repeat(4096);
    const { h, r } = await build({
      'app/Dockerfile': 'FROM x\n',
      'app/.dockerignore': 'big\n',
      'app/big': big,
    });
    expect(r.status, r.error ?? '').toBe('completed');
    expect(h.runtime.builds[0]!.contextBytes).toBeLessThan(4096);
    const over = await build(
      { 'app/Dockerfile': 'FROM x\n', 'app/big': big },
      { maxSourceBytes: 1024 },
    );
    expect(over.r.status).toBe('failed');
    expect(over.r.error).toBe(
      'the build context is 4.0 KB, over the cap of 1.0 KB (BUILD_MAX_SOURCE_MB): leave large files out with .dockerignore, or raise the cap',
    );
  });
});

describe('a build sent while its source is fetched', () => {
  /**
   * The memory source as one that writes checkouts: the build goes to the engine before the
   * fetch ends. Each fetch waits for `release()`; `events` says in which order things came.
   */
  function gated(commits: Record<string, Record<string, string>>) {
    const inner = new MemorySource().addRepository(url, {
      refs: { main: sha('c') },
      commits,
    });
    const events: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    // A build step that never sends early still gets its source, later.
    setTimeout(release, 300);
    const source = Object.assign(Object.create(inner) as MemorySource, {
      checksOut: true,
      async fetch(...args: Parameters<MemorySource['fetch']>) {
        events.push('fetch started');
        await gate;
        try {
          return await inner.fetch(...args);
        } finally {
          events.push('fetched');
        }
      },
    });
    return { source, inner, events, release };
  }

  async function run(commit: Record<string, string>) {
    const { h } = await harness();
    const g = gated({ [sha('c')]: commit });
    h.deps.source = g.source;
    const build = h.runtime.build.bind(h.runtime);
    h.runtime.build = (target, spec, onLine) => {
      g.events.push(`build sent naming ${spec.dockerfile}`);
      // Released once the engine has the request: the fetch ends after it.
      setTimeout(g.release, 20);
      return build(target, spec, onLine);
    };
    const r = await deployRef(h, 'main');
    return { h, r, events: g.events, inner: g.inner, log: await logOf(h, r.id) };
  }

  it('sends the build before the fetch ends, and logs in order: the fetch, the context, the build, its output', async () => {
    const { h, r, events, inner, log } = await run({
      'app/Dockerfile': 'FROM x\n',
      'app/index.js': 'ok\n',
    });
    expect(r.status, r.error ?? '').toBe('completed');
    expect(events).toEqual(['fetch started', 'build sent naming Dockerfile', 'fetched']);
    expect(h.runtime.builds.map((b) => [b.tag, b.dockerfile])).toEqual([
      [`web-0abc12:${sha('c')}`, 'Dockerfile'],
    ]);
    expect(h.runtime.builds[0]!.contextBytes).toBeGreaterThan(0);
    const at = (prefix: string) => log.findIndex((l) => l.startsWith(prefix));
    expect(at('fetching ')).toBeGreaterThanOrEqual(0);
    expect(at('build context: 2 files')).toBeGreaterThan(at('fetching '));
    expect(at('building ')).toBeGreaterThan(at('build context: '));
    expect(at('[1/1] building ')).toBeGreaterThan(at('building '));
    expect(at('built ')).toBeGreaterThan(at('[1/1] building '));
    expect(inner.open).toBe(0);
  });

  it('drops the build sent for a commit without a Dockerfile and builds once with the one written for it', async () => {
    const { h, r, events, inner, log } = await run({
      'app/package.json': '{"scripts":{"start":"node server.js"}}',
      'app/package-lock.json': '{}',
      'app/server.js': '',
    });
    expect(r.status, r.error ?? '').toBe('completed');
    expect(events).toEqual([
      'fetch started',
      'build sent naming Dockerfile',
      'fetched',
      'build sent naming .selfdevop.Dockerfile',
    ]);
    expect(h.runtime.builds.map((b) => b.dockerfile)).toEqual(['.selfdevop.Dockerfile']);
    expect(log.filter((l) => l.startsWith('building '))).toEqual([
      `building web-0abc12:${sha('c')} on node node-1 from app/.selfdevop.Dockerfile (timeout 900 s, memory 2048 MB, cpus 2)`,
    ]);
    expect(log.filter((l) => l.startsWith('[1/1] building '))).toHaveLength(1);
    expect(inner.open).toBe(0);
  });

  it('ends the build sent when the fetch fails, with the fetch named and nothing built', async () => {
    const { h, r, events } = await run({ 'app/index.html': 'hi' });
    expect(r.status).toBe('failed');
    expect(r.error).toBe(
      `Dockerfile app/Dockerfile is not in commit ${sha('c')}, and there is no app/package.json for a zero-config Node.js build`,
    );
    expect(events).toEqual(['fetch started', 'build sent naming Dockerfile', 'fetched']);
    expect(h.runtime.builds).toEqual([]);
    expect(h.runtime.buildsRunning).toBe(0);
  });
});
