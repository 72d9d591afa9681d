/**
 * Cron jobs in cloud mode: the cloud system (fromCloud) creates a job through its API use
 * case, which keeps the schedule in EventBridge Scheduler (faked at the SDK boundary) in the
 * job's time zone, targeting the job-runs SQS FIFO queue (faked likewise); a firing lands
 * there and the worker Lambda handler, fed the SQS events as the event source mapping would,
 * runs the job on the real Docker Engine and records the run. Deleting the job removes its
 * schedule. The same handler table as self-hosted pg-boss (core/queues.ts).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { fromCloud, type CloudSystem } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { Principal } from '../../core/deps.ts';
import { jobRunsQueue } from '../../core/jobs/deps.ts';
import { createJob, deleteJob, listJobRuns } from '../../core/jobs/use-cases.ts';
import { createNode } from '../../core/nodes/use-cases.ts';
import { createOrg } from '../../core/orgs/use-cases.ts';
import { createProject } from '../../core/projects/use-cases.ts';
import { createService } from '../../core/services/use-cases.ts';
import { createWorkerHandler, sqsWorkerHandlers } from '../../functions/lambda/worker-handler.ts';
import { createTestDatabase } from '../support/db.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import { available } from '../support/services.ts';
import { fakeKmsForEveryClient } from './fakes/kms.ts';
import { FakeScheduler } from './fakes/scheduler.ts';
import { FakeSqs } from './fakes/sqs.ts';
import { pollEvent, settle } from './sqs-lambda.ts';

const ready = await available('docker');
const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

describe.skipIf(!ready)('cron jobs in cloud mode', () => {
  let orgId: string | null = null;
  afterAll(async () => {
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('schedules in EventBridge in the job time zone, runs a firing through SQS and the worker Lambda', async () => {
    await ensureTestImages();
    const db = await createTestDatabase('cloud_jobs');
    await migrate(db.url);
    const sqs = new FakeSqs();
    const undoSqs = sqs.interceptEveryClient();
    const events = new FakeScheduler(
      sqs.client,
      (arn) => sqs.byName(arn.split(':').at(-1) ?? '').url,
    );
    const undoScheduler = events.interceptEveryClient();
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
          CADDY_ADMIN_URL: 'http://127.0.0.1:9',
          LOG_LEVEL: 'silent',
          OPERATOR_EMAILS: 'cloud-jobs@example.com',
        }),
        { runtime: new DockerRuntime() },
      );
      const cloud = system;
      const handlers = sqsWorkerHandlers(cloud);
      for (const q of Object.keys(handlers)) sqs.createWorkerQueue(cloud.queue.physicalNames(q));
      const handler = createWorkerHandler({
        queue: cloud.queue,
        handlers,
        logger: new MemoryLogger(),
      });
      const runsQueue = cloud.queue.physicalNames(jobRunsQueue);

      const api = cloud.api;
      const ctx = { requestId: null, ip: null };
      const userId = api.ids.newId('usr');
      await api.store.identity.createUser({
        id: userId,
        email: 'cloud-jobs@example.com',
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
      const org = await createOrg(api, user, { name: 'jobscloud' }, ctx);
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
        {
          projectId: project.id,
          name: 'mailer',
          kind: 'worker',
          image: 'selfdevop-test/app:v1',
          env: { GREETING: 'cloud' },
        },
        ctx,
      );
      // The serving release the job runs the image of (deploys have their own cloud suites).
      const environment = await api.store.withOrg(org.id, (r) =>
        r.environments.findByName(project.id, 'production'),
      );
      const at = api.clock.now().toISOString();
      await api.store.withOrg(org.id, (r) =>
        r.releases.insert({
          id: api.ids.newId('rel'),
          orgId: org.id,
          serviceId: service.id,
          environmentId: environment!.id,
          image: 'selfdevop-test/app:v1',
          imageDigest: null,
          gitRef: null,
          gitSha: null,
          status: 'completed',
          nodeId: node.id,
          containerId: null,
          upstream: null,
          previousReleaseId: null,
          error: null,
          createdAt: at,
          updatedAt: at,
          finishedAt: at,
        }),
      );

      const job = await createJob(
        api,
        owner,
        {
          serviceId: service.id,
          name: 'report',
          schedule: '30 2 * * *',
          timeZone: 'Europe/Berlin',
          command: 'echo "report $GREETING"',
        },
        ctx,
      );
      const stored = [...events.schedules.values()];
      expect(
        stored.map((s) => [s.Name, s.ScheduleExpression, s.ScheduleExpressionTimezone]),
      ).toEqual([[`job-${job.id}`, 'cron(30 2 * * ? *)', 'Europe/Berlin']]);
      expect(stored[0]!.Target?.Arn).toBe(await cloud.queue.arnOf(jobRunsQueue));

      // 02:30 UTC is not 02:30 in Berlin; 01:30 UTC is, in winter.
      expect(await events.fire(new Date('2026-01-15T02:30:00Z'))).toBe(0);
      expect(await events.fire(new Date('2026-01-15T01:30:00Z'))).toBe(1);
      for (let i = 0; i < 60; i++) {
        const runs = (await listJobRuns(api, owner, job.id, { limit: 10 })).items;
        if (runs.some((r) => r.status !== 'running')) break;
        for (const name of [runsQueue.main, runsQueue.delay]) {
          const event = await pollEvent(sqs, cloud.queue, name);
          if (event.Records.length === 0) continue;
          await settle(sqs, cloud.queue, name, event, await handler(event));
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      const runs = (await listJobRuns(api, owner, job.id, { limit: 10 })).items;
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({
        trigger: 'schedule',
        status: 'succeeded',
        exitCode: 0,
        logTail: 'report cloud',
      });

      await deleteJob(api, owner, job.id, ctx);
      expect(events.schedules.size).toBe(0);
    } finally {
      await system?.close();
      undoScheduler();
      undoSqs();
      kms.restore();
      sqs.mock.restore();
      await db.drop();
    }
  }, 180_000);
});
