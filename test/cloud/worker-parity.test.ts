/**
 * Mode parity for the custom-domain and webhook workers: the same scenario runs on the
 * self-hosted system (pg-boss workers) and on the cloud system (fromCloud, its worker
 * Lambda handler fed SQS-shaped events, as the event source mappings would), each on its
 * own real PostgreSQL database, against one real DNS server (pebble-challtestsrv), one
 * real Caddy and one loopback webhook receiver. Both must end in the same state.
 *
 * Scenario: a domain is added before its TXT record exists (the first check fails), the
 * record is set and "verify now" is asked; the domain verifies, finds no serving release
 * to join (the service never deployed) and waits; `domain.dns_verified` is delivered to a
 * webhook whose first attempt the receiver refuses, so the queue retries it. In the cloud,
 * the per-minute sweep rule and the hourly maintenance rule then travel EventBridge event →
 * schedule Lambda → scheduled-jobs queue → worker, re-arming a domain whose check was lost.
 */
import { nodeKeyHasher } from '../../adapters/hash/node-crypto.ts';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate } from '../../adapters/db/migrator.ts';
import { fromCloud, type CloudSystem } from '../../adapters/modes/cloud.ts';
import { fromCloudEnv } from '../../adapters/modes/cloud-config.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { DomainDeps } from '../../core/domains/deps.ts';
import { createDomain, verifyDomain } from '../../core/domains/use-cases.ts';
import { InvalidInput } from '../../core/errors.ts';
import type { Domain } from '../../core/models.ts';
import { createOrg } from '../../core/orgs/use-cases.ts';
import { createProject } from '../../core/projects/use-cases.ts';
import { createService } from '../../core/services/use-cases.ts';
import type { Principal } from '../../core/deps.ts';
import { createWebhook, listWebhookDeliveries, testWebhook } from '../../core/webhooks/manage.ts';
import { verifySignature } from '../../core/webhooks/signature.ts';
import type { ApiDeps } from '../../core/system.ts';
import { createScheduleHandler } from '../../functions/lambda/schedule-handler.ts';
import { createWorkerHandler, sqsWorkerHandlers } from '../../functions/lambda/worker-handler.ts';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { createTestDatabase } from '../support/db.ts';
import { pebbleAvailable, startChallTestSrv, type ChallTestSrv } from '../support/pebble.ts';
import { available } from '../support/services.ts';
import { fakeKmsForEveryClient } from './fakes/kms.ts';
import { FakeSqs } from './fakes/sqs.ts';
import { pollEvent, settle } from './sqs-lambda.ts';

const ready =
  (await available('postgres')) && (await available('caddy')) && (await pebbleAvailable());

const keyArn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

interface Delivery {
  deliveryId: string;
  attempt: string;
  answered: number;
  body: string;
  signature: string;
}

