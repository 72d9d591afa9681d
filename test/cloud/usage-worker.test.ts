/**
 * Usage in cloud mode: the worker function's system (fromCloud with a Docker runtime) runs
 * the `usage-collect` scheduled job through the same `scheduled-jobs` handler the worker
 * Lambda dispatches, measures a replica on the real Docker Engine, and writes CloudWatch
 * EMF lines under the namespace and dimensions the CloudWatch charts read.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { fromCloud, type CloudSystem } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { Principal } from '../../core/deps.ts';
import { createNode } from '../../core/nodes/use-cases.ts';
import { createOrg } from '../../core/orgs/use-cases.ts';
import { createProject } from '../../core/projects/use-cases.ts';
import { handleScheduledJob, scheduledJobs, usageCollectJob } from '../../core/queues.ts';
import { containerName } from '../../core/releases/plan.ts';
import { createService } from '../../core/services/use-cases.ts';
import { createTestDatabase } from '../support/db.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import { available } from '../support/services.ts';
import { fakeKmsForEveryClient } from './fakes/kms.ts';

const ready = await available('docker');
const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

describe.skipIf(!ready)('usage in cloud mode', () => {
  let orgId: string | null = null;
  afterAll(async () => {
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('measures replicas in the worker function’s usage-collect job and writes EMF lines', async () => {
    await ensureTestImages();
    const db = await createTestDatabase('cloud_usage');
    await migrate(db.url);
    const kms = fakeKmsForEveryClient(keyArn);
    const lines: string[] = [];
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
          CADDY_ADMIN_URL: 'http://127.0.0.1:9',
          LOG_LEVEL: 'silent',
          OPERATOR_EMAILS: 'cloud-usage@example.com',
          METRICS_NAMESPACE: 'selfdevop/test-usage',
          NODE_PROBE_IMAGE: 'selfdevop-test/busybox:base',
        }),
        {
          runtime: new DockerRuntime(),
          logDestination: { write: (l) => void lines.push(l.trim()) },
        },
      );
      const api = system.api;
      const ctx = { requestId: null, ip: null };
      const userId = api.ids.newId('usr');
      await api.store.identity.createUser({
        id: userId,
        email: 'cloud-usage@example.com',
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
      const org = await createOrg(api, user, { name: 'usagecloud' }, ctx);
      orgId = org.id;
      const owner: Principal = { ...user, orgId: org.id, role: 'owner' };
      const project = await createProject(api, owner, { name: 'shop' }, ctx);
      const node = await createNode(
        api,
        owner,
        { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
        ctx,
      );
      const service = await createService(
        api,
        owner,
        { projectId: project.id, name: 'web', image: 'selfdevop-test/app:v1', containerPort: 8080 },
        ctx,
      );
      const environment = (await api.store.withOrg(org.id, (r) =>
        r.environments.findByName(project.id, 'production'),
      ))!;
      // A live release (deploys have their own cloud suites) and its running container.
      const at = api.clock.now().toISOString();
      const release = {
        id: api.ids.newId('rel'),
        orgId: org.id,
        serviceId: service.id,
        environmentId: environment.id,
        image: 'selfdevop-test/app:v1',
        imageDigest: null,
        gitRef: null,
        gitSha: null,
        status: 'completed' as const,
        nodeId: node.id,
        containerId: null,
        upstream: '127.0.0.1:1',
        previousReleaseId: null,
        replicaSet: null,
        error: null,
        createdAt: at,
        updatedAt: at,
        finishedAt: at,
      };
      await api.store.withOrg(org.id, (r) => r.releases.insert(release));
      await new DockerRuntime().start(
        { dockerHost: 'unix:///var/run/docker.sock' },
        {
          name: containerName(release),
          image: 'selfdevop-test/app:v1',
          env: {},
          labels: {
            'selfdevop.org': org.id,
            'selfdevop.service': service.id,
            'selfdevop.environment': environment.id,
            'selfdevop.release': release.id,
            'selfdevop.role': 'web',
          },
          restartPolicy: 'no',
        },
      );

      const jobs = scheduledJobs(system);
      expect(jobs.map((j) => j.name)).toContain(usageCollectJob);
      const run = handleScheduledJob(jobs, new MemoryLogger());
      const fire = () =>
        run({
          id: 'm1',
          payload: { job: usageCollectJob, firedAt: new Date().toISOString() },
        } as never);
      await fire();
      // The second run has the first one's CPU reading: a rate in cores.
      await new Promise((r) => setTimeout(r, 1_500));
      await fire();

      const emf = lines
        .filter((l) => l.includes('"_aws"'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const services = emf.filter((d) => d.Service === service.id);
      expect(services).toHaveLength(2);
      const last = services[1]!;
      expect(last).toMatchObject({ Org: org.id, Environment: environment.id });
      expect(last.MemoryBytes).toBeGreaterThan(0);
      expect(last.CpuCores).toBeGreaterThanOrEqual(0);
      expect(last._aws).toMatchObject({
        CloudWatchMetrics: [
          {
            Namespace: 'selfdevop/test-usage',
            Dimensions: [['Org', 'Service', 'Environment']],
            Metrics: expect.arrayContaining([
              { Name: 'CpuCores', Unit: 'None' },
              { Name: 'MemoryBytes', Unit: 'Bytes' },
            ]),
          },
        ],
      });
      const nodeLine = emf.find((d) => d.Node === node.id);
      expect(nodeLine?.NodeDiskUsedRatio).toBeGreaterThan(0);
    } finally {
      await system?.close();
      kms.restore();
      await db.drop();
    }
  }, 180_000);
});
