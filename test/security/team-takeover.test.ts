/**
 * Teams (issue 12): the ways into someone else's org, or out of its control, replayed
 * against two API processes on one PostgreSQL database, invites mailed through a real SMTP
 * server on loopback: a leaked invite link used twice at once, the database's copy of an
 * invite used as one, an admin climbing to owner, and two owners demoting each other at
 * the same moment on different processes.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSmtpServer } from '../support/smtp.ts';
import { from, sharedDatabase, startApiProcess, type ApiProcess } from './support/stack.ts';

const password = 'correct horse battery';

describe('taking over a team', () => {
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let a: ApiProcess;
  let b: ApiProcess;
  let databaseUrl: string;
  let drop: () => Promise<void>;
  let owner: { token: string; orgId: string; userId: string };
  let n = 0;

  const tokenFor = (email: string) =>
    /token=(sdi_[\w-]+)/.exec(smtp.received.filter((m) => m.to === email).at(-1)!.text)![1]!;
  const asOwner = () => ({ token: owner.token, headers: { 'x-org-id': owner.orgId } });

  async function invite(email: string, role: string, as = asOwner()) {
    const res = await a.request('POST', '/api/invites', { ...as, body: { email, role } });
    expect(res.status, res.text).toBe(201);
    return res.body.id as string;
  }

  async function join(role: string) {
    const email = `member${++n}@team.test`;
    await invite(email, role);
    const res = await a.request('POST', '/api/auth/local/signup', {
      body: { email, password, inviteToken: tokenFor(email) },
      headers: from(`10.7.0.${n}`),
    });
    expect(res.status, res.text).toBe(201);
    return { token: res.body.token as string, userId: res.body.user.id as string, email };
  }

  async function sql<T extends pg.QueryResultRow>(text: string, values: unknown[] = []) {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      return (await client.query<T>(text, values)).rows;
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    smtp = await startSmtpServer();
    const db = await sharedDatabase({
      signupMode: 'closed',
      smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
      publicUrl: 'http://deploy.team.test',
    });
    drop = db.drop;
    databaseUrl = db.settings.databaseUrl;
    // The first owner comes from an open install; then it is closed, as an operator would.
    const opener = await startApiProcess({ ...db.settings, signupMode: 'first-user' });
    const res = await opener.request('POST', '/api/auth/local/signup', {
      body: { email: 'owner@team.test', password },
    });
    expect(res.status).toBe(201);
    owner = { token: res.body.token, orgId: res.body.org.id, userId: res.body.user.id };
    await opener.stop();
    [a, b] = await Promise.all([startApiProcess(db.settings), startApiProcess(db.settings)]);
  }, 60_000);

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await smtp?.close();
    await drop?.();
  });

  it('lets a leaked invite link in once, even when it is used twice at the same moment', async () => {
    const email = 'leaked@team.test';
    await invite(email, 'viewer');
    const token = tokenFor(email);
    const signups = await Promise.all(
      [a, b].map((api, i) =>
        api.request('POST', '/api/auth/local/signup', {
          body: { email, password, inviteToken: token },
          headers: from(`10.8.0.${i + 1}`),
        }),
      ),
    );
    expect(signups.map((r) => r.status).sort()).toEqual([201, 409]);
    const members = await sql(
      `select m.user_id from memberships m join users u on u.id = m.user_id
       where m.org_id = $1 and u.email = $2`,
      [owner.orgId, email],
    );
    expect(members).toHaveLength(1);

    // A signed-in person accepting one invite on both processes at once joins once.
    const other = await a.request('POST', '/api/orgs', { ...asOwner(), body: { name: 'Other' } });
    await invite(email, 'admin', { token: owner.token, headers: { 'x-org-id': other.body.id } });
    const second = tokenFor(email);
    const session = signups.find((r) => r.status === 201)!.body.token as string;
    const accepts = await Promise.all(
      [a, b].map((api) =>
        api.request('POST', '/api/invites/accept', { token: session, body: { token: second } }),
      ),
    );
    expect(accepts.map((r) => r.status).sort()).toEqual([200, 409]);
    const rows = await sql(`select 1 from memberships where org_id = $1`, [other.body.id]);
    expect(rows).toHaveLength(2);
  });

  it("refuses the database's copy of an invite as a token: only the hash is stored", async () => {
    const email = 'copied@team.test';
    const id = await invite(email, 'admin');
    const [row] = await sql<{ token_hash: string }>(
      'select token_hash from invites where id = $1',
      [id],
    );
    expect(row!.token_hash).not.toContain(tokenFor(email).slice(4));
    for (const guess of [`sdi_${row!.token_hash}`, row!.token_hash]) {
      const res = await b.request('POST', '/api/auth/local/signup', {
        body: { email, password, inviteToken: guess },
        headers: from('10.9.0.1'),
      });
      expect([400, 404]).toContain(res.status);
    }
  });

  it('keeps an admin from climbing to owner by any route', async () => {
    const admin = await join('admin');
    const as = { token: admin.token, headers: { 'x-org-id': owner.orgId } };
    const self = await b.request('PATCH', `/api/members/${admin.userId}`, {
      ...as,
      body: { role: 'owner' },
    });
    expect(self.status).toBe(403);
    const byInvite = await b.request('POST', '/api/invites', {
      ...as,
      body: { email: 'sock-puppet@team.test', role: 'owner' },
    });
    expect(byInvite.status).toBe(403);
    const byKey = await b.request('POST', `/api/orgs/${owner.orgId}/api-keys`, {
      ...as,
      body: { name: 'climb', role: 'owner' },
    });
    expect(byKey.status).toBe(403);
    const transfer = await b.request('POST', `/api/members/${admin.userId}/transfer-ownership`, as);
    expect(transfer.status).toBe(403);
    const demoteOwner = await b.request('PATCH', `/api/members/${owner.userId}`, {
      ...as,
      body: { role: 'viewer' },
    });
    expect(demoteOwner.status).toBe(403);
    const owners = await sql(
      `select user_id from memberships where org_id = $1 and role = 'owner'`,
      [owner.orgId],
    );
    expect(owners).toEqual([{ user_id: owner.userId }]);
  });

  it('never leaves an org without an owner when its owners demote each other on two processes', async () => {
    for (let round = 0; round < 6; round++) {
      const org = await a.request('POST', '/api/orgs', {
        ...asOwner(),
        body: { name: `race ${round}` },
      });
      const email = `co${round}@team.test`;
      await invite(email, 'owner', { token: owner.token, headers: { 'x-org-id': org.body.id } });
      const co = await a.request('POST', '/api/auth/local/signup', {
        body: { email, password, inviteToken: tokenFor(email) },
        headers: from(`10.10.0.${round + 1}`),
      });
      expect(co.status, co.text).toBe(201);
      const results = await Promise.all([
        a.request('PATCH', `/api/members/${co.body.user.id}`, {
          token: owner.token,
          headers: { 'x-org-id': org.body.id },
          body: { role: 'viewer' },
        }),
        b.request('PATCH', `/api/members/${owner.userId}`, {
          token: co.body.token,
          headers: { 'x-org-id': org.body.id },
          body: { role: 'viewer' },
        }),
      ]);
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      const owners = await sql(`select 1 from memberships where org_id = $1 and role = 'owner'`, [
        org.body.id,
      ]);
      expect(owners).toHaveLength(1);
    }
  }, 60_000);
});