/** What a run ends with, in terms both modes share (no ids, no timestamps). */
interface EndState {
  domain: Pick<Domain, 'status' | 'dnsStatus' | 'tlsStatus' | 'lastError'> & { checked: boolean };
  auditActions: string[];
  deliveries: {
    attempt: string;
    answered: number;
    type: string;
    hostname: unknown;
    signed: boolean;
  }[];
  /** What the API's deliveries list says, as each mode's worker recorded it. */
  recorded: [type: string, attempt: number, delivered: boolean, status: number | null][];
  /** A test event sent from the API process with that mode's sender (refused once, as all). */
  testEvent: { delivered: boolean; status: number | null; error: string | null };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!ready)(
  'custom-domain and webhook workers: pg-boss and the Lambda worker end alike',
  () => {
    let dns: ChallTestSrv;
    let caddy: TestCaddy;
    let receiver: http.Server;
    let receiverUrl: string;
    const deliveries: Delivery[] = [];

    beforeAll(async () => {
      dns = await startChallTestSrv();
      caddy = await startCaddy();
      // Refuses the first attempt of each delivery: the queue must retry it.
      const refused = new Set<string>();
      receiver = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c));
        req.on('end', () => {
          const deliveryId = String(req.headers['x-selfdevop-delivery']);
          const answered = refused.has(deliveryId) ? 204 : 503;
          refused.add(deliveryId);
          deliveries.push({
            deliveryId,
            attempt: String(req.headers['x-selfdevop-attempt']),
            answered,
            body,
            signature: String(req.headers['x-selfdevop-signature']),
          });
          res.writeHead(answered).end();
        });
      });
      // Loopback is never an install's webhook target: each system below accepts this
      // receiver through its composition root's test-only override.
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
      receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
    }, 60_000);

    afterAll(async () => {
      await caddy?.stop();
      await dns?.stop();
      await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
    });

    /**
     * Runs the scenario with one mode's ports; `work` lets that mode's workers run until
     * `done` holds (pg-boss works on its own; the cloud pump feeds the Lambda handler).
     */
    async function runScenario(
      api: ApiDeps,
      domains: DomainDeps,
      hostname: string,
      work: (done: () => Promise<boolean>, what: string) => Promise<void>,
    ): Promise<{ state: EndState; owner: Principal; serviceId: string }> {
      const ctx = { requestId: null, ip: null };
      const userId = api.ids.newId('usr');
      await api.store.identity.createUser({
        id: userId,
        email: `${hostname}@example.com`,
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
      const org = await createOrg(api, user, { name: hostname }, ctx);
      const owner: Principal = { ...user, orgId: org.id, role: 'owner' };
      const project = await createProject(api, owner, { name: 'shop' }, ctx);
      const service = await createService(
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
      // Through the API's own check: both systems accept this test's loopback receiver; the
      // cloud's refusal of private addresses is asserted below.
      const hook = await createWebhook(
        api,
        owner,
        { url: receiverUrl, events: ['domain.dns_verified'] },
        ctx,
      );

      const added = await createDomain(domains, owner, { serviceId: service.id, hostname }, ctx);
      const get = () =>
        api.store.withOrg(org.id, async (repos) => (await repos.domains.get(added.id))!);
      await work(async () => (await get()).lastError !== null, 'the first check');
      const first = await get();
      expect(first).toMatchObject({ status: 'pending_dns', dnsStatus: 'pending' });
      expect(first.lastError).toMatch(/TXT record _selfdevop-challenge\..* must hold/);

      const txt = added.records.find((r) => r.type === 'TXT')!;
      await dns.setTxt(txt.name, txt.value);
      await verifyDomain(domains, owner, added.id, ctx);
      const mine = () => deliveries.filter((d) => d.deliveryId.startsWith(`${hook.id}:`));
      const recorded = async () =>
        (await listWebhookDeliveries(api, owner, hook.id, { limit: 200 })).items;
      await work(
        async () =>
          (await get()).status === 'dns_verified' &&
          (await get()).lastError?.includes('no serving release') === true &&
          mine().some((d) => d.answered === 204) &&
          // The worker records an attempt once the receiver has answered it.
          (await recorded()).some((d) => d.delivered),
        'dns_verified and its webhook delivered',
      );

      const domain = await get();
      const audit = await api.store.withOrg(org.id, (repos) =>
        repos.audit.list({ limit: 200 }, { targetId: domain.id }),
      );
      const now = Math.floor(Date.now() / 1000);
      const state: EndState = {
        domain: {
          status: domain.status,
          dnsStatus: domain.dnsStatus,
          tlsStatus: domain.tlsStatus,
          lastError: domain.lastError,
          checked: domain.checkedAt !== null,
        },
        auditActions: [...new Set(audit.items.map((e) => e.action))].sort(),
        deliveries: mine().map((d) => {
          const event = JSON.parse(d.body) as { type: string; data: { hostname: unknown } };
          return {
            attempt: d.attempt,
            answered: d.answered,
            type: event.type,
            hostname: event.data.hostname === hostname ? 'the domain' : event.data.hostname,
            signed: verifySignature(hook.secret, d.signature, d.body, now),
          };
        }),
        recorded: (await recorded()).map((d) => [
          d.eventType,
          d.attempt,
          d.delivered,
          d.responseStatus,
        ]),
        testEvent: await testWebhook(api, owner, hook.id, ctx).then(
          ({ delivered, status, error }) => ({ delivered, status, error }),
        ),
      };
      return { state, owner, serviceId: service.id };
    }

    const expected: EndState = {
      domain: {
        status: 'dns_verified',
        dnsStatus: 'verified',
        tlsStatus: 'none',
        lastError:
          'the service has no serving release in this environment yet; the host is routed after its first release completes',
        checked: true,
      },
      auditActions: ['domain.created', 'domain.dns_verified', 'domain.verify_requested'],
      deliveries: [
        {
          attempt: '1',
          answered: 503,
          type: 'domain.dns_verified',
          hostname: 'the domain',
          signed: true,
        },
        {
          attempt: '2',
          answered: 204,
          type: 'domain.dns_verified',
          hostname: 'the domain',
          signed: true,
        },
      ],
      recorded: [
        ['domain.dns_verified', 1, false, 503],
        ['domain.dns_verified', 2, true, 204],
      ],
      testEvent: { delivered: false, status: 503, error: null },
    };

    let selfhosted: EndState;

    it('self-hosted: pg-boss workers take the domain to dns_verified and deliver its event, retried once', async () => {
      const api = await startSelfhostApi({
        workers: true,
        caddyAdminUrl: caddy.adminUrl,
        caddyServer: caddy.serverName,
        edgeIpv4: ['127.0.0.1'],
        dnsServers: [dns.dnsAddress],
        webhooksToLoopback: true,
      });
      try {
        const deps = api.system.api.domains!.deps;
        ({ state: selfhosted } = await runScenario(
          api.system.api,
          deps,
          'pgboss.parity.example.test',
          async (done, what) => {
            const end = Date.now() + 30_000;
            while (!(await done())) {
              if (Date.now() > end)
                throw new Error(`pg-boss workers did not reach ${what} within 30 s`);
              await sleep(100);
            }
          },
        ));
        expect(selfhosted).toEqual(expected);
      } finally {
        await api.close();
      }
    }, 60_000);

    it('cloud: the worker Lambda, fed SQS events, ends in the same state, with the ledger in PostgreSQL and the sweep on a schedule', async () => {
      const db = await createTestDatabase('cloud_parity');
      await migrate(db.url);
      const fake = new FakeSqs();
      const undoSqs = fake.interceptEveryClient();
      const kms = fakeKmsForEveryClient(keyArn);
      let system: CloudSystem | undefined;
      const cloudLines: string[] = [];
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
            EDGE_IPV4: '127.0.0.1',
            DNS_SERVERS: dns.dnsAddress,
            LOG_LEVEL: 'info',
          }),
          // The cloud's own sender (private ranges refused), accepting this test's loopback receiver.
          {
            logDestination: { write: (l) => void cloudLines.push(l) },
            webhooksToLoopback: true,
            runtime: new DockerRuntime(),
          },
        );
        const cloud = system;
        // API keys are hashed natively in the cloud as in the self-hosted mode.
        expect(cloud.api.keyHasher).toBe(nodeKeyHasher);
        // The same table pg-boss consumes in the self-hosted run, plus the scheduled-jobs queue.
        const handlers = sqsWorkerHandlers(cloud);
        const cloudWorkerQueues = Object.keys(handlers);
        // What the stack creates: each worker queue, its FIFO dead-letter queue and its delay queue.
        for (const q of cloudWorkerQueues) fake.createWorkerQueue(cloud.queue.physicalNames(q));
        const logger = new MemoryLogger();
        const handler = createWorkerHandler({ queue: cloud.queue, handlers, logger });
        const physical = cloudWorkerQueues.flatMap((q) => [
          cloud.queue.physicalNames(q).main,
          cloud.queue.physicalNames(q).delay,
        ]);
        let batches = 0;

        // The SSRF guard is on in the cloud: the API would refuse this webhook.
        const probe = await runScenarioGuard(cloud.api, 'http://10.1.2.3/hooks');
        expect(probe).toBeInstanceOf(InvalidInput);

        /** Lambda's event source mappings: every queue polled, each batch handed to the worker. */
        const work = async (done: () => Promise<boolean>, what: string) => {
          const end = Date.now() + 30_000;
          while (!(await done())) {
            if (Date.now() > end)
              throw new Error(
                `the Lambda worker did not reach ${what} within 30 s: ${JSON.stringify(logger.entries.slice(-5))}`,
              );
            for (const name of physical) {
              const event = await pollEvent(fake, cloud.queue, name);
              if (event.Records.length === 0) continue;
              batches++;
              await settle(fake, cloud.queue, name, event, await handler(event));
            }
            await sleep(100);
          }
        };
        const {
          state: cloudState,
          owner,
          serviceId,
        } = await runScenario(cloud.api, cloud.domains, 'lambda.parity.example.test', work);
        expect(cloudState).toEqual(expected);
        expect(cloudState).toEqual(selfhosted);
        expect(batches).toBeGreaterThanOrEqual(5);
        // Nothing was given up on, and the idempotency keys of the sends sit in PostgreSQL.
        for (const q of cloudWorkerQueues)
          expect(fake.bodies(cloud.queue.physicalNames(q).deadLetter), q).toEqual([]);
        expect(await cloud.api.store.ping()).toBeUndefined();
        const keys = await countLedgerKeys(db.url);
        expect(keys['domain-checks']).toBeGreaterThanOrEqual(2);
        expect(keys['webhook-events']).toBe(1);
        expect(keys['webhook-deliveries']).toBe(1);

        // A domain whose first check message was lost: the per-minute EventBridge rule, through
        // the schedule Lambda and the scheduled-jobs queue, has the worker's sweep re-arm it.
        const lost = await createDomain(
          cloud.domains,
          owner,
          { serviceId, hostname: 'lost.parity.example.test' },
          null,
        );
        fake.byName(cloud.queue.physicalNames('domain-checks').main).messages.length = 0;
        const lostDomain = () =>
          cloud.api.store.withOrg(
            owner.orgId!,
            async (repos) => (await repos.domains.get(lost.id))!,
          );
        expect((await lostDomain()).checkedAt).toBeNull();
        const schedule = createScheduleHandler({
          queue: cloud.queue,
          rulePrefix: 'selfdevop-',
          logger,
        });
        const fired = await schedule(scheduledEvent('selfdevop-domain-sweep'));
        expect(fired.job).toBe('domain-sweep');
        await work(async () => (await lostDomain()).checkedAt !== null, 'the swept domain checked');
        expect((await lostDomain()).lastError).toMatch(
          /TXT record _selfdevop-challenge\.lost\.parity\.example\.test must hold/,
        );
        // The hourly maintenance job runs on the same path and prunes the ledger.
        expect((await schedule(scheduledEvent('selfdevop-maintenance'))).job).toBe('maintenance');
        expect((await countLedgerKeys(db.url))['scheduled-jobs']).toBe(2);
        const pruned = () =>
          cloudLines.some((l) => l.includes('idempotency keys past retention forgotten'));
        expect(pruned()).toBe(false);
        await work(async () => pruned(), 'the maintenance job run');
        expect(cloudLines.filter((l) => l.includes('no such scheduled job'))).toEqual([]);
      } finally {
        await system?.close();
        undoSqs();
        kms.restore();
        fake.mock.restore();
        await db.drop();
      }
    }, 60_000);
  },
);

