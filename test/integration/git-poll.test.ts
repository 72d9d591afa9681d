/**
 * Git sources for real, with the release engine's data plane in memory: PostgreSQL (the
 * store, its row-level security and the `selfdevop_git_polls_due` look-up), `git daemon`
 * for polled repositories, the test sshd for an ssh repository, and the `git` CLI.
 *
 * - SSH host keys: the first contact pins the server's key (audited), later builds require
 *   it, and a server presenting another key fails the release naming the host and both
 *   fingerprints while the serving release keeps serving.
 * - Polling: a due service's moved head is deployed exactly once, a head pushed during a
 *   release in flight deploys when it ends (the latest wins), a commit a deploy already
 *   took is not deployed again, and a poll that fails records why.
 */
import { execFile } from 'node:child_process';
import os from 'node:os';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { GitCliSource } from '../../adapters/source/git-cli.ts';
import { PostgresStore } from '../../adapters/store/postgres.ts';
import { hostKeyFingerprint } from '../../core/builds/host-keys.ts';
import { pollGitSources, pollService } from '../../core/builds/poll.ts';
import type { GitSource } from '../../core/models.ts';
import { scheduledJobs, type WorkerSystem } from '../../core/queues.ts';
import { handleReleaseStep } from '../../core/releases/advance.ts';
import { createRelease } from '../../core/releases/engine.ts';
import { releaseStepsQueue, type ReleaseStepMessage } from '../../core/releases/deps.ts';
import { aService } from '../core/releases/builders.ts';
import { deployer, orgId, setup, type Harness } from '../core/releases/harness.ts';
import { createTestDatabase } from '../support/db.ts';
import { makeRepo, startGitDaemon, type TestGitServer } from '../support/git-server.ts';
import { isCi } from '../support/services.ts';
import { sshdBin, startSshd, type TestSshd } from '../support/sshd.ts';

const run = promisify(execFile);
const haveSshd = await run(sshdBin, ['-V']).then(
  () => true,
  (e: { stderr?: string }) => /OpenSSH/.test(e.stderr ?? ''),
);
if (!haveSshd) {
  console.warn(`SKIPPED (ssh part): no sshd at ${sshdBin}; install Debian's openssh-server`);
  if (isCi) throw new Error(`CI must run the SSH host-key tests: no sshd at ${sshdBin}`);
}

const dockerfile = { Dockerfile: 'FROM scratch\n' };

