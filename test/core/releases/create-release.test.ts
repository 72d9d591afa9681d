import { describe, expect, it } from 'vitest';
import { Forbidden, InvalidInput, NotFound, Unavailable } from '../../../core/errors.ts';
import {
  createRelease,
  getRelease,
  NoNodeAvailable,
  releaseStepsQueue,
} from '../../../core/releases/engine.ts';
import { aNode, aProject, aService, anEnvironment, anOrg } from './builders.ts';
import { deployer, setup } from './harness.ts';

describe('createRelease', () => {
  it('queues a release on the first node, with its deploy job and audit row', async () => {
    const h = await setup();
    const r = await createRelease(
      h.deps,
      deployer,
      { serviceId: h.service.id, image: 'shop/web:1' },
      { requestId: 'req-1', ip: null },
    );
    expect(r).toEqual({
      id: r.id,
      orgId: 'org_000001',
      serviceId: 'svc_0abc12',
      environmentId: 'env_000001',
      image: 'shop/web:1',
      imageDigest: null,
      gitSha: null,
      gitRef: null,
      status: 'queued',
      previousReleaseId: null,
      nodeId: 'node_000001',
      containerId: null,
      upstream: null,
      replicaSet: {
        replicas: [
          { index: 0, nodeId: 'node_000001', containerId: null, upstream: null, health: 'planned' },
        ],
      },
      error: null,
      createdAt: '2026-01-01T00:00:00.000Z',
      updatedAt: '2026-01-01T00:00:00.000Z',
      finishedAt: null,
    });
    expect(await getRelease(h.deps, deployer, r.id)).toEqual({ ...r, steps: [] });
    expect(h.queue.of(releaseStepsQueue).map((s) => s.payload)).toEqual([
      { orgId: 'org_000001', releaseId: r.id, status: 'queued' },
    ]);
    const audit = (await h.repos((x) => x.audit.list({ limit: 10 }, { targetId: r.id }))).items;
    expect(audit).toEqual([
      expect.objectContaining({
        action: 'release.created',
        actorType: 'user',
        actorId: 'usr_1',
        requestId: 'req-1',
        targetType: 'release',
      }),
    ]);
    const jobs = (await h.repos((x) => x.deployJobs.list({ limit: 10 }))).items;
    expect(jobs).toEqual([
      expect.objectContaining({ releaseId: r.id, kind: 'deploy', status: 'queued', attempts: 0 }),
    ]);
  });

  it('deploys to a named environment and skips nodes in drain mode', async () => {
    const h = await setup();
    await h.repos(async (x) => {
      await x.environments.insert(anEnvironment({ id: 'env_000002', name: 'staging' }));
      await x.nodes.insert(aNode({ id: 'node_000000', name: 'draining', drainMode: true }));
      await x.nodes.insert(aNode({ id: 'node_000009', name: 'node-9' }));
    });
    const r = await createRelease(h.deps, deployer, {
      serviceId: h.service.id,
      environment: 'staging',
      image: 'shop/web:1',
      gitSha: 'deadbeef',
    });
    expect(r).toMatchObject({
      environmentId: 'env_000002',
      nodeId: 'node_000001',
      gitSha: 'deadbeef',
    });
  });

  it('refuses when every node is draining, or there is none', async () => {
    const h = await setup();
    const other = { ...deployer, orgId: 'org_000002' };
    await h.store.inner.withOrg('org_000002', async (x) => {
      await x.orgs.insert(anOrg({ id: 'org_000002' }));
      await x.projects.insert(aProject({ id: 'prj_000002', orgId: 'org_000002' }));
      await x.environments.insert(
        anEnvironment({ id: 'env_000002', orgId: 'org_000002', projectId: 'prj_000002' }),
      );
      await x.services.insert(
        aService({ id: 'svc_000002', orgId: 'org_000002', projectId: 'prj_000002' }),
      );
    });
    const err = await createRelease(h.deps, other, {
      serviceId: 'svc_000002',
      image: 'shop/web:1',
    }).catch((e) => e);
    expect(err).toBeInstanceOf(NoNodeAvailable);
    expect(err).toMatchObject({ kind: 'conflict', code: 'no_node_available' });
    await h.store.inner.withOrg('org_000002', (x) =>
      x.nodes.insert(aNode({ id: 'node_000002', orgId: 'org_000002', drainMode: true })),
    );
    await expect(
      createRelease(h.deps, other, { serviceId: 'svc_000002', image: 'shop/web:1' }),
    ).rejects.toBeInstanceOf(NoNodeAvailable);
  });

  it('answers 404 for unknown or foreign services and unknown environments', async () => {
    const h = await setup();
    await expect(
      createRelease(h.deps, deployer, { serviceId: 'svc_nope', image: 'shop/web:1' }),
    ).rejects.toThrow(new NotFound('service', 'svc_nope'));
    const foreign = { ...deployer, orgId: 'org_000002' };
    await expect(
      createRelease(h.deps, foreign, { serviceId: h.service.id, image: 'shop/web:1' }),
    ).rejects.toThrow(new NotFound('service', h.service.id));
    await expect(
      createRelease(h.deps, deployer, {
        serviceId: h.service.id,
        environment: 'qa',
        image: 'shop/web:1',
      }),
    ).rejects.toThrow(new NotFound('environment', 'qa'));
  });

  it('validates the input and names the field', async () => {
    const h = await setup();
    const cases: [unknown, string][] = [
      [{ serviceId: h.service.id, image: 'Not An Image' }, 'image'],
      [{ serviceId: h.service.id }, 'image'],
      [{ serviceId: 'svc 1', image: 'shop/web:1' }, 'serviceId'],
      [{ serviceId: h.service.id, image: 'shop/web:1', gitSha: 'xyz' }, 'gitSha'],
      [{ serviceId: h.service.id, image: 'shop/web:1', environment: 'Prod!' }, 'environment'],
      [{ serviceId: h.service.id, image: 'shop/web:1', imag: 'x' }, 'imag'],
    ];
    for (const [input, field] of cases) {
      const err = await createRelease(h.deps, deployer, input as never).catch((e) => e);
      expect(err, JSON.stringify(input)).toBeInstanceOf(InvalidInput);
      expect(err.details).toEqual({ field });
      expect(err.message.startsWith(`${field}: `)).toBe(true);
    }
    expect(h.queue.sent).toEqual([]);
  });

  it('lets deployers and above deploy, not viewers', async () => {
    const h = await setup();
    await expect(
      createRelease(
        h.deps,
        { ...deployer, role: 'viewer' },
        { serviceId: h.service.id, image: 'shop/web:1' },
      ),
    ).rejects.toBeInstanceOf(Forbidden);
    await expect(getRelease(h.deps, deployer, 'rel_nope')).rejects.toThrow(
      new NotFound('release', 'rel_nope'),
    );
  });

  it('fails a release whose first step could not be queued, so the next deploy is not refused', async () => {
    const h = await setup();
    const send = h.queue.send.bind(h.queue);
    h.queue.send = () =>
      Promise.reject(new Unavailable('queue', 'the queue cannot be reached: connect ECONNREFUSED'));
    const err = await createRelease(h.deps, deployer, {
      serviceId: h.service.id,
      image: 'shop/web:1',
    }).catch((e) => e);
    expect(err).toBeInstanceOf(Unavailable);
    const [stuck] = (await h.repos((x) => x.releases.list({ limit: 10 }))).items;
    expect(stuck).toMatchObject({
      status: 'failed',
      error:
        'could not be queued: queue is unavailable: the queue cannot be reached: connect ECONNREFUSED',
    });
    expect(stuck!.finishedAt).not.toBeNull();
    const jobs = (await h.repos((x) => x.deployJobs.list({ limit: 10 }))).items;
    expect(jobs).toEqual([expect.objectContaining({ releaseId: stuck!.id, status: 'failed' })]);
    const audit = (
      await h.repos((x) => x.audit.list({ limit: 10 }, { targetId: stuck!.id }))
    ).items.map((a) => a.action);
    expect(audit).toEqual(expect.arrayContaining(['release.created', 'release.failed']));
    // The queue is back: the retry is a new release, not a 409.
    h.queue.send = send;
    const retry = await createRelease(h.deps, deployer, {
      serviceId: h.service.id,
      image: 'shop/web:1',
    });
    expect(retry).toMatchObject({ status: 'queued' });
    expect(retry.id).not.toBe(stuck!.id);
    expect(h.queue.of(releaseStepsQueue).map((s) => s.payload)).toEqual([
      { orgId: 'org_000001', releaseId: retry.id, status: 'queued' },
    ]);
  });
});
