/**
 * Notification channels for real: the API on real PostgreSQL with pg-boss workers, a real
 * SMTP server on loopback (smtp-server) and a loopback HTTP sink standing in for Slack's
 * incoming webhook, which checks Slack's payload shape. A storm of 100 failed releases in
 * one grouping window reaches each channel as one message. Loopback is never an install's
 * Slack URL: this test's system accepts it through the composition root's test override.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startSmtpServer } from '../support/smtp.ts';
import { anAuditEvent } from '../contracts/store/builders.ts';
import type { SelfhostSystem } from '../../adapters/modes/selfhost.ts';

interface SlackPost {
  body: unknown;
  contentType: string | undefined;
  answered: number;
}

/** What Slack's incoming webhooks accept: JSON with a `text`, and optional mrkdwn section blocks. */
function isSlackPayload(body: unknown): boolean {
  if (typeof body !== 'object' || body === null) return false;
  const b = body as { text?: unknown; blocks?: unknown };
  if (typeof b.text !== 'string' || b.text.length === 0 || b.text.length > 40_000) return false;
  if (b.blocks === undefined) return true;
  return (
    Array.isArray(b.blocks) &&
    b.blocks.length <= 50 &&
    b.blocks.every(
      (k: { type?: unknown; text?: { type?: unknown; text?: unknown } }) =>
        k.type === 'section' &&
        k.text?.type === 'mrkdwn' &&
        typeof k.text.text === 'string' &&
        k.text.text.length <= 3000,
    )
  );
}

