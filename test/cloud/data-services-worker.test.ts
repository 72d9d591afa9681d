/**
 * Data services in cloud mode: the cloud system (fromCloud) creates a Redis through its API
 * use case, which queues the work on SQS (faked at the SDK boundary, like KMS, which seals
 * the password); the worker Lambda handler, fed the SQS events as the event source mapping
 * would, starts it on the real Docker Engine, checks it answers, and later deletes it with
 * its volume. The same handler table as self-hosted pg-boss (core/queues.ts).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { fromCloud, type CloudSystem } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import {
  createDataService,
  deleteDataService,
  getDataService,
} from '../../core/data-services/use-cases.ts';
import type { Principal } from '../../core/deps.ts';
import { createNode } from '../../core/nodes/use-cases.ts';
import { createOrg } from '../../core/orgs/use-cases.ts';
import { createProject } from '../../core/projects/use-cases.ts';
import { createWorkerHandler, sqsWorkerHandlers } from '../../functions/lambda/worker-handler.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { createTestDatabase } from '../support/db.ts';
import { ensureDataImages, removeContainersByLabel } from '../support/docker.ts';
import { available } from '../support/services.ts';
import { fakeKmsForEveryClient } from './fakes/kms.ts';
import { FakeSqs } from './fakes/sqs.ts';
import { pollEvent, settle } from './sqs-lambda.ts';

const ready = (await available('docker')) && (await available('caddy'));
const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const docker = (...args: string[]) =>
  promisify(execFile)('docker', args, { timeout: 30_000 }).then((r) => r.stdout.trim());

describe.skipIf(!ready)('data services in cloud mode', () => {
  let caddy: TestCaddy;
  let orgId: string | null = null;
  const volumes: string[] = [];
  const networks: string[] = [];

  beforeAll(async () => {
    await ensureDataImages();
    caddy = await startCaddy();
  }, 900_000);
  afterAll(async () => {
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
    for (const v of volumes) await docker('volume', 'rm', '-f', v).catch(() => undefined);
    for (const n of networks) await docker('network', 'rm', n).catch(() => undefined);
  });

  it('provisions Redis through SQS and the worker Lambda, then deletes it with its volume', async () => {
    const db = await createTestDatabase('cloud_data');
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
          // The data service runs on this machine's engine, which in the cloud only an
          // operator named here may register (issue 12, hole 1).
          OPERATOR_EMAILS: 'cloud-data@example.com',
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
      const work = cloud.queue.physicalNames('data-service-work');

      const api = cloud.api;
      const ctx = { requestId: null, ip: null };
      const userId = api.ids.newId('usr');
      await api.store.identity.createUser({
        id: userId,
        email: 'cloud-data@example.com',
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
      const org = await createOrg(api, user, { name: 'datacloud' }, ctx);
      orgId = org.id;
      const owner: Principal = { ...user, orgId: org.id, role: 'owner' };
      const project = await createProject(api, owner, { name: 'shop' }, ctx);
      await createNode(
        api,
        owner,
        {
          name: 'local',
          dockerHost: 'unix:///var/run/docker.sock',
          address: '127.0.0.1',
          labels: { role: 'data' },
        },
        ctx,
      );
      const created = await createDataService(
        api,
        owner,
        { projectId: project.id, name: 'cache', engine: 'redis', persistence: 'none' },
        ctx,
      );
      volumes.push(created.volume);
      networks.push(created.network);
      expect(created.status).toBe('provisioning');
      // The password went through KMS: the row holds ciphertext, never the plaintext.
      const row = await api.store.withOrg(org.id, (r) => r.dataServices.get(created.id));
      expect(row!.sealedPassword).not.toMatch(/^[A-Za-z0-9]{20,}$/);

      /** Feeds the work queue's messages to the worker Lambda until `done` (bounded: 60 rounds). */
      const drive = async (done: () => Promise<boolean>) => {
        for (let i = 0; i < 60 && !(await done()); i++) {
          for (const name of [work.main, work.delay]) {
            const event = await pollEvent(fake, cloud.queue, name);
            if (event.Records.length === 0) continue;
            await settle(fake, cloud.queue, name, event, await handler(event));
          }
          await new Promise((r) => setTimeout(r, 200));
        }
      };
      await drive(
        async () => (await getDataService(api, owner, created.id)).status !== 'provisioning',
      );
      const ds = await getDataService(api, owner, created.id);
      expect(ds.status, ds.error ?? '').toBe('ready');
      expect(await docker('inspect', '-f', '{{.State.Running}}', ds.host)).toBe('true');

      await deleteDataService(api, owner, ds.id, { confirm: 'cache', volume: 'remove' }, ctx);
      await drive(
        async () => (await api.store.withOrg(org.id, (r) => r.dataServices.get(ds.id))) === null,
      );
      expect(await api.store.withOrg(org.id, (r) => r.dataServices.get(ds.id))).toBeNull();
      expect(await docker('ps', '-aq', '--filter', `name=^${ds.host}$`)).toBe('');
      expect(await docker('volume', 'ls', '-q', '--filter', `name=^${ds.volume}$`)).toBe('');
    } finally {
      await system?.close();
      undoSqs();
      kms.restore();
      fake.mock.restore();
      await db.drop();
    }
  }, 180_000);
});
