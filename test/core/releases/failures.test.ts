import { describe, expect, it } from 'vitest';
import { Unavailable } from '../../../core/errors.ts';
import { getRelease, listReleaseLogs } from '../../../core/releases/engine.ts';
import { containerName } from '../../../core/releases/plan.ts';
import { MemoryHealthProbe } from '../../../adapters/probe/memory.ts';
import { deployer, dockerHost, setup, type Harness } from './harness.ts';

const running = (h: Harness) =>
  h.runtime
    .containers(dockerHost)
    .filter((c) => c.state === 'running')
    .map((c) => c.spec.name);

async function failedStep(h: Harness, releaseId: string) {
  const view = await getRelease(h.deps, deployer, releaseId);
  return view.steps
    .filter((s) => s.status === 'failed')
    .map((s) => ({ name: s.name, error: s.error, attempt: s.attempt }));
}

async function events(h: Harness, releaseId: string) {
  return (await h.repos((r) => r.audit.list({ limit: 50 }, { targetId: releaseId }))).items.map(
    (e) => e.action,
  );
}

describe('a release that fails', () => {
  it('fails on an unhealthy candidate: candidate removed, v1 still routed', async () => {
    const h = await setup({
      health: { intervalMs: 1000, timeoutMs: 2000, successes: 2, deadlineMs: 30_000 },
    });
    const v1 = await h.deploy('shop/web:1');
    const routeBefore = await h.edge.get('sdo-svc_0abc12-env_000001');
    const v2 = await h.deploy('shop/web:unhealthy');

    expect(v2).toMatchObject({
      status: 'failed',
      error: 'health check did not pass within 30000 ms: GET /health → 404',
    });
    expect(await failedStep(h, v2.id)).toEqual([
      {
        name: 'health_check',
        error: 'health check did not pass within 30000 ms: GET /health → 404',
        attempt: 1,
      },
    ]);
    expect(await h.edge.get('sdo-svc_0abc12-env_000001')).toEqual(routeBefore);
    expect(h.edge.changes).toHaveLength(1);
    expect(running(h)).toEqual([containerName(v1)]);
    expect(h.runtime.container(dockerHost, containerName(v2))).toBeUndefined();
    expect(await events(h, v2.id)).toEqual([
      'release.created',
      'release.started',
      'release.failed',
    ]);
    const job = (await h.repos((r) => r.deployJobs.list({ limit: 10 }))).items.find(
      (j) => j.releaseId === v2.id,
    );
    expect(job?.status).toBe('failed');
    // v1 keeps serving: the next deploy still builds on it.
    const v3 = await h.deploy('shop/web:2');
    expect(v3).toMatchObject({ status: 'completed', previousReleaseId: v1.id });
  });

  it('fails a first release on an unhealthy candidate without creating a route', async () => {
    const h = await setup();
    const v1 = await h.deploy('shop/web:unhealthy');
    expect(v1.status).toBe('failed');
    expect(await h.edge.list()).toEqual([]);
    expect(running(h)).toEqual([]);
  });

  it('reports a probe that keeps timing out by its error', async () => {
    const h = await setup({
      health: { intervalMs: 500, timeoutMs: 1000, successes: 1, deadlineMs: 5000 },
    });
    h.probe.setDefault(MemoryHealthProbe.hang((ms) => h.clock.advance(ms)));
    const v1 = await h.deploy('shop/web:1');
    // Probes at 0, 1.5, 3 and 4.5 s; the last one gets only the 500 ms left before the
    // deadline, so the error names the policy's full timeout the app kept missing, not the cut.
    expect(v1.error).toBe(
      'health check did not pass within 5000 ms: GET /health → timed out after 1000 ms',
    );
    expect(h.probe.calls.map((c) => c.timeoutMs)).toEqual([1000, 1000, 1000, 500]);
  });

  it('fails on a failing migration: no route change, the output in the release log', async () => {
    const h = await setup({ migrateCommand: './migrate' });
    const v1 = await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:bad-migration');

    expect(v2).toMatchObject({ status: 'failed', error: 'migration exited with code 3' });
    expect(await failedStep(h, v2.id)).toEqual([
      { name: 'migrate', error: 'migration exited with code 3', attempt: 1 },
    ]);
    expect(h.edge.changes).toHaveLength(1);
    expect((await h.edge.get('sdo-svc_0abc12-env_000001'))?.upstreams).toEqual([v1.upstream]);
    expect(running(h)).toEqual([containerName(v1)]);
    const lines = (await listReleaseLogs(h.deps, deployer, v2.id)).map(
      (l) => `${l.stream}: ${l.line}`,
    );
    expect(lines).toEqual(
      expect.arrayContaining([
        'system: running migration: ./migrate',
        'stdout: applying 002_users',
        'stdout: error: relation "users" already exists',
        'system: release failed in step migrate: migration exited with code 3',
        `system: candidate container ${containerName(v2)} removed`,
      ]),
    );
    expect(await events(h, v2.id)).toEqual([
      'release.created',
      'release.started',
      'release.failed',
    ]);
    expect(await h.release(v1.id)).toMatchObject({ status: 'completed' });
  });

  it('fails a migration that runs past the timeout', async () => {
    const h = await setup({ migrateCommand: './migrate' }, { migrationTimeoutMs: 45_000 });
    const v1 = await h.deploy('shop/web:slow-migration');
    expect(v1).toMatchObject({ status: 'failed', error: 'migration timed out after 45000 ms' });
    const lines = (await listReleaseLogs(h.deps, deployer, v1.id)).map((l) => l.line);
    expect(lines).toContain('waiting for a lock');
    expect(h.runtime.containers(dockerHost)).toEqual([]);
  });

  it('fails when the candidate exits right after start', async () => {
    const h = await setup();
    const v1 = await h.deploy('shop/web:crash');
    expect(v1).toMatchObject({
      status: 'failed',
      error: `candidate container ${containerName(v1)} is exited right after start`,
    });
    expect(h.runtime.containers(dockerHost)).toEqual([]);
  });

  it('fails on an image the node cannot find, without retrying', async () => {
    const h = await setup();
    const v1 = await h.deploy('shop/missing:1');
    expect(v1.status).toBe('failed');
    expect(v1.error).toMatch(/^image shop\/missing:1 not found on node/);
    expect(h.runtime.calls.filter((c) => c.method === 'resolveImage')).toHaveLength(1);
  });

  it('retries an unreachable Docker, then fails with the reason; the route stays', async () => {
    const h = await setup();
    const v1 = await h.deploy('shop/web:1');
    const routeBefore = await h.edge.get('sdo-svc_0abc12-env_000001');
    h.runtime.setReachable(dockerHost, false);
    const v2 = await h.deploy('shop/web:2');
    expect(v2).toMatchObject({
      status: 'failed',
      error: 'docker unreachable: unix:///var/run/docker.sock: connect ECONNREFUSED',
    });
    expect(h.runtime.calls.filter((c) => c.method === 'ping')).toHaveLength(1 + 3);
    expect(await failedStep(h, v2.id)).toEqual([
      {
        name: 'build',
        error: 'docker unreachable: unix:///var/run/docker.sock: connect ECONNREFUSED',
        attempt: 3,
      },
    ]);
    const lines = (await listReleaseLogs(h.deps, deployer, v2.id)).map((l) => l.line);
    expect(lines.filter((l) => l.includes('retrying'))).toEqual([
      'docker unreachable: unix:///var/run/docker.sock: connect ECONNREFUSED (attempt 1 of 3, retrying)',
      'docker unreachable: unix:///var/run/docker.sock: connect ECONNREFUSED (attempt 2 of 3, retrying)',
    ]);
    expect(await h.edge.get('sdo-svc_0abc12-env_000001')).toEqual(routeBefore);
    h.runtime.setReachable(dockerHost, true);
    expect(running(h)).toEqual([containerName(v1)]);
  });

  it('rides out a Docker that is briefly unreachable', async () => {
    const h = await setup();
    h.runtime.failNext(
      'start',
      new Unavailable('docker', 'unix:///var/run/docker.sock: socket hang up'),
      2,
    );
    const v1 = await h.deploy('shop/web:1');
    expect(v1.status).toBe('completed');
    const view = await getRelease(h.deps, deployer, v1.id);
    expect(view.steps.find((s) => s.name === 'start_candidate')).toMatchObject({
      status: 'succeeded',
      attempt: 3,
      error: null,
    });
    expect(running(h)).toEqual([containerName(v1)]);
  });

  it('retries an unreachable Caddy admin API, then fails with the reason; candidate removed, route unchanged', async () => {
    const h = await setup();
    const v1 = await h.deploy('shop/web:1');
    const routeBefore = await h.edge.get('sdo-svc_0abc12-env_000001');
    const { createRelease, advanceRelease } = await import('../../../core/releases/engine.ts');
    const v2 = await createRelease(h.deps, deployer, {
      serviceId: h.service.id,
      image: 'shop/web:2',
    });
    // Up to the switch with Caddy up, then Caddy goes away.
    for (let i = 0; i < 3; i++) {
      const next = h.queue.sent.find((s) => !s.handled)!;
      next.handled = true;
      await advanceRelease(h.deps, next.payload as never, 1);
    }
    expect((await h.release(v2.id)).status).toBe('health_validating');
    h.edge.setUnreachable(true);
    await h.drain();
    const failed = await h.release(v2.id);
    expect(failed).toMatchObject({
      status: 'failed',
      error: 'caddy admin unreachable: the in-memory edge router is set unreachable',
    });
    expect(await failedStep(h, v2.id)).toEqual([
      {
        name: 'switch_traffic',
        error: 'caddy admin unreachable: the in-memory edge router is set unreachable',
        attempt: 3,
      },
    ]);
    h.edge.setUnreachable(false);
    expect(await h.edge.get('sdo-svc_0abc12-env_000001')).toEqual(routeBefore);
    expect(running(h)).toEqual([containerName(v1)]);
  });

  it('fails when a secret cannot be opened, naming the secret only', async () => {
    const h = await setup();
    await h.repos((r) =>
      r.secrets.put({
        id: 'sec_x',
        orgId: 'org_000001',
        serviceId: h.service.id,
        environmentId: 'env_000001',
        name: 'BROKEN',
        sealed: 'not-a-sealed-value',
        createdAt: '2026-01-01T00:00:00.000Z',
        updatedAt: '2026-01-01T00:00:00.000Z',
      }),
    );
    const v1 = await h.deploy('shop/web:1');
    expect(v1.status).toBe('failed');
    expect(v1.error).toMatch(/^secret BROKEN could not be opened: /);
    expect(h.runtime.containers(dockerHost)).toEqual([]);
  });
});
