/**
 * Builds in cloud mode: the cloud system (fromCloud), its API function without git (it
 * leaves the ref to the worker) and its worker Lambda handler fed SQS-shaped events, as
 * the event source mappings would. The worker resolves the ref, fetches the commit from a
 * real git daemon on loopback, builds on the real Docker Engine and deploys behind a real
 * Caddy. KMS and SQS are fakes at the SDK boundary.
 */
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { fromCloud, type CloudSystem } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { Principal } from '../../core/deps.ts';
import { createNode } from '../../core/nodes/use-cases.ts';
import { createOrg } from '../../core/orgs/use-cases.ts';
import { createProject } from '../../core/projects/use-cases.ts';
import {
  createRelease,
  getRelease,
  listReleaseLogs,
  listReleases,
} from '../../core/releases/engine.ts';
import { receivePush, rotatePushHook } from '../../core/services/push-hook.ts';
import { createService } from '../../core/services/use-cases.ts';
import { createWorkerHandler, sqsWorkerHandlers } from '../../functions/lambda/worker-handler.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { createTestDatabase } from '../support/db.ts';
import {
  ensureTestImages,
  removeContainersByLabel,
  removeImagesByLabel,
} from '../support/docker.ts';
import { makeRepo, startGitDaemon, type TestGitServer } from '../support/git-server.ts';
import { available } from '../support/services.ts';
import { fakeKmsForEveryClient } from './fakes/kms.ts';
import { FakeSqs } from './fakes/sqs.ts';
import { pollEvent, settle } from './sqs-lambda.ts';

const ready = (await available('docker')) && (await available('caddy'));
const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const runId = `${process.pid}-${Date.now()}`;

