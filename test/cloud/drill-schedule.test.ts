/**
 * Weekly drills in cloud mode: the cloud system (fromCloud) on its own PostgreSQL database,
 * SQS faked at the SDK boundary (KMS too). Nothing is scheduled for drills in either mode:
 * the worker decides when a backup completes (`afterBackup`, the same core as self-hosted),
 * and the drill it queues goes to the data-service-work SQS queue the worker Lambda reads.
 * So the contract to hold here is that a skipped drill sends nothing and a due one sends
 * the `drill` message, through the cloud's own queue.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { fromCloud, type CloudSystem } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { afterBackup } from '../../core/data-services/backup-work.ts';
import { setDrillSchedule } from '../../core/data-services/backup-use-cases.ts';
import type { DataServiceDeps } from '../../core/data-services/deps.ts';
import { createDataService } from '../../core/data-services/use-cases.ts';
import type { Principal } from '../../core/deps.ts';
import type { DataService } from '../../core/models.ts';
import { createNode } from '../../core/nodes/use-cases.ts';
import { createOrg } from '../../core/orgs/use-cases.ts';
import { createProject } from '../../core/projects/use-cases.ts';
import { sqsWorkerHandlers } from '../../functions/lambda/worker-handler.ts';
import { aDataServiceBackup } from '../contracts/store/builders.ts';
import { createTestDatabase } from '../support/db.ts';
import { fakeKmsForEveryClient } from './fakes/kms.ts';
import { FakeSqs } from './fakes/sqs.ts';

const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

describe('drill schedules in cloud mode (SQS, the same worker core)', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let fake: FakeSqs;
  let undoSqs: () => void;
  let kms: ReturnType<typeof fakeKmsForEveryClient>;
  let cloud: CloudSystem;
  let owner: Principal;
  let ds: DataService;
  const ctx = { requestId: null, ip: null };
  const ago = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString();

  beforeAll(async () => {
    db = await createTestDatabase('cloud_drills');
    await migrate(db.url);
    fake = new FakeSqs();
    undoSqs = fake.interceptEveryClient();
    kms = fakeKmsForEveryClient(keyArn);
    cloud = await fromCloud(
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
        CADDY_ADMIN_URL: 'http://127.0.0.1:1',
        LOG_LEVEL: 'silent',
        OPERATOR_EMAILS: 'cloud-drills@example.com',
      }),
    );
    for (const q of Object.keys(sqsWorkerHandlers(cloud)))
      fake.createWorkerQueue(cloud.queue.physicalNames(q));
    const api = cloud.api;
    const userId = api.ids.newId('usr');
    await api.store.identity.createUser({
      id: userId,
      email: 'cloud-drills@example.com',
      passwordHash: 'unused',
      createdAt: api.clock.now().toISOString(),
    });
    const user: Principal = { actorType: 'user', actorId: userId, userId, orgId: null, role: null };
    const org = await createOrg(api, user, { name: 'drillcloud' }, ctx);
    owner = { ...user, orgId: org.id, role: 'owner' };
    const project = await createProject(api, owner, { name: 'shop' }, ctx);
    await createNode(
      api,
      owner,
      { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
      ctx,
    );
    const created = await createDataService(
      api,
      owner,
      { projectId: project.id, name: 'orders', engine: 'mariadb', drillSchedule: 'weekly' },
      ctx,
    );
    expect(created.drillSchedule).toBe('weekly');
    ds = (await api.store.withOrg(org.id, (r) => r.dataServices.get(created.id)))!;
  }, 120_000);

  afterAll(async () => {
    await cloud?.close();
    undoSqs?.();
    kms?.restore();
    fake?.mock.restore();
    await db?.drop();
  });

  /** The drill messages on the data-service-work queue, by backup id. */
  const drillsQueued = () =>
    fake
      .bodies(cloud.queue.physicalNames('data-service-work').main)
      .map((b) => JSON.parse(b) as unknown)
      .map((b) => JSON.stringify(b))
      .filter((b) => b.includes('"op":"drill"'));

  const insert = (o: Parameters<typeof aDataServiceBackup>[2]) => {
    const row = aDataServiceBackup(ds.orgId, ds.id, {
      status: 'completed',
      trigger: 'schedule',
      ...o,
    });
    return cloud.release.store
      .withOrg(ds.orgId, (r) => r.dataServiceBackups.insert(row))
      .then(() => row);
  };

  it('weekly: a backup covered by a drill of the last 7 days queues nothing; one that is not queues its drill on SQS', async () => {
    const deps = cloud.release as unknown as DataServiceDeps;
    await insert({ startedAt: ago(2), drillStatus: 'passed', drilledAt: ago(2) });
    const covered = await insert({ startedAt: new Date().toISOString() });
    expect((await afterBackup(deps, ds, covered)).drill).toBe(false);
    expect(drillsQueued().filter((b) => b.includes(covered.id))).toEqual([]);

    // A drill that failed since: the next backup is drilled at once, through the cloud's queue.
    await insert({ startedAt: ago(1), drillStatus: 'failed', drilledAt: ago(1) });
    const retry = await insert({ startedAt: new Date(Date.now() + 500).toISOString() });
    expect((await afterBackup(deps, ds, retry)).drill).toBe(true);
    expect(drillsQueued().filter((b) => b.includes(retry.id))).toHaveLength(1);

    // The same data service set back to every backup: drilled whatever the history.
    await setDrillSchedule(cloud.api, owner, ds.id, { drillSchedule: 'every_backup' }, ctx);
    const fresh = (await cloud.api.store.withOrg(ds.orgId, (r) => r.dataServices.get(ds.id)))!;
    const next = await insert({ startedAt: new Date(Date.now() + 1000).toISOString() });
    expect((await afterBackup(deps, fresh, next)).drill).toBe(true);
    const sent = drillsQueued().filter((b) => b.includes(next.id));
    expect(sent).toHaveLength(1);
    expect(sent[0]).toContain(`"dataServiceId":"${ds.id}"`);
  });
});