const waitFor = async (what: string, done: () => boolean, ms = 30_000) => {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe('notification channels', () => {
  let api: ApiHarness & { system: SelfhostSystem };
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let sink: http.Server;
  let sinkUrl: string;
  const posts: SlackPost[] = [];
  let refuseNext = 0;
  let token: string;
  let orgId: string;
  let otherToken: string;

  beforeAll(async () => {
    smtp = await startSmtpServer();
    sink = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (c: Buffer) => (raw += c));
      req.on('end', () => {
        let body: unknown = null;
        try {
          body = JSON.parse(raw);
        } catch {
          /* answered as Slack answers a bad body */
        }
        // Slack answers `invalid_payload` with 400 to a body it cannot read.
        const answered = refuseNext-- > 0 ? 503 : isSlackPayload(body) ? 200 : 400;
        posts.push({ body, contentType: req.headers['content-type'], answered });
        res.writeHead(answered).end(answered === 200 ? 'ok' : 'invalid_payload');
      });
    });
    await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
    sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}/services/T0/B0/sink`;
    api = await startSelfhostApi({
      workers: true,
      webhooksToLoopback: true,
      smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
      publicUrl: 'https://sdo.example.test',
    });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'notify@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    otherToken = (
      await api.request('POST', '/api/auth/local/signup', {
        body: { email: 'other@example.com', password: 'correct horse battery' },
      })
    ).body.token;
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await smtp?.close();
    await new Promise<void>((r) => (sink ? sink.close(() => r()) : r()));
  });

  it('answers bad channels with a 400 naming the field', async () => {
    const cases: [unknown, string][] = [
      [{ kind: 'slack', name: 'x', url: 'https://example.com/services/a/b/c' }, 'url'],
      [{ kind: 'slack', name: 'x', url: 'not a url' }, 'url'],
      [{ kind: 'email', name: 'x', address: 'ops@example.com, boss@example.com' }, 'address'],
      [
        { kind: 'email', name: 'x', address: 'ops@example.com', groupWindowSeconds: 99999 },
        'groupWindowSeconds',
      ],
      [
        { kind: 'email', name: 'x', address: 'ops@example.com', events: ['release.exploded'] },
        'events',
      ],
      [{ kind: 'pager', name: 'x' }, 'kind'],
    ];
    for (const [body, field] of cases) {
      const r = await api.request('POST', '/api/notification-channels', { token, body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.message, JSON.stringify(body)).toContain(field);
    }
  });

  it('sends a test message to Slack and by mail, logged, and hides the Slack URL', async () => {
    const slack = await api.request('POST', '/api/notification-channels', {
      token,
      body: { kind: 'slack', name: 'alerts', url: sinkUrl },
    });
    expect(slack.status, slack.text).toBe(201);
    expect(slack.text).not.toContain('/T0/B0/sink');
    const listed = await api.request('GET', '/api/notification-channels', { token });
    expect(listed.text).not.toContain('/T0/B0/sink');
    const test = await api.request('POST', `/api/notification-channels/${slack.body.id}/test`, {
      token,
    });
    expect(test.body).toEqual({ delivered: true, error: null });
    expect(posts.at(-1)!.contentType).toBe('application/json');
    expect(posts.at(-1)!.answered).toBe(200);

    const email = await api.request('POST', '/api/notification-channels', {
      token,
      body: { kind: 'email', name: 'ops', address: 'ops@example.com' },
    });
    expect(email.status, email.text).toBe(201);
    const mailTest = await api.request('POST', `/api/notification-channels/${email.body.id}/test`, {
      token,
    });
    expect(mailTest.body).toEqual({ delivered: true, error: null });
    expect(smtp.received.at(-1)).toMatchObject({
      to: 'ops@example.com',
      subject: '[selfdevop] Test notification',
    });
    const log = await api.request('GET', `/api/notification-channels/${email.body.id}/deliveries`, {
      token,
    });
    expect(log.body.items).toEqual([
      expect.objectContaining({ eventType: 'notification.test', events: 1, delivered: true }),
    ]);
    // Another org sees none of it.
    for (const [method, path] of [
      ['POST', `/api/notification-channels/${email.body.id}/test`],
      ['GET', `/api/notification-channels/${email.body.id}/deliveries`],
      ['DELETE', `/api/notification-channels/${email.body.id}`],
    ] as const) {
      expect((await api.request(method, path, { token: otherToken })).status).toBe(404);
    }
    for (const id of [slack.body.id, email.body.id])
      expect(
        (await api.request('DELETE', `/api/notification-channels/${id}`, { token })).status,
      ).toBe(204);
  });

  it('groups a storm of 100 failed releases into one message per channel, retrying a refused one', async () => {
    for (const body of [
      { kind: 'slack', name: 'storm', url: sinkUrl, groupWindowSeconds: 10 },
      { kind: 'email', name: 'storm', address: 'storm@example.com', groupWindowSeconds: 10 },
    ]) {
      const r = await api.request('POST', '/api/notification-channels', {
        token,
        body: { ...body, events: ['release.failed'] },
      });
      expect(r.status, r.text).toBe(201);
    }
    const before = posts.length;
    const mailsBefore = smtp.received.length;
    refuseNext = 1; // Slack's first answer is a 503: the queue retries the grouped message.
    const store = api.system.api.store;
    const events = api.system.release.events!;
    for (let i = 0; i < 100; i++) {
      const e = anAuditEvent(orgId, {
        actorType: 'system',
        actorId: 'worker',
        action: 'release.failed',
        targetType: 'release',
        targetId: `rel_storm_${i}`,
        data: { serviceId: 'svc_storm', environmentId: 'env_storm', error: 'health check failed' },
      });
      await store.withOrg(orgId, async (r) => {
        await r.audit.append(e);
        await events.publish(e);
      });
    }
    await waitFor(
      'one delivered Slack message and one mail',
      () =>
        posts.slice(before).some((p) => p.answered === 200) && smtp.received.length > mailsBefore,
      60_000,
    );
    // Waiting past delivery would show a second message of the storm, were there one.
    await new Promise((r) => setTimeout(r, 4_000));
    const slackPosts = posts.slice(before);
    expect(slackPosts.map((p) => p.answered)).toEqual([503, 200]);
    const body = slackPosts[1]!.body as { text: string; blocks: { text: { text: string } }[] };
    expect(body.text).toBe('selfdevop: 100 × Release failed');
    expect(body.blocks[1]!.text.text).toMatch(
      /<https:\/\/sdo\.example\.test\/dashboard\/releases\/rel_storm_\d+\|Open in the dashboard>/,
    );
    expect(body.blocks[1]!.text.text).toContain('docs/runbooks/app-down.md');
    const mails = smtp.received.slice(mailsBefore);
    expect(mails).toHaveLength(1);
    expect(mails[0]).toMatchObject({
      to: 'storm@example.com',
      subject: '[selfdevop] 100 × Release failed',
    });
    expect(mails[0]!.text).toContain('Runbook: docs/runbooks/app-down.md');

    const channels = (await api.request('GET', '/api/notification-channels', { token })).body
      .items as { id: string; kind: string }[];
    const slackId = channels.find((c) => c.kind === 'slack')!.id;
    const log = await api.request('GET', `/api/notification-channels/${slackId}/deliveries`, {
      token,
    });
    expect(
      log.body.items.map((d: { events: number; attempt: number; delivered: boolean }) => [
        d.events,
        d.attempt,
        d.delivered,
      ]),
    ).toEqual([
      [100, 1, false],
      [100, 2, true],
    ]);
  }, 90_000);
});
