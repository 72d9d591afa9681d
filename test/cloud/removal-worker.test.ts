/**
 * Deleting a service in cloud mode: the API use case of the cloud system (fromCloud)
 * deletes the rows and queues the removal on SQS (faked at the SDK boundary); the worker
 * Lambda handler, fed the SQS events as the event source mapping would, takes the route
 * off the real Caddy, the containers off the real Docker Engine and the service's kept build
 * checkout out of the worker's /tmp. The same handler
 * table as self-hosted pg-boss (core/queues.ts, `service-removals`).
 */
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { fromCloud, type CloudSystem } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { GitCliSource } from '../../adapters/source/git-cli.ts';
import type { Principal } from '../../core/deps.ts';
import { createNode } from '../../core/nodes/use-cases.ts';
import { createOrg } from '../../core/orgs/use-cases.ts';
import { createProject } from '../../core/projects/use-cases.ts';
import { routeId } from '../../core/releases/plan.ts';
import { createService, deleteService } from '../../core/services/use-cases.ts';
import { createWorkerHandler, sqsWorkerHandlers } from '../../functions/lambda/worker-handler.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { createTestDatabase } from '../support/db.ts';
import { dockerTarget, ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import { makeRepo, startGitDaemon } from '../support/git-server.ts';
import { available } from '../support/services.ts';
import { fakeKmsForEveryClient } from './fakes/kms.ts';
import { FakeSqs } from './fakes/sqs.ts';
import { pollEvent, settle } from './sqs-lambda.ts';

const ready = (await available('docker')) && (await available('caddy'));
const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const docker = (...args: string[]) =>
  promisify(execFile)('docker', args, { timeout: 30_000 }).then((r) => r.stdout.trim());

describe.skipIf(!ready)('deleting a service in cloud mode', () => {
  let caddy: TestCaddy;
  let orgId: string | null = null;

  beforeAll(async () => {
    await ensureTestImages();
    caddy = await startCaddy();
  }, 900_000);
  afterAll(async () => {
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('removes its route and containers through SQS and the worker Lambda', async () => {
    const db = await createTestDatabase('cloud_removal');
    await migrate(db.url);
    const fake = new FakeSqs();
    const undoSqs = fake.interceptEveryClient();
    const kms = fakeKmsForEveryClient(keyArn);
    let system: CloudSystem | undefined;
    try {
      system = await fromCloud(
        fromCloudEnv({
          AWS_REGION: 'eu-west-1',
          DATABASE_URL: db.url,
          COGNITO_USER_POOL_ID: 'eu-west-1_AbC123',
          COGNITO_CLIENT_ID: 'abc123client',
          COGNITO_DOMAIN: 'selfdevop-test.auth.eu-west-1.amazoncognito.com',
          DASHBOARD_URL: 'https://console.example.com',
          SECRETS_KMS_KEY_ID: keyArn,
          OBJECTS_BUCKET: 'selfdevop-objects-111122223333',
          SCHEDULER_ROLE_ARN: 'arn:aws:iam::111122223333:role/selfdevop-scheduler',
          MAIL_FROM: 'noreply@example.com',
          EDGE_DOMAIN: 'localhost',
          CADDY_ADMIN_URL: caddy.adminUrl,
          LOG_LEVEL: 'silent',
          OPERATOR_EMAILS: 'cloud-removal@example.com',
        }),
        { runtime: new DockerRuntime() },
      );
      const cloud = system;
      const handlers = sqsWorkerHandlers(cloud);
      for (const q of Object.keys(handlers)) fake.createWorkerQueue(cloud.queue.physicalNames(q));
      const handler = createWorkerHandler({
        queue: cloud.queue,
        handlers,
        logger: new MemoryLogger(),
      });
      const work = cloud.queue.physicalNames('service-removals');

      const api = cloud.api;
      const ctx = { requestId: null, ip: null };
      const userId = api.ids.newId('usr');
      await api.store.identity.createUser({
        id: userId,
        email: 'cloud-removal@example.com',
        passwordHash: 'unused',
        createdAt: api.clock.now().toISOString(),
      });
      const user: Principal = {
        actorType: 'user',
        actorId: userId,
        userId,
        orgId: null,
        role: null,
      };
      const org = await createOrg(api, user, { name: 'removalcloud' }, ctx);
      orgId = org.id;
      const owner: Principal = { ...user, orgId: org.id, role: 'owner' };
      const project = await createProject(api, owner, { name: 'shop' }, ctx);
      const envId = project.environments[0]!.id;
      const node = await createNode(
        api,
        owner,
        { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
        ctx,
      );
      const svc = await createService(
        api,
        owner,
        {
          projectId: project.id,
          name: 'web',
          image: 'selfdevop-test/app:v1',
          containerPort: 8080,
          healthcheckPath: '/health',
        },
        ctx,
      );
      // What a deploy leaves behind: a release placed on the node, its container (labelled
      // as the release engine labels them) and its route on the edge.
      const at = api.clock.now().toISOString();
      const releaseId = api.ids.newId('rel');
      await api.store.withOrg(org.id, (r) =>
        r.releases.insert({
          id: releaseId,
          orgId: org.id,
          serviceId: svc.id,
          environmentId: envId,
          image: 'selfdevop-test/app:v1',
          imageDigest: null,
          gitSha: null,
          gitRef: null,
          status: 'completed',
          previousReleaseId: null,
          nodeId: node.id,
          containerId: null,
          upstream: null,
          error: null,
          createdAt: at,
          updatedAt: at,
          finishedAt: at,
        }),
      );
      const labels = {
        'selfdevop.org': org.id,
        'selfdevop.service': svc.id,
        'selfdevop.environment': envId,
        'selfdevop.release': releaseId,
      };
      await docker(
        'run',
        '-d',
        ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
        'selfdevop-test/app:v1',
      );
      const runtime = new DockerRuntime();
      expect(await runtime.list(dockerTarget, labels)).toHaveLength(1);
      const route = routeId(svc.id, envId);
      await cloud.release.edge.put({
        id: route,
        hosts: [svc.hosts[0]!.host],
        upstreams: ['127.0.0.1:9'],
        sticky: false,
        drainSeconds: 0,
      });
      expect(await cloud.release.edge.get(route)).not.toBeNull();

      // A build checkout the worker kept for the service, where the cloud worker keeps them
      // (its /tmp, adapters/modes/cloud.ts), made as a build step makes it.
      const git = await startGitDaemon();
      let kept: string;
      try {
        const repo = await makeRepo(git.root, 'removal');
        const sha = await repo.commit({ Dockerfile: 'FROM scratch\n' });
        const tree = await new GitCliSource({
          checkoutDir: path.join(os.tmpdir(), 'selfdevop-git-checkouts'),
        }).fetch({ url: git.url('removal'), credential: null }, sha, '');
        kept = (await tree.checkout!({ keep: { owner: svc.id, name: '' } })).dir;
        await tree.close();
      } finally {
        await git.stop();
      }
      await stat(path.join(kept, 'Dockerfile'));

      await deleteService(api, owner, svc.id, 'web', ctx);
      expect(await api.store.withOrg(org.id, (r) => r.services.get(svc.id))).toBeNull();

      /** Feeds the removal queue's messages to the worker Lambda until `done` (bounded). */
      const done = async () => (await runtime.list(dockerTarget, labels)).length === 0;
      for (let i = 0; i < 60 && !(await done()); i++) {
        for (const name of [work.main, work.delay]) {
          const event = await pollEvent(fake, cloud.queue, name);
          if (event.Records.length === 0) continue;
          await settle(fake, cloud.queue, name, event, await handler(event));
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(await runtime.list(dockerTarget, labels)).toEqual([]);
      expect(await cloud.release.edge.get(route)).toBeNull();
      await expect(stat(kept)).rejects.toThrow();
      const audit = await api.store.withOrg(org.id, (r) =>
        r.audit.list({ limit: 50 }, { targetId: svc.id }),
      );
      expect(audit.items.map((e) => e.action)).toEqual(
        expect.arrayContaining(['service.deleted', 'service.removed']),
      );
    } finally {
      await system?.close();
      undoSqs();
      kms.restore();
      fake.mock.restore();
      await db.drop();
    }
  }, 180_000);
});