describe.skipIf(!ready)('a build from git in cloud mode', () => {
  let caddy: TestCaddy;
  let daemon: TestGitServer;
  let orgId: string | null = null;

  beforeAll(async () => {
    await ensureTestImages();
    [caddy, daemon] = await Promise.all([startCaddy(), startGitDaemon()]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([caddy?.stop(), daemon?.stop()]);
    if (orgId) {
      await removeContainersByLabel({ 'selfdevop.org': orgId });
      await removeImagesByLabel({ 'selfdevop.org': orgId });
    }
  });

  it('is resolved, fetched and built by the worker Lambda, and served; the API refuses a private git host; signed pushes deploy, the one during a build started by the worker when it ends', async () => {
    const repo = await makeRepo(daemon.root, 'cloudy');
    const sha = await repo.commit({
      Dockerfile: `FROM selfdevop-test/busybox:base\nENV TEST_RUN=${runId}\nCOPY www /www\nRUN echo "built in the cloud worker"\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n`,
      'www/version': 'cloudy\n',
      'www/health': 'ok\n',
    });
    const db = await createTestDatabase('cloud_build');
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
          // The test deploys to this machine's engine, which in the cloud only an operator
          // named by configuration registers.
          OPERATOR_EMAILS: 'cloud-build@example.com',
        }),
        { runtime: new DockerRuntime(), gitFromLoopback: true },
      );
      const cloud = system;
      const handlers = sqsWorkerHandlers(cloud);
      for (const q of Object.keys(handlers)) fake.createWorkerQueue(cloud.queue.physicalNames(q));
      const logger = new MemoryLogger();
      const handler = createWorkerHandler({ queue: cloud.queue, handlers, logger });
      const physical = Object.keys(handlers).flatMap((q) => [
        cloud.queue.physicalNames(q).main,
        cloud.queue.physicalNames(q).delay,
      ]);

      const api = cloud.api;
      const ctx = { requestId: null, ip: null };
      const userId = api.ids.newId('usr');
      await api.store.identity.createUser({
        id: userId,
        email: 'cloud-build@example.com',
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
      const org = await createOrg(api, user, { name: 'cloudy' }, ctx);
      orgId = org.id;
      const owner: Principal = { ...user, orgId: org.id, role: 'owner' };
      const project = await createProject(api, owner, { name: 'shop' }, ctx);
      await createNode(
        api,
        owner,
        { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
        ctx,
      );
      const base = { projectId: project.id, containerPort: 8080, healthcheckPath: '/health' };
      // A SaaS never builds from its own network: only this test's loopback daemon is let through.
      await expect(
        createService(
          api,
          owner,
          { ...base, name: 'private', git: { url: 'https://10.1.2.3/r.git' } },
          ctx,
        ),
      ).rejects.toThrow(/^git\.url: must be a public repository host/);
      const service = await createService(
        api,
        owner,
        {
          ...base,
          name: 'web',
          git: { url: daemon.url('cloudy') },
          health: { intervalMs: 100, successes: 2, deadlineMs: 8_000, timeoutMs: 1_000 },
        },
        ctx,
      );

      // The API function ships without git: the release leaves with its ref alone.
      const queued = await createRelease({ ...cloud.release, source: undefined }, owner, {
        serviceId: service.id,
      });
      expect(queued).toMatchObject({ gitRef: 'main', gitSha: null });

      const end = Date.now() + 60_000;
      let release = await getRelease(cloud.release, owner, queued.id);
      while (!['completed', 'failed'].includes(release.status)) {
        if (Date.now() > end) throw new Error(`release still ${release.status} after 60 s`);
        for (const name of physical) {
          const event = await pollEvent(fake, cloud.queue, name);
          if (event.Records.length === 0) continue;
          await settle(fake, cloud.queue, name, event, await handler(event));
        }
        await new Promise((r) => setTimeout(r, 100));
        release = await getRelease(cloud.release, owner, queued.id);
      }
      expect(release.status, release.error ?? '').toBe('completed');
      expect(release.gitSha).toBe(sha);
      const lines = (await listReleaseLogs(cloud.release, owner, queued.id)).map((l) => l.line);
      expect(lines).toEqual(
        expect.arrayContaining([`main is ${sha}`, 'built in the cloud worker']),
      );
      const host = `web-production-${service.id.slice(-6)}.localhost`;
      expect(await viaCaddy(caddy.httpPort, host)).toEqual({ status: 200, body: 'cloudy' });

      // Push to deploy through the cloud system: the API function verifies a signed push and
      // queues its commit; a push during that build waits, and the worker Lambda starts it
      // when the build's release ends.
      const hook = await rotatePushHook(api, owner, service.id, ctx);
      const pushedShas = [
        await repo.commit({ 'www/version': 'pushed-1\n' }),
        await repo.commit({ 'www/version': 'pushed-2\n' }),
      ];
      const push = (after: string, n: number) => {
        const body = new TextEncoder().encode(
          JSON.stringify({ ref: 'refs/heads/main', before: sha, after }),
        );
        const headers: Record<string, string> = {
          'x-github-event': 'push',
          'x-github-delivery': `cloud-${runId}-${n}`,
          'x-hub-signature-256': `sha256=${createHmac('sha256', hook.secret).update(body).digest('hex')}`,
        };
        return receivePush(
          api,
          { ...cloud.release, source: undefined },
          hook.id,
          (name) => headers[name],
          body,
          ctx,
        );
      };
      const first = await push(pushedShas[0]!, 1);
      expect(first).toMatchObject({ status: 'deploying', gitSha: pushedShas[0] });
      expect(await push(pushedShas[1]!, 2)).toMatchObject({ status: 'queued' });
      const pushEnd = Date.now() + 90_000;
      for (;;) {
        const all = await listReleases(
          cloud.release,
          owner,
          { limit: 50 },
          { serviceId: service.id },
        );
        const last = all.items.at(-1)!;
        if (last.gitSha === pushedShas[1] && ['completed', 'failed'].includes(last.status)) {
          expect(last.status, last.error ?? '').toBe('completed');
          expect(all.items.map((r) => r.gitSha)).toEqual([sha, ...pushedShas]);
          break;
        }
        if (Date.now() > pushEnd)
          throw new Error(
            `pushes not deployed after 90 s: ${JSON.stringify(all.items.map((r) => [r.gitSha, r.status]))}`,
          );
        for (const name of physical) {
          const event = await pollEvent(fake, cloud.queue, name);
          if (event.Records.length === 0) continue;
          await settle(fake, cloud.queue, name, event, await handler(event));
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await viaCaddy(caddy.httpPort, host)).toEqual({ status: 200, body: 'pushed-2' });
    } finally {
      await system?.close();
      undoSqs();
      kms.restore();
      fake.mock.restore();
      await db.drop();
    }
  }, 120_000);
});

function viaCaddy(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = http.get(
      { host: '127.0.0.1', port, path: '/version', headers: { host }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      },
    );
    r.on('error', reject);
  });
}