describe('git sources on PostgreSQL with real git servers', () => {
  let daemon: TestGitServer;
  let sshd: TestSshd | undefined;
  const cleanups: (() => Promise<void>)[] = [];
  let n = 0;

  beforeAll(async () => {
    [daemon, sshd] = await Promise.all([
      startGitDaemon(),
      haveSshd ? startSshd() : Promise.resolve(undefined),
    ]);
  });
  afterAll(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
    await Promise.all([daemon?.stop(), sshd?.stop()]);
  });

  /** A harness on a database of its own, with the real git CLI as its source. */
  async function harness(git: GitSource): Promise<Harness> {
    const db = await createTestDatabase(`git_poll_${++n}`);
    await migrate(db.url);
    const store = PostgresStore.fromUrl(db.url);
    cleanups.push(db.drop, () => store.close());
    const h = await setup(
      { ...aService({ id: `svc_0000gitpoll${n}`, name: `web${n}` }), git, image: `web${n}-poll` },
      { maxStepAttempts: 1 },
      { store },
    );
    h.deps.source = new GitCliSource();
    return h;
  }

  /** Delivers step messages through the workers' handler, so a release that ends starts the commit wanted meanwhile. */
  async function work(h: Harness): Promise<void> {
    const handler = handleReleaseStep(h.deps);
    for (let guard = 0; guard < 300; guard++) {
      const next = h.queue.of(releaseStepsQueue).find((s) => !s.handled);
      if (!next) return;
      next.handled = true;
      await handler({ id: `m${guard}`, payload: next.payload as ReleaseStepMessage, attempt: 1 });
    }
    throw new Error('more than 300 step messages');
  }

  const releasesOf = (h: Harness) =>
    h.repos(async (r) => (await r.releases.list({ limit: 50 }, { serviceId: h.service.id })).items);

  describe.skipIf(!haveSshd)('an ssh repository', () => {
    let url: string;
    let first: string;
    let port: string;
    let repo: Awaited<ReturnType<typeof makeRepo>>;

    beforeAll(async () => {
      repo = await makeRepo(daemon.root, 'over-ssh');
      first = await repo.commit({ ...dockerfile, 'v.txt': '1' });
      port = new URL(sshd!.dockerHost).port;
      url = `ssh://${os.userInfo().username}@127.0.0.1:${port}${repo.bare}`;
    });

    async function sshHarness(): Promise<Harness> {
      const h = await harness({
        url,
        ref: 'main',
        subdir: '',
        dockerfile: 'Dockerfile',
        buildArgs: {},
      });
      const sealed = await h.vault.seal(
        JSON.stringify({ privateKey: sshd!.clientKey }),
        `${h.service.orgId}:git:${h.service.id}`,
      );
      await h.repos((r) =>
        r.services.update(h.service.id, {
          gitCredentialKind: 'deploy_key',
          sealedGitCredential: sealed,
        }),
      );
      return h;
    }

    it('pins the server key on first contact, audits it, and builds with it required', async () => {
      const h = await sshHarness();
      const release = await createRelease(h.deps, deployer, { serviceId: h.service.id });
      expect(release.gitSha).toBe(first);
      const service = await h.repos(async (r) => (await r.services.get(h.service.id))!);
      expect(service.git?.knownHosts).toBe(`[127.0.0.1]:${port} ${sshd!.hostKey}`);
      const audit = await h.repos(
        async (r) =>
          (await r.audit.list({ limit: 10 }, { action: 'service.git_host_key_pinned' })).items,
      );
      expect(audit.map((a) => [a.actorType, a.actorId, a.data])).toEqual([
        [
          'system',
          'git-host-keys',
          {
            host: `127.0.0.1:${port}`,
            hostKeys: [`ssh-ed25519 ${hostKeyFingerprint(sshd!.hostKey.split(' ')[1]!)}`],
          },
        ],
      ]);
      await work(h);
      expect((await h.release(release.id)).status).toBe('completed');
    });

    it('fails a release when the server presents another key, naming both fingerprints, and keeps the serving release', async () => {
      const h = await sshHarness();
      const v1 = await createRelease(h.deps, deployer, { serviceId: h.service.id });
      await work(h);
      expect((await h.release(v1.id)).status).toBe('completed');
      const routeBefore = await h.edge.list();
      // The pin names the key the server had; the server now presents another one (as after
      // a rotation, or someone in the middle): the pin is set to the other key of the test sshd.
      await h.repos(async (r) => {
        const s = (await r.services.get(h.service.id))!;
        await r.services.update(h.service.id, {
          git: { ...s.git!, knownHosts: `[127.0.0.1]:${port} ${sshd!.otherHostKey}` },
        });
      });
      const second = await repo.commit({ 'v.txt': '2' });
      const message = `the SSH host key of 127.0.0.1:${port} changed: pinned ssh-ed25519 ${hostKeyFingerprint(sshd!.otherHostKey.split(' ')[1]!)}, the server presented ${hostKeyFingerprint(sshd!.hostKey.split(' ')[1]!)}; nothing was fetched. If the server's key was rotated, set the service's git.knownHosts to its new key (or null to pin the next one seen)`;
      // Where the API reads repositories: refused before anything is queued.
      await expect(
        createRelease(h.deps, deployer, { serviceId: h.service.id }),
      ).rejects.toMatchObject({ code: 'git_host_key_changed', message });
      // Where it cannot (the cloud's API function): the build step fails the release.
      const v2 = await createRelease({ ...h.deps, source: undefined }, deployer, {
        serviceId: h.service.id,
        gitRef: second,
      });
      await work(h);
      const failed = await h.release(v2.id);
      expect(failed.status).toBe('failed');
      expect(failed.error).toBe(message);
      expect((await h.release(v1.id)).status).toBe('completed');
      expect(await h.edge.list()).toEqual(routeBefore);
      // The pin was not replaced by what the server presented.
      const service = await h.repos(async (r) => (await r.services.get(h.service.id))!);
      expect(service.git?.knownHosts).toBe(`[127.0.0.1]:${port} ${sshd!.otherHostKey}`);
    });
  });

  describe('polling the followed branch', () => {
    async function polled(interval: number | null = 60) {
      const name = `polled-${++n}`;
      const repo = await makeRepo(daemon.root, name);
      const head = await repo.commit({ ...dockerfile, 'v.txt': '1' });
      const h = await harness({
        url: daemon.url(name),
        ref: 'main',
        subdir: '',
        dockerfile: 'Dockerfile',
        buildArgs: {},
        pollIntervalSeconds: interval,
      });
      return { h, repo, head };
    }

    it('deploys a moved head once, and asks again only when the interval passed', async () => {
      const { h, repo, head } = await polled();
      const mine = (o: { serviceId: string }) => o.serviceId === h.service.id;
      const polledAt = h.clock.now().toISOString();
      const [outcome] = (await pollGitSources(h.deps)).filter(mine);
      expect(outcome).toMatchObject({ status: 'deploying', sha: head });
      await work(h);
      const [release] = await releasesOf(h);
      expect(release).toMatchObject({ gitSha: head, status: 'completed' });
      expect(await h.repos((r) => r.gitPolls.get(h.service.id))).toEqual({
        serviceId: h.service.id,
        polledAt,
        sha: head,
        error: null,
        releaseId: release!.id,
      });
      // Not due before its interval: nothing asked.
      // (The release itself moved the manual clock on: its health checks wait.)
      h.clock.advance(59_000 - (h.clock.now().getTime() - Date.parse(polledAt)));
      expect((await pollGitSources(h.deps)).filter(mine)).toEqual([]);
      h.clock.advance(1_000);
      expect((await pollGitSources(h.deps)).filter(mine)).toEqual([
        { serviceId: h.service.id, status: 'unchanged', sha: head },
      ]);
      const next = await repo.commit({ 'v.txt': '2' });
      h.clock.advance(60_000);
      expect((await pollGitSources(h.deps)).filter(mine)).toMatchObject([
        { status: 'deploying', sha: next },
      ]);
      await work(h);
      expect((await releasesOf(h)).map((r) => [r.gitSha, r.status])).toEqual([
        [head, 'completed'],
        [next, 'completed'],
      ]);
    });

    it('leaves a head moved during a release to its end, and the latest wins', async () => {
      const { h, repo, head } = await polled();
      expect(await pollService(h.deps, orgId, h.service.id)).toMatchObject({ status: 'deploying' });
      // Two more commits while the first release is in flight, each seen by a poll.
      const second = await repo.commit({ 'v.txt': '2' });
      expect(await pollService(h.deps, orgId, h.service.id)).toEqual({
        serviceId: h.service.id,
        status: 'queued',
        sha: second,
      });
      const third = await repo.commit({ 'v.txt': '3' });
      expect(await pollService(h.deps, orgId, h.service.id)).toMatchObject({
        status: 'queued',
        sha: third,
      });
      await work(h);
      expect((await releasesOf(h)).map((r) => [r.gitSha, r.status])).toEqual([
        [head, 'completed'],
        [third, 'completed'],
      ]);
    });

    it('does not deploy a commit a deploy already took, nor one twice', async () => {
      const { h, head } = await polled();
      // A push (or a person) deployed the head before any poll saw it.
      const pushed = await createRelease(h.deps, deployer, {
        serviceId: h.service.id,
        gitRef: head,
      });
      expect(await pollService(h.deps, orgId, h.service.id)).toEqual({
        serviceId: h.service.id,
        status: 'seen',
        sha: head,
      });
      await work(h);
      expect(await pollService(h.deps, orgId, h.service.id)).toEqual({
        serviceId: h.service.id,
        status: 'unchanged',
        sha: head,
      });
      expect((await releasesOf(h)).map((r) => r.id)).toEqual([pushed.id]);
    });

    it('records why a poll failed and tries again at the next interval, without failing the job', async () => {
      const { h } = await polled();
      await h.repos(async (r) => {
        const s = (await r.services.get(h.service.id))!;
        await r.services.update(h.service.id, {
          git: { ...s.git!, url: daemon.url('no-such-repository') },
        });
      });
      const jobs = scheduledJobs({
        release: h.deps,
        logger: h.logger,
      } as unknown as WorkerSystem);
      const job = jobs.find((j) => j.name === 'git-poll')!;
      expect(job.cron).toBe('* * * * *');
      await job.run();
      const poll = await h.repos((r) => r.gitPolls.get(h.service.id));
      expect(poll).toMatchObject({ sha: null, releaseId: null });
      expect(poll?.error).toMatch(
        /^repository git:\/\/127\.0\.0\.1:\d+\/no-such-repository\.git refused access: fatal: remote error: access denied or repository not exported/,
      );
      expect(await releasesOf(h)).toEqual([]);
    });

    it('never polls a service without an interval', async () => {
      const { h } = await polled(null);
      expect((await pollGitSources(h.deps)).filter((o) => o.serviceId === h.service.id)).toEqual(
        [],
      );
      expect(await pollService(h.deps, orgId, h.service.id)).toEqual({
        serviceId: h.service.id,
        status: 'skipped',
      });
    });
  });
});