/** What an EventBridge rule on a schedule delivers to the schedule Lambda. */
function scheduledEvent(rule: string) {
  return {
    version: '0',
    id: `evt-${rule}-${Date.now()}`,
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: '111122223333',
    time: new Date().toISOString(),
    region: 'eu-west-1',
    resources: [`arn:aws:events:eu-west-1:111122223333:rule/${rule}`],
    detail: {},
  };
}

/** Tries to make a private-address webhook through the cloud's own config; returns what it threw. */
async function runScenarioGuard(api: ApiDeps, url: string): Promise<unknown> {
  const userId = api.ids.newId('usr');
  await api.store.identity.createUser({
    id: userId,
    email: 'guard@example.com',
    passwordHash: 'unused',
    createdAt: api.clock.now().toISOString(),
  });
  const user: Principal = { actorType: 'user', actorId: userId, userId, orgId: null, role: null };
  const org = await createOrg(api, user, { name: 'guard' }, { requestId: null, ip: null });
  try {
    await createWebhook(
      api,
      { ...user, orgId: org.id, role: 'owner' },
      { url },
      { requestId: null, ip: null },
    );
    return null;
  } catch (e) {
    return e;
  }
}

/** Idempotency keys per queue in the ledger table, read as the owner. */
async function countLedgerKeys(url: string): Promise<Record<string, number>> {
  const { fromDatabaseUrl } = await import('../../adapters/db/postgres.ts');
  const owner = fromDatabaseUrl(url, { appRole: null, max: 1 });
  try {
    const r = await owner.query<{ queue: string; n: string }>(
      'select queue, count(*) as n from queue_idempotency group by queue',
    );
    return Object.fromEntries(r.rows.map((x) => [x.queue, Number(x.n)]));
  } finally {
    await owner.close();
  }
}
