/**
 * A webhook's test event (POST /api/webhooks/{id}/test): sent once, now, signed like any
 * delivery, audited, and answered with what the receiver said. The system is wired by
 * `wireSystem` with the in-memory ports, as both modes wire it with theirs.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryAuth } from '../../../adapters/auth/memory.ts';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { MemoryDnsResolver } from '../../../adapters/dns/memory.ts';
import { MemoryEdgeRouter } from '../../../adapters/edge/memory.ts';
import { MemoryHttpSender } from '../../../adapters/http/memory.ts';
import { SequenceIds } from '../../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../../adapters/logger/memory.ts';
import { MemoryMetrics } from '../../../adapters/metrics/memory.ts';
import { MemoryHealthProbe } from '../../../adapters/probe/memory.ts';
import { MemoryQueue } from '../../../adapters/queue/memory.ts';
import { MemoryRuntime } from '../../../adapters/runtime/memory.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../../adapters/vault/memory.ts';
import type { OrgPrincipal } from '../../../core/deps.ts';
import { Forbidden, NotFound } from '../../../core/errors.ts';
import { wireSystem, type ApiDeps } from '../../../core/system.ts';
import {
  createWebhook,
  deleteWebhook,
  listWebhookDeliveries,
  testWebhook,
  webhookTestEventType,
} from '../../../core/webhooks/manage.ts';
import { verifySignature } from '../../../core/webhooks/signature.ts';
import { anOrg } from '../../contracts/store.case.ts';

describe('a webhook test event', () => {
  let deps: ApiDeps;
  let http: MemoryHttpSender;
  let clock: ManualClock;
  const ctx = { requestId: 'req_1', ip: null };
  const admin: OrgPrincipal = {
    actorType: 'user',
    actorId: 'usr_1',
    userId: 'usr_1',
    orgId: 'org_a',
    role: 'admin',
  };

  beforeEach(async () => {
    clock = new ManualClock('2027-01-15T12:00:00Z');
    http = new MemoryHttpSender();
    const store = new MemoryStore();
    deps = wireSystem(
      {
        store,
        queue: new MemoryQueue({ clock }),
        vault: new MemoryKeyVault(),
        auth: new MemoryAuth({ clock }),
        runtime: new MemoryRuntime(),
        edge: new MemoryEdgeRouter(),
        probe: new MemoryHealthProbe(),
        dns: new MemoryDnsResolver(),
        http,
        clock,
        ids: new SequenceIds(),
        logger: new MemoryLogger(),
        metrics: new MemoryMetrics(),
      },
      {
        edgeDomain: 'apps.example.test',
        edgeIpv4: [],
        signupMode: 'open',
        maxBodyBytes: 1024,
        version: 'test',
        loginLimits: { perAccount: 10, perIp: 100 },
        allowPrivateWebhooks: false,
      },
    ).api;
    for (const orgId of ['org_a', 'org_b'])
      await store.withOrg(orgId, (r) => r.orgs.insert(anOrg({ id: orgId })));
  });

  it('POSTs a signed webhook.test event once and answers the receiver status, audited', async () => {
    const hook = await createWebhook(deps, admin, { url: 'https://hooks.example.test/in' }, ctx);
    http.respond = () => 204;
    const result = await testWebhook(deps, admin, hook.id, ctx);
    expect(result).toEqual({
      delivered: true,
      status: 204,
      error: null,
      eventId: expect.stringMatching(/^evt_/),
    });
    expect(http.sent).toHaveLength(1);
    const sent = http.sent[0]!;
    expect(sent.url).toBe('https://hooks.example.test/in');
    expect(JSON.parse(sent.body)).toEqual({
      id: result.eventId,
      type: webhookTestEventType,
      createdAt: '2027-01-15T12:00:00.000Z',
      data: { webhookId: hook.id, message: 'a test event from selfdevop' },
    });
    expect(sent.headers['x-selfdevop-event']).toBe('webhook.test');
    expect(sent.headers['x-selfdevop-delivery']).toBe(`${hook.id}:${result.eventId}`);
    const now = Math.floor(clock.now().getTime() / 1000);
    expect(
      verifySignature(hook.secret, sent.headers['x-selfdevop-signature']!, sent.body, now),
    ).toBe(true);
    const audit = await deps.store.withOrg('org_a', (r) =>
      r.audit.list({ limit: 10 }, { action: 'webhook.tested' }),
    );
    expect(audit.items.map((e) => [e.targetId, e.data])).toEqual([
      [hook.id, { eventId: result.eventId, delivered: true, status: 204 }],
    ]);
    const deliveries = await listWebhookDeliveries(deps, admin, hook.id, { limit: 10 });
    expect(deliveries.items).toEqual([
      {
        id: expect.stringMatching(/^dlv_/),
        orgId: 'org_a',
        webhookId: hook.id,
        eventId: result.eventId,
        eventType: 'webhook.test',
        attempt: 1,
        delivered: true,
        responseStatus: 204,
        error: null,
        createdAt: '2027-01-15T12:00:00.000Z',
      },
    ]);
  });

  it('answers a refusal or an unreachable receiver as not delivered, with the reason, never retried', async () => {
    const hook = await createWebhook(deps, admin, { url: 'https://hooks.example.test/in' }, ctx);
    http.respond = () => 500;
    expect(await testWebhook(deps, admin, hook.id, ctx)).toMatchObject({
      delivered: false,
      status: 500,
      error: null,
    });
    http.respond = () => null;
    expect(await testWebhook(deps, admin, hook.id, ctx)).toMatchObject({
      delivered: false,
      status: null,
      error: 'connect ECONNREFUSED https://hooks.example.test/in',
    });
    expect(http.sent).toHaveLength(2);
    // The audit trail, which viewers read, never carries the receiver's address in an error.
    const audit = await deps.store.withOrg('org_a', (r) =>
      r.audit.list({ limit: 10 }, { action: 'webhook.tested' }),
    );
    expect(audit.items.map((e) => e.data)).toEqual([
      { eventId: expect.any(String), delivered: false, status: 500 },
      { eventId: expect.any(String), delivered: false, status: null },
    ]);
    expect(JSON.stringify(audit.items)).not.toContain('hooks.example.test');
  });

  it("answers an unknown, deleted or other org's webhook with NotFound, and a deployer with Forbidden", async () => {
    const hook = await createWebhook(deps, admin, { url: 'https://hooks.example.test/in' }, ctx);
    await expect(testWebhook(deps, { ...admin, orgId: 'org_b' }, hook.id, ctx)).rejects.toThrow(
      NotFound,
    );
    await expect(testWebhook(deps, admin, 'whk_missing', ctx)).rejects.toThrow(NotFound);
    await expect(testWebhook(deps, { ...admin, role: 'deployer' }, hook.id, ctx)).rejects.toThrow(
      Forbidden,
    );
    await expect(
      listWebhookDeliveries(deps, { ...admin, orgId: 'org_b' }, hook.id, { limit: 10 }),
    ).rejects.toThrow(NotFound);
    await expect(
      listWebhookDeliveries(deps, { ...admin, role: 'viewer' }, hook.id, { limit: 10 }),
    ).rejects.toThrow(Forbidden);
    await deleteWebhook(deps, admin, hook.id, ctx);
    await expect(testWebhook(deps, admin, hook.id, ctx)).rejects.toThrow(NotFound);
    await expect(listWebhookDeliveries(deps, admin, hook.id, { limit: 10 })).rejects.toThrow(
      NotFound,
    );
    expect(http.sent).toHaveLength(0);
  });
});
