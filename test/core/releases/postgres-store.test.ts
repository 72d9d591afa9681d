import { afterEach, describe, expect, it } from 'vitest';
import { migrate } from '../../../adapters/db/migrator.ts';
import { PostgresStore } from '../../../adapters/store/postgres.ts';
import { ReleaseAlreadyInFlight } from '../../../core/errors.ts';
import {
  createRelease,
  getRelease,
  listReleaseLogs,
  rollbackRelease,
} from '../../../core/releases/engine.ts';
import { containerName } from '../../../core/releases/plan.ts';
import { createTestDatabase } from '../../support/db.ts';
import { deployer, dockerHost, putSecret, setup } from './harness.ts';

/** The engine on the PostgreSQL store: the store the product runs on, with row-level security. */
describe('the release engine on PostgreSQL', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });

  async function pgSetup(...args: Parameters<typeof setup>) {
    const db = await createTestDatabase('release');
    await migrate(db.url);
    const store = PostgresStore.fromUrl(db.url);
    cleanups.push(db.drop, () => store.close());
    return setup(args[0], args[1], { store });
  }

  it('runs a release with a migration and secrets through every step', async () => {
    const h = await pgSetup({ migrateCommand: './migrate-leak' });
    await putSecret(h, 'DATABASE_URL', 'postgres://app:hunter2-secret@db/app');
    const v1 = await h.deploy('shop/web:1');
    expect(v1).toMatchObject({ status: 'completed', error: null, finishedAt: expect.any(String) });
    const view = await getRelease(h.deps, deployer, v1.id);
    expect(view.steps.map((s) => [s.name, s.status, s.attempt])).toEqual([
      ['build', 'succeeded', 1],
      ['start_candidate', 'succeeded', 1],
      ['migrate', 'succeeded', 1],
      ['health_check', 'succeeded', 1],
      ['switch_traffic', 'succeeded', 1],
      ['complete', 'succeeded', 1],
    ]);
    const lines = (await listReleaseLogs(h.deps, deployer, v1.id)).map((l) => l.line);
    expect(lines).toContain('connecting to ***');
    expect(JSON.stringify(lines)).not.toContain('hunter2');
    const actions = (
      await h.repos((r) => r.audit.list({ limit: 50 }, { targetId: v1.id }))
    ).items.map((e) => e.action);
    expect(actions).toEqual([
      'release.created',
      'release.started',
      'release.migration_succeeded',
      'release.completed',
    ]);
    expect((await h.repos((r) => r.deployJobs.list({ limit: 5 }))).items[0]).toMatchObject({
      status: 'succeeded',
    });
  });

  it('fails an unhealthy release and keeps the previous one routed', async () => {
    const h = await pgSetup();
    const v1 = await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:unhealthy');
    expect(v2).toMatchObject({
      status: 'failed',
      error: 'health check did not pass within 30000 ms: GET /health → 404',
    });
    expect((await h.edge.get('sdo-svc_0abc12-env_000001'))?.upstreams).toEqual([v1.upstream]);
    expect(h.runtime.container(dockerHost, containerName(v2))).toBeUndefined();
  });

  it('admits one of two concurrent releases', async () => {
    const h = await pgSetup();
    const results = await Promise.allSettled([
      createRelease(h.deps, deployer, { serviceId: h.service.id, image: 'shop/web:1' }),
      createRelease(h.deps, deployer, { serviceId: h.service.id, image: 'shop/web:2' }),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(
      (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason,
    ).toBeInstanceOf(ReleaseAlreadyInFlight);
  });

  it('resumes after a worker died before a compare-and-set', async () => {
    const h = await pgSetup({ migrateCommand: './migrate' });
    h.store.killBefore = 'migrating';
    const v1 = await h.deploy('shop/web:1');
    expect(v1.status).toBe('completed');
    expect(h.runtime.containers(dockerHost)).toHaveLength(1);
  });

  it('rolls back on the warm path and by redeploying', async () => {
    const h = await pgSetup({ warmSeconds: 60 });
    const v1 = await h.deploy('shop/web:1');
    const v2 = await h.deploy('shop/web:2');
    expect((await rollbackRelease(h.deps, deployer, { releaseId: v2.id })).path).toBe('warm');
    expect((await h.release(v2.id)).status).toBe('rolled_back');
    expect((await h.edge.get('sdo-svc_0abc12-env_000001'))?.upstreams).toEqual([v1.upstream]);

    const v3 = await h.deploy('shop/web:3');
    h.clock.advance(60_000);
    await h.retireDue();
    const back = await rollbackRelease(h.deps, deployer, { releaseId: v3.id });
    expect(back.path).toBe('redeploy');
    await h.drain();
    expect((await h.release(back.redeploy!.id)).status).toBe('completed');
    expect((await h.release(v3.id)).status).toBe('rolled_back');
  });
});
