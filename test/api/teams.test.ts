/**
 * Teams for real: invites mailed through a real SMTP server on loopback and accepted from
 * the link in the mail, members listed, re-roled, removed, ownership handed over, against
 * the self-hosted API on PostgreSQL. Every refusal is a 4xx that names the problem.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature } from '../../core/webhooks/signature.ts';
import { startSelfhostApi } from '../support/api.ts';
import type { Requester } from '../support/http.ts';
import { startSmtpServer } from '../support/smtp.ts';

const password = 'correct horse battery';
const publicUrl = 'http://deploy.example.test';
let n = 0;
const anEmail = (who: string) => `${who}${++n}.${Date.now()}@example.com`;

type Api = Awaited<ReturnType<typeof startSelfhostApi>>;
type Smtp = Awaited<ReturnType<typeof startSmtpServer>>;

let smtp: Smtp;
let api: Api;
let req: Requester;
let owner: { token: string; orgId: string; userId: string; email: string };
let webhookSecret: string;
let receiver: http.Server;
const delivered: { body: string; signature: string }[] = [];

/** The invite link of the newest mail to `to`, as a person would click it. */
function linkIn(to: string): URL {
  const mail = smtp.received.filter((m) => m.to === to).at(-1);
  expect(mail, `a mail to ${to}`).toBeDefined();
  const link = /(http:\/\/\S+\/dashboard\/invites\/accept\?token=\S+)/.exec(mail!.text)?.[1];
  expect(link, mail!.text).toBeDefined();
  return new URL(link!);
}
const tokenIn = (to: string) => linkIn(to).searchParams.get('token')!;

async function invite(
  email: string,
  role: string,
  as: { token: string; orgId: string } = owner,
): Promise<string> {
  const res = await req('POST', '/api/invites', {
    token: as.token,
    headers: { 'x-org-id': as.orgId },
    body: { email, role },
  });
  expect(res.status, res.text).toBe(201);
  return res.body.id as string;
}

/** Invites `role`, signs the invitee up with the mailed token: a member of the owner's org. */
async function join(role: string, who = role) {
  const email = anEmail(who);
  await invite(email, role);
  const res = await req('POST', '/api/auth/local/signup', {
    body: { email, password, inviteToken: tokenIn(email) },
  });
  expect(res.status, res.text).toBe(201);
  return { token: res.body.token as string, userId: res.body.user.id as string, email };
}

const as = (token: string, orgId = owner.orgId) => ({ token, headers: { 'x-org-id': orgId } });

