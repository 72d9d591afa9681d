/**
 * Teams in cloud mode: the API built by the cloud composition root (Cognito sign-in, SES
 * mail, RDS-shaped PostgreSQL). An owner invites by email through SES (faked at the SDK
 * boundary); the invitee signs in with Cognito and accepting links their Cognito user to
 * the org. Local signup is off here, invite or not.
 */
import { SESv2Client, SendEmailCommand } from '@aws-sdk/client-sesv2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../adapters/logger/memory.ts';
import { createPreTokenHandler } from '../../functions/lambda/cognito-tokens-handler.ts';
import { webhookEventsQueue } from '../../core/webhooks/events.ts';
import { httpRequester, type Requester } from '../support/http.ts';
import { FakeSqs } from './fakes/sqs.ts';
import { hostedClientId, startCloudDashboard, type CloudDashboard } from './hosted-sign-in.ts';

const ses = mockClient(SESv2Client);
// Member and invite events go to the webhook fan-out queue, as release events do.
const sqs = new FakeSqs();
let undoSqs: () => void;
const sent: { to: string; subject: string; text: string }[] = [];

let app: CloudDashboard;
let req: Requester;
let n = 0;

/** A Cognito user signing in: the tokens trigger provisions them, then an access token. */
async function cognitoUser(email: string): Promise<string> {
  const sub = `0000000${++n}-aaaa-bbbb-cccc-${Date.now().toString().padStart(12, '0')}`;
  await createPreTokenHandler({
    identity: app.system.api.store.identity,
    clock: app.system.api.clock,
    logger: new MemoryLogger(),
  })({
    version: '2',
    triggerSource: 'TokenGeneration_HostedAuth',
    region: app.jwks.region,
    userPoolId: app.jwks.userPoolId,
    userName: sub,
    request: { userAttributes: { sub, email } },
    response: {},
  });
  return app.jwks.sign({
    sub,
    email,
    iat: Math.floor(Date.now() / 1000),
    ttlSeconds: 600,
    clientId: hostedClientId,
  });
}

beforeAll(async () => {
  ses.on(SendEmailCommand).callsFake((input: SendEmailCommand['input']) => {
    for (const to of input.Destination?.ToAddresses ?? [])
      sent.push({
        to,
        subject: input.Content?.Simple?.Subject?.Data ?? '',
        text: input.Content?.Simple?.Body?.Text?.Data ?? '',
      });
    return { MessageId: `m-${sent.length}` };
  });
  undoSqs = sqs.interceptEveryClient();
  app = await startCloudDashboard();
  sqs.createWorkerQueue(app.system.queue.physicalNames(webhookEventsQueue));
  req = httpRequester(app.url);
}, 60_000);

afterAll(async () => {
  await app?.close();
  ses.restore();
  undoSqs?.();
  sqs.mock.restore();
});

describe('teams in cloud mode', () => {
  it('invites through SES, and a Cognito user accepting joins the org', async () => {
    const owner = await cognitoUser('cloud-owner@example.com');
    const org = await req('POST', '/api/orgs', { token: owner, body: { name: 'Cloud team' } });
    expect(org.status, org.text).toBe(201);
    const invite = await req('POST', '/api/invites', {
      token: owner,
      body: { email: 'cloud-dev@example.com', role: 'deployer' },
    });
    expect(invite.status, invite.text).toBe(201);

    const mail = sent.find((m) => m.to === 'cloud-dev@example.com');
    expect(mail?.subject).toBe('Join Cloud team on selfdevop');
    // The link opens the cloud dashboard (DASHBOARD_URL).
    const link = new URL(/(http\S+)/.exec(mail!.text.split('Accept the invite: ')[1]!)![1]!);
    expect(link.origin + link.pathname).toBe(`${app.url}/dashboard/invites/accept`);
    const token = link.searchParams.get('token')!;

    // The link's page sends someone signed out to the hosted sign-in, and back; no password form.
    const page = await fetch(link);
    expect(page.status).toBe(200);
    const pageHtml = await page.text();
    expect(pageHtml).toContain(
      `href="/dashboard/login?next=${encodeURIComponent(`/dashboard/invites/accept?token=${token}`)}"`,
    );
    expect(pageHtml).not.toContain('type="password"');

    // Local signup is not how anyone joins in the cloud, even with an invite.
    const local = await req('POST', '/api/auth/local/signup', {
      body: {
        email: 'cloud-dev@example.com',
        password: 'correct horse battery',
        inviteToken: token,
      },
    });
    expect(local.status).toBe(404);
    expect(local.body.error.code).toBe('local_auth_disabled');

    const stranger = await cognitoUser('cloud-stranger@example.com');
    const wrong = await req('POST', '/api/invites/accept', { token: stranger, body: { token } });
    expect(wrong.status).toBe(403);
    expect(wrong.body.error.code).toBe('invite_email_mismatch');

    const dev = await cognitoUser('cloud-dev@example.com');
    const accepted = await req('POST', '/api/invites/accept', { token: dev, body: { token } });
    expect(accepted.status, accepted.text).toBe(200);
    expect(accepted.body).toEqual({
      org: { id: org.body.id, name: 'Cloud team' },
      role: 'deployer',
    });
    const members = await req('GET', '/api/members', { token: dev });
    expect(
      members.body.items.map((m: { email: string; role: string }) => [m.email, m.role]),
    ).toEqual([
      ['cloud-owner@example.com', 'owner'],
      ['cloud-dev@example.com', 'deployer'],
    ]);
    const again = await req('POST', '/api/invites/accept', { token: dev, body: { token } });
    expect(again.status).toBe(409);
    const events = sqs
      .bodies(app.system.queue.physicalNames(webhookEventsQueue).main)
      .map((b) => JSON.parse(b).payload.event.type as string);
    expect(events).toEqual(['invite.created', 'member.added']);
  });
});
