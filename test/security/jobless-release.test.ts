/**
 * Hole 6: a release whose first step never reached the queue. The API commits the release
 * and then sends its first step; a process that dies between the two leaves the release
 * `queued` with no message anywhere, and since one release per service environment may be
 * in flight, every later deploy of it was refused (409) for good, with no way to cancel.
 * The crash is replayed by inserting the release as createRelease does, without the send.
 * The sweep (a scheduled job of the workers) re-sends the first step of such releases, and
 * `POST /api/releases/{id}/cancel` ends a release that is not yet switching traffic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { insertRelease } from '../../core/releases/create.ts';
import { dockerTarget } from '../support/docker.ts';
import { available } from '../support/services.ts';
import { sleep, startStack, type Stack, type Tenant } from './support/stack.ts';

const ready = (await available('docker')) && (await available('caddy'));

describe.skipIf(!ready)('a release whose first step never reached the queue', () => {
  const runtime = new DockerRuntime();
  let stack: Stack;
  let t: Tenant;
  let serviceId: string;

  beforeAll(async () => {
    // Job-less after 1 s (instead of a minute) so the replay does not wait.
    stack = await startStack({ release: { joblessAfterSeconds: 1 } });
    t = await stack.tenant('jobless@example.com');
    serviceId = await stack.service(t, 'web');
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
  });

  /** What createRelease commits, without the send that a crash would skip. */
  async function crashBeforeSend(image: string): Promise<string> {
    const deps = stack.api.system.release;
    const release = await deps.store.withOrg(t.orgId, async (repos) => {
      const environment = await repos.environments.findByName(
        (await repos.services.get(serviceId))!.projectId,
        'production',
      );
      return insertRelease(
        deps,
        repos,
        { serviceId, environmentId: environment!.id, image, gitSha: null, kind: 'deploy' },
        { actorType: 'user', actorId: t.userId },
        null,
      );
    });
    return release.id;
  }

  async function sweep(): Promise<void> {
    // Imported here so the part before the fix (the 409) runs on code without the sweep.
    const { sweepJoblessReleases } = await import('../../core/releases/sweep.ts');
    await sweepJoblessReleases(stack.api.system.release);
  }

  it('blocks the next deploy (409) until the sweep sends its first step, then deploys', async () => {
    const stuck = await crashBeforeSend('selfdevop-test/app:v1');
    const refused = await stack.req('POST', '/api/releases', {
      token: t.token,
      body: { serviceId, image: 'selfdevop-test/app:v2' },
    });
    expect(refused.status, refused.text).toBe(409);
    expect(refused.body.error.code).toBe('release_in_flight');
    // The workers run, but nothing tells them about the release.
    await sleep(2_000);
    expect((await stack.release(t, stuck)).status).toBe('queued');

    await sweep();
    const done = await stack.until(t, stuck, ['completed', 'failed'], 60_000);
    expect(done.status, done.error ?? '').toBe('completed');
    const next = await stack.deploy(t, serviceId, 'selfdevop-test/app:v2');
    expect((await stack.until(t, next, ['completed', 'failed'], 60_000)).status).toBe('completed');
  }, 150_000);

  it('cancels a job-less release: failed, "cancelled by" the user, audited, next deploy accepted', async () => {
    const stuck = await crashBeforeSend('selfdevop-test/app:v1');
    const cancelled = await stack.req('POST', `/api/releases/${stuck}/cancel`, { token: t.token });
    expect(cancelled.status, cancelled.text).toBe(200);
    expect(cancelled.body).toMatchObject({
      id: stuck,
      status: 'failed',
      error: `cancelled by user ${t.userId}`,
    });
    const audit = await stack.req(
      'GET',
      `/api/audit-events?targetId=${stuck}&action=release.failed`,
      { token: t.token },
    );
    expect(audit.status, audit.text).toBe(200);
    expect(audit.body.items).toMatchObject([
      {
        actorType: 'user',
        actorId: t.userId,
        data: { reason: `cancelled by user ${t.userId}`, cancelled: true },
      },
    ]);
    // A second cancel, and a cancel of a finished release, are conflicts.
    const again = await stack.req('POST', `/api/releases/${stuck}/cancel`, { token: t.token });
    expect(again.status, again.text).toBe(409);
    expect(again.body.error.code).toBe('release_not_cancellable');
    const next = await stack.deploy(t, serviceId, 'selfdevop-test/app:v1');
    expect((await stack.until(t, next, ['completed', 'failed'], 60_000)).status).toBe('completed');
    const finished = await stack.req('POST', `/api/releases/${next}/cancel`, { token: t.token });
    expect(finished.status, finished.text).toBe(409);
  }, 150_000);

  it('cancels a release waiting on its health check: the candidate is removed, the old one serves', async () => {
    // Slow to fail: an unhealthy candidate would be probed for a minute.
    const slow = await stack.service(t, 'slow', {
      health: { intervalMs: 200, successes: 2, deadlineMs: 60_000, timeoutMs: 1_000 },
    });
    const serving = await stack.deploy(t, slow, 'selfdevop-test/app:v1');
    expect((await stack.until(t, serving, ['completed', 'failed'], 60_000)).status).toBe(
      'completed',
    );
    const id = await stack.deploy(t, slow, 'selfdevop-test/app:unhealthy');
    await stack.until(t, id, ['health_validating'], 30_000);
    expect(await runtime.list(dockerTarget, { 'selfdevop.release': id })).toHaveLength(1);

    const started = Date.now();
    const cancelled = await stack.req('POST', `/api/releases/${id}/cancel`, { token: t.token });
    expect(cancelled.status, cancelled.text).toBe(200);
    expect(cancelled.body.status).toBe('failed');
    let left = await runtime.list(dockerTarget, { 'selfdevop.release': id });
    while (left.length > 0 && Date.now() - started < 20_000) {
      await sleep(200);
      left = await runtime.list(dockerTarget, { 'selfdevop.release': id });
    }
    expect(left).toEqual([]);
    const old = await runtime.list(dockerTarget, { 'selfdevop.release': serving });
    expect(old.map((c) => c.state)).toEqual(['running']);
    expect((await stack.release(t, id)).error).toBe(`cancelled by user ${t.userId}`);
  }, 150_000);
});