async function sql<T extends pg.QueryResultRow>(text: string, values: unknown[] = []) {
  const client = new pg.Client({ connectionString: api.databaseUrl });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  smtp = await startSmtpServer(['bounce@example.com']);
  receiver = http.createServer((r, res) => {
    let body = '';
    r.on('data', (c: Buffer) => (body += c));
    r.on('end', () => {
      delivered.push({ body, signature: String(r.headers['x-selfdevop-signature']) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  api = await startSelfhostApi({
    signupMode: 'first-user',
    smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
    publicUrl,
    workers: true,
    webhooksToLoopback: true,
    // Every member here joins by signing up, many from one address.
    signupLimits: { perIp: 10_000 },
  });
  req = api.request;
  const email = anEmail('owner');
  const res = await req('POST', '/api/auth/local/signup', { body: { email, password } });
  expect(res.status, res.text).toBe(201);
  owner = { token: res.body.token, orgId: res.body.org.id, userId: res.body.user.id, email };
  const hook = await req('POST', '/api/webhooks', {
    ...as(owner.token),
    body: {
      url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`,
      events: ['member.added', 'member.removed', 'member.role_changed', 'invite.created'],
    },
  });
  expect(hook.status, hook.text).toBe(201);
  webhookSecret = hook.body.secret;
}, 60_000);

afterAll(async () => {
  await api?.close();
  await smtp?.close();
  await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
});

describe('invites', () => {
  it('mails a single-use link; signing up with it joins the org, not a new one', async () => {
    const email = anEmail('ann');
    const created = await req('POST', '/api/invites', {
      ...as(owner.token),
      body: { email: email.toUpperCase(), role: 'deployer' },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({ email, role: 'deployer', status: 'pending' });
    expect(created.text).not.toMatch(/sdi_/);

    const link = linkIn(email);
    expect(link.origin + link.pathname).toBe(`${publicUrl}/dashboard/invites/accept`);
    const mail = smtp.received.filter((m) => m.to === email).at(-1)!;
    expect(mail.subject).toMatch(/^Join .+ on selfdevop$/);
    expect(mail.text).toContain(`${owner.email} invited you`);
    expect(mail.text).toContain('as deployer');
    const token = tokenIn(email);

    // Only the hash is kept: the token is nowhere in the database.
    const rows = await sql<Record<string, unknown>>('select * from invites where id = $1', [
      created.body.id,
    ]);
    expect(JSON.stringify(rows)).not.toContain(token);

    // First-user install: strangers cannot sign up, the invited address can.
    const stranger = await req('POST', '/api/auth/local/signup', {
      body: { email: anEmail('stranger'), password },
    });
    expect(stranger.status).toBe(403);
    expect(stranger.body.error.message).toMatch(/invite/);
    const wrongEmail = await req('POST', '/api/auth/local/signup', {
      body: { email: anEmail('thief'), password, inviteToken: token },
    });
    expect(wrongEmail.status).toBe(403);
    expect(wrongEmail.body.error.code).toBe('invite_email_mismatch');
    expect(wrongEmail.text).not.toContain(email);

    const signed = await req('POST', '/api/auth/local/signup', {
      body: { email, password, inviteToken: token },
    });
    expect(signed.status, signed.text).toBe(201);
    expect(signed.body.org.id).toBe(owner.orgId);
    const members = await req('GET', '/api/members', as(signed.body.token));
    expect(members.status).toBe(200);
    expect(members.body.items).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ userId: owner.userId, role: 'owner' }),
        expect.objectContaining({ userId: signed.body.user.id, email, role: 'deployer' }),
      ]),
    );
    const me = await req('GET', '/api/me', { token: signed.body.token });
    expect(me.body).toMatchObject({ orgId: owner.orgId, role: 'deployer' });

    // Single use: the same token again is refused, as a signup and as an accept.
    const again = await req('POST', '/api/auth/local/signup', {
      body: { email: anEmail('ann'), password, inviteToken: token },
    });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('invite_used');
    const accept = await req('POST', '/api/invites/accept', {
      token: signed.body.token,
      body: { token },
    });
    expect(accept.body.error.code).toBe('invite_used');

    const list = await req('GET', '/api/invites', as(owner.token));
    expect(list.body.items.find((i: { id: string }) => i.id === created.body.id)).toMatchObject({
      status: 'accepted',
      acceptedBy: signed.body.user.id,
    });
    const audit = await req('GET', `/api/audit-events?targetId=${signed.body.user.id}`, {
      ...as(owner.token),
    });
    expect(audit.body.items.map((e: { action: string }) => e.action)).toContain('member.added');
  });

  it('lets a signed-in user accept an invite to a second org, then pick it with X-Org-Id', async () => {
    const ann = await join('viewer', 'multi');
    const second = await req('POST', '/api/orgs', {
      token: owner.token,
      headers: { 'x-org-id': owner.orgId },
      body: { name: 'Second' },
    });
    expect(second.status).toBe(201);
    await invite(ann.email, 'admin', { token: owner.token, orgId: second.body.id });
    const accepted = await req('POST', '/api/invites/accept', {
      token: ann.token,
      body: { token: tokenIn(ann.email) },
    });
    expect(accepted.status, accepted.text).toBe(200);
    expect(accepted.body).toEqual({ org: { id: second.body.id, name: 'Second' }, role: 'admin' });

    const ambiguous = await req('GET', '/api/members', { token: ann.token });
    expect(ambiguous.status).toBe(400);
    expect(ambiguous.body.error.code).toBe('org_required');
    const inSecond = await req('GET', '/api/members', as(ann.token, second.body.id));
    expect(inSecond.body.items.map((m: { role: string }) => m.role).sort()).toEqual([
      'admin',
      'owner',
    ]);
    const inFirst = await req('GET', '/api/me', as(ann.token));
    expect(inFirst.body).toMatchObject({ orgId: owner.orgId, role: 'viewer' });
    // Already a member: a second invite to the same org is refused before any mail goes out.
    const dup = await req('POST', '/api/invites', {
      ...as(owner.token, second.body.id),
      body: { email: ann.email, role: 'viewer' },
    });
    expect(dup.status).toBe(409);
    expect(dup.body.error.code).toBe('already_member');
  });

  it('refuses expired, revoked, unknown and malformed tokens with a clear 4xx', async () => {
    const user = await join('viewer', 'tokens');
    const accept = (token: string) =>
      req('POST', '/api/invites/accept', { token: user.token, body: { token } });

    const expiring = anEmail('late');
    const expiringId = await invite(expiring, 'viewer');
    await sql(`update invites set expires_at = now() - interval '1 second' where id = $1`, [
      expiringId,
    ]);
    const expired = await req('POST', '/api/auth/local/signup', {
      body: { email: expiring, password, inviteToken: tokenIn(expiring) },
    });
    expect(expired.status).toBe(409);
    expect(expired.body.error).toMatchObject({ code: 'invite_expired' });
    expect(expired.body.error.message).toMatch(/expired/);
    const listed = await req('GET', '/api/invites', as(owner.token));
    expect(listed.body.items.find((i: { id: string }) => i.id === expiringId).status).toBe(
      'expired',
    );
    // An expired invite no longer blocks a new one to the same address.
    await invite(expiring, 'viewer');

    const revokedEmail = anEmail('revoked');
    const revokedId = await invite(revokedEmail, 'viewer');
    const pending = await req('POST', '/api/invites', {
      ...as(owner.token),
      body: { email: revokedEmail, role: 'viewer' },
    });
    expect(pending.status).toBe(409);
    expect(pending.body.error.code).toBe('invite_pending');
    expect((await req('DELETE', `/api/invites/${revokedId}`, as(owner.token))).status).toBe(204);
    const revoked = await req('POST', '/api/auth/local/signup', {
      body: { email: revokedEmail, password, inviteToken: tokenIn(revokedEmail) },
    });
    expect(revoked.status).toBe(409);
    expect(revoked.body.error.code).toBe('invite_revoked');

    const unknown = await accept(`sdi_${'A'.repeat(43)}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('invite_not_found');
    const malformed = await accept('not-a-token');
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.message).toMatch(/^token: is not an invite token/);
    const badSignup = await req('POST', '/api/auth/local/signup', {
      body: { email: anEmail('x'), password, inviteToken: 'sdi_short' },
    });
    expect(badSignup.status).toBe(400);
    expect(badSignup.body.error.message).toMatch(/^inviteToken:/);
    // An API key is no person: it cannot accept an invite.
    const key = await req('POST', `/api/orgs/${owner.orgId}/api-keys`, {
      ...as(owner.token),
      body: { name: 'accept-bot', role: 'viewer' },
    });
    const byKey = await req('POST', '/api/invites/accept', {
      token: key.body.key,
      body: { token: `sdi_${'B'.repeat(43)}` },
    });
    expect(byKey.status).toBe(401);
  });

  it("keeps invites to each org's own, and no one grants more than their role", async () => {
    const other = await req('POST', '/api/orgs', {
      ...as(owner.token),
      body: { name: 'Other' },
    });
    const foreignId = await invite(anEmail('foreign'), 'viewer', {
      token: owner.token,
      orgId: other.body.id,
    });
    const admin = await join('admin', 'granter');
    const deleteForeign = await req('DELETE', `/api/invites/${foreignId}`, as(admin.token));
    expect(deleteForeign.status).toBe(404);
    expect(deleteForeign.body.error.code).toBe('invite_not_found');
    expect(
      (await req('GET', '/api/invites', as(admin.token))).body.items.map(
        (i: { id: string }) => i.id,
      ),
    ).not.toContain(foreignId);

    const tooHigh = await req('POST', '/api/invites', {
      ...as(admin.token),
      body: { email: anEmail('boss'), role: 'owner' },
    });
    expect(tooHigh.status).toBe(403);
    expect(tooHigh.body.error.message).toBe('role admin may not invite someone as owner');
    const viewer = await join('viewer', 'lowly');
    const byViewer = await req('POST', '/api/invites', {
      ...as(viewer.token),
      body: { email: anEmail('friend'), role: 'viewer' },
    });
    expect(byViewer.status).toBe(403);
    const badRole = await req('POST', '/api/invites', {
      ...as(owner.token),
      body: { email: 'not-an-email', role: 'king' },
    });
    expect(badRole.status).toBe(400);
    expect(badRole.body.error.message).toMatch(/email: .*; role: /);
  });

  it('leaves no invite behind when the mail cannot be sent', async () => {
    const res = await req('POST', '/api/invites', {
      ...as(owner.token),
      body: { email: 'bounce@example.com', role: 'viewer' },
    });
    expect(res.status).toBe(503);
    expect(res.body.error).toMatchObject({ code: 'mail_unavailable' });
    expect(res.body.error.message).not.toMatch(/127\.0\.0\.1/);
    const rows = await sql(`select id from invites where email = 'bounce@example.com'`);
    expect(rows).toEqual([]);
  });
});

describe('members', () => {
  it('changes roles up to the caller’s own, never above, and names the last owner', async () => {
    const admin = await join('admin', 'roles-admin');
    const dev = await join('deployer', 'roles-dev');
    const up = await req('PATCH', `/api/members/${dev.userId}`, {
      ...as(admin.token),
      body: { role: 'admin' },
    });
    expect(up.status, up.text).toBe(200);
    expect(up.body).toMatchObject({ userId: dev.userId, role: 'admin', email: dev.email });
    const toOwner = await req('PATCH', `/api/members/${dev.userId}`, {
      ...as(admin.token),
      body: { role: 'owner' },
    });
    expect(toOwner.status).toBe(403);
    const demoteOwner = await req('PATCH', `/api/members/${owner.userId}`, {
      ...as(admin.token),
      body: { role: 'viewer' },
    });
    expect(demoteOwner.status).toBe(403);
    const removeOwner = await req('DELETE', `/api/members/${owner.userId}`, as(admin.token));
    expect(removeOwner.status).toBe(403);

    const self = await req('PATCH', `/api/members/${owner.userId}`, {
      ...as(owner.token),
      body: { role: 'admin' },
    });
    expect(self.status).toBe(409);
    expect(self.body.error.code).toBe('last_owner');
    expect(self.body.error.message).toMatch(/last owner; transfer ownership/);
    const leave = await req('DELETE', `/api/members/${owner.userId}`, as(owner.token));
    expect(leave.status).toBe(409);
    expect(leave.body.error.code).toBe('last_owner');

    const unknown = await req('PATCH', '/api/members/usr_nobody', {
      ...as(owner.token),
      body: { role: 'viewer' },
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('member_not_found');
    const badRole = await req('PATCH', `/api/members/${dev.userId}`, {
      ...as(owner.token),
      body: { role: 'root' },
    });
    expect(badRole.status).toBe(400);
    expect(badRole.body.error.message).toMatch(/^role:/);
  });

  it('removes members, lets anyone leave, and a removed member loses access at once', async () => {
    const dev = await join('deployer', 'removed');
    const viewer = await join('viewer', 'leaver');
    expect((await req('DELETE', `/api/members/${dev.userId}`, as(owner.token))).status).toBe(204);
    const after = await req('GET', '/api/projects', as(dev.token));
    expect(after.status).toBe(404);
    expect(after.body.error.code).toBe('org_not_found');
    expect((await req('DELETE', `/api/members/${dev.userId}`, as(owner.token))).status).toBe(404);

    // A viewer may not remove others, but may leave.
    expect((await req('DELETE', `/api/members/${owner.userId}`, as(viewer.token))).status).toBe(
      403,
    );
    expect((await req('DELETE', `/api/members/${viewer.userId}`, as(viewer.token))).status).toBe(
      204,
    );
    const members = await req('GET', '/api/members', as(owner.token));
    const ids = members.body.items.map((m: { userId: string }) => m.userId);
    expect(ids).not.toContain(dev.userId);
    expect(ids).not.toContain(viewer.userId);
  });

  it('transfers ownership: the new owner owns, the old one is an admin', async () => {
    const heir = await join('deployer', 'heir');
    const byHeir = await req(
      'POST',
      `/api/members/${owner.userId}/transfer-ownership`,
      as(heir.token),
    );
    expect(byHeir.status).toBe(403);
    const toSelf = await req(
      'POST',
      `/api/members/${owner.userId}/transfer-ownership`,
      as(owner.token),
    );
    expect(toSelf.status).toBe(400);
    const res = await req(
      'POST',
      `/api/members/${heir.userId}/transfer-ownership`,
      as(owner.token),
    );
    expect(res.status, res.text).toBe(200);
    const roles = Object.fromEntries(
      res.body.items.map((m: { userId: string; role: string }) => [m.userId, m.role]),
    );
    expect(roles[heir.userId]).toBe('owner');
    expect(roles[owner.userId]).toBe('admin');
    // And back, so the other tests keep their owner.
    const back = await req(
      'POST',
      `/api/members/${owner.userId}/transfer-ownership`,
      as(heir.token),
    );
    expect(back.status, back.text).toBe(200);
    const audit = await req(
      'GET',
      `/api/audit-events?action=member.role_changed&targetId=${heir.userId}`,
      as(owner.token),
    );
    expect(audit.body.items.map((e: { data: { to: string } }) => e.data.to)).toEqual([
      'owner',
      'admin',
    ]);
  });

  it('never leaves zero owners when two owners demote each other at the same moment', async () => {
    // Each round: two owners of a fresh org send "demote the other" concurrently.
    for (let round = 0; round < 8; round++) {
      const org = await req('POST', '/api/orgs', {
        ...as(owner.token),
        body: { name: `race ${round}` },
      });
      const email = anEmail('co-owner');
      await invite(email, 'owner', { token: owner.token, orgId: org.body.id });
      const co = await req('POST', '/api/auth/local/signup', {
        body: { email, password, inviteToken: tokenIn(email) },
      });
      expect(co.status, co.text).toBe(201);
      const [a, b] = await Promise.all([
        req('PATCH', `/api/members/${co.body.user.id}`, {
          ...as(owner.token, org.body.id),
          body: { role: 'admin' },
        }),
        req('PATCH', `/api/members/${owner.userId}`, {
          ...as(co.body.token, org.body.id),
          body: { role: 'admin' },
        }),
      ]);
      const statuses = [a.status, b.status].sort();
      // One wins; the other finds itself demoted (403) or the target the last owner (409).
      expect(statuses[0], `${a.text} ${b.text}`).toBe(200);
      expect([403, 409]).toContain(statuses[1]);
      const owners = await sql<{ n: string }>(
        `select count(*) as n from memberships where org_id = $1 and role = 'owner'`,
        [org.body.id],
      );
      expect(Number(owners[0]!.n)).toBe(1);
    }
  }, 60_000);

  it('notifies webhooks of member and invite events, signed', async () => {
    const dev = await join('deployer', 'hooked');
    await req('PATCH', `/api/members/${dev.userId}`, {
      ...as(owner.token),
      body: { role: 'viewer' },
    });
    await req('DELETE', `/api/members/${dev.userId}`, as(owner.token));
    const wanted = ['invite.created', 'member.added', 'member.removed', 'member.role_changed'];
    const forDev = () =>
      delivered
        .map((d) => ({ ...d, event: JSON.parse(d.body) }))
        .filter(
          (d) =>
            d.event.data.email === dev.email ||
            (d.event.type !== 'invite.created' && d.body.includes(dev.userId)),
        );
    const deadline = Date.now() + 20_000;
    while (
      Date.now() < deadline &&
      !wanted.every((t) => forDev().some((d) => d.event.type === t))
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect([...new Set(forDev().map((d) => d.event.type))].sort()).toEqual(wanted);
    for (const d of forDev()) {
      expect(
        verifySignature(webhookSecret, d.signature, d.body, Math.floor(Date.now() / 1000)),
      ).toBe(true);
      expect(d.body).not.toMatch(/sdi_/);
    }
  }, 30_000);
});

describe('a closed install', () => {
  it('lets in exactly the invited address', async () => {
    const closed = await startSelfhostApi({
      databaseUrl: api.databaseUrl,
      jwtSecret: api.jwtSecret,
      signupMode: 'closed',
      signupLimits: { perIp: 10_000 },
      smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
      publicUrl,
    });
    try {
      const stranger = await closed.request('POST', '/api/auth/local/signup', {
        body: { email: anEmail('closed'), password },
      });
      expect(stranger.status).toBe(403);
      expect(stranger.body.error.code).toBe('signup_closed');
      const email = anEmail('welcome');
      const res = await closed.request('POST', '/api/invites', {
        ...as(owner.token),
        body: { email, role: 'viewer' },
      });
      expect(res.status, res.text).toBe(201);
      const signed = await closed.request('POST', '/api/auth/local/signup', {
        body: { email, password, inviteToken: tokenIn(email) },
      });
      expect(signed.status, signed.text).toBe(201);
      expect(signed.body.org.id).toBe(owner.orgId);
    } finally {
      await closed.close();
    }
  });

  it('caps the invites one org sends per hour, saying when to retry', async () => {
    const capped = await startSelfhostApi({
      signupMode: 'first-user',
      smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
      publicUrl,
      inviteLimits: { perOrg: 2 },
    });
    try {
      const boss = await capped.request('POST', '/api/auth/local/signup', {
        body: { email: anEmail('capped'), password },
      });
      const send = () =>
        capped.request('POST', '/api/invites', {
          token: boss.body.token,
          body: { email: anEmail('spam'), role: 'viewer' },
        });
      expect((await send()).status).toBe(201);
      expect((await send()).status).toBe(201);
      const third = await send();
      expect(third.status).toBe(429);
      expect(third.body.error.code).toBe('too_many_attempts');
      expect(third.body.error.message).toMatch(/^too many invite attempts; retry in \d+s$/);
      expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await capped.close();
    }
  });

  it('without a mail server, refuses to invite and says what to set', async () => {
    const noMail = await startSelfhostApi({
      databaseUrl: api.databaseUrl,
      jwtSecret: api.jwtSecret,
      signupMode: 'closed',
    });
    try {
      const res = await noMail.request('POST', '/api/invites', {
        ...as(owner.token),
        body: { email: anEmail('nomail'), role: 'viewer' },
      });
      expect(res.status).toBe(503);
      expect(res.body.error.message).toMatch(/SMTP_URL/);
    } finally {
      await noMail.close();
    }
  });
});
