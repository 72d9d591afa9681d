/**
 * `selfdevop members` and `selfdevop invites` end to end: the real CLI process against the
 * self-hosted API on PostgreSQL, invites mailed through a real SMTP server on loopback.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { startSmtpServer } from '../support/smtp.ts';

const cliMain = join(import.meta.dirname, '..', '..', 'cli', 'main.ts');
const password = 'correct horse battery';

let api: Awaited<ReturnType<typeof startSelfhostApi>>;
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
let dir: string;
let owner: { token: string; orgId: string; userId: string };

function cli(args: string[], token: string, orgId?: string) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      XDG_CONFIG_HOME: join(dir, 'config'),
      SELFDEVOP_URL: api.url,
      SELFDEVOP_TOKEN: token,
    };
    delete env.SELFDEVOP_ORG;
    if (orgId) env.SELFDEVOP_ORG = orgId;
    const child = spawn(process.execPath, [cliMain, ...args], { cwd: dir, env, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end();
  });
}

const linkFor = (email: string) =>
  /(http\S+token=sdi_[\w-]+)/.exec(smtp.received.filter((m) => m.to === email).at(-1)!.text)![1]!;

beforeAll(async () => {
  smtp = await startSmtpServer();
  api = await startSelfhostApi({
    signupMode: 'first-user',
    smtpUrl: `smtp://127.0.0.1:${smtp.port}`,
    publicUrl: 'http://deploy.example.test',
  });
  dir = await mkdtemp(join(tmpdir(), 'sdo-cli-teams-'));
  const s = await api.request('POST', '/api/auth/local/signup', {
    body: { email: 'boss@example.com', password },
  });
  owner = { token: s.body.token, orgId: s.body.org.id, userId: s.body.user.id };
}, 60_000);

afterAll(async () => {
  await api?.close();
  await smtp?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('selfdevop invites and members', () => {
  it('invites by email, lists, changes roles, transfers and lets people leave', async () => {
    const created = await cli(
      ['invites', 'create', 'ann@example.com', '--role', 'deployer'],
      owner.token,
    );
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(
      /^invited ann@example.com as deployer; the emailed link works once/,
    );
    const pending = await cli(['invites', '--json'], owner.token);
    expect(JSON.parse(pending.stdout)).toEqual([
      expect.objectContaining({ email: 'ann@example.com', role: 'deployer', status: 'pending' }),
    ]);

    const signed = await api.request('POST', '/api/auth/local/signup', {
      body: {
        email: 'ann@example.com',
        password,
        inviteToken: new URL(linkFor('ann@example.com')).searchParams.get('token'),
      },
    });
    expect(signed.status, signed.text).toBe(201);
    const ann = signed.body.token as string;

    const list = await cli(['members'], owner.token);
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^EMAIL\s+ROLE\s+USER ID\s+JOINED$/);
    expect(list.stdout).toMatch(/boss@example.com\s+owner/);
    expect(list.stdout).toMatch(/ann@example.com\s+deployer/);

    const setRole = await cli(['members', 'set-role', 'ann@example.com', 'admin'], owner.token);
    expect(setRole.stdout.trim()).toBe('ann@example.com is now admin (was deployer)');

    // Accepting from the whole link, as a signed-in user, into a second org.
    const second = await api.request('POST', '/api/orgs', {
      token: owner.token,
      headers: { 'x-org-id': owner.orgId },
      body: { name: 'Second' },
    });
    const again = await cli(
      ['invites', 'create', 'ann@example.com', '--role', 'viewer'],
      owner.token,
      second.body.id,
    );
    expect(again.code, again.stderr).toBe(0);
    const accepted = await cli(['invites', 'accept', linkFor('ann@example.com')], ann, owner.orgId);
    expect(accepted.code, accepted.stderr).toBe(0);
    expect(accepted.stdout.trim()).toBe(
      `joined Second (${second.body.id}) as viewer; pick it with SELFDEVOP_ORG=${second.body.id}`,
    );
    const left = await cli(['members', 'leave'], ann, second.body.id);
    expect(left.stdout.trim()).toBe(`you left org ${second.body.id}`);

    const transfer = await cli(
      ['members', 'transfer', 'ann@example.com'],
      owner.token,
      owner.orgId,
    );
    expect(transfer.stdout.trim()).toBe('ann@example.com now owns the org; you are an admin');
    const after = await cli(['members', '--json'], ann, owner.orgId);
    expect(
      JSON.parse(after.stdout).map((m: { email: string; role: string }) => [m.email, m.role]),
    ).toEqual([
      ['boss@example.com', 'admin'],
      ['ann@example.com', 'owner'],
    ]);
  });

  it('says what is wrong in one line, with the exit code that fits', async () => {
    // After the transfer above boss is an admin and may not touch the owner.
    const demoteOwner = await cli(
      ['members', 'set-role', 'ann@example.com', 'viewer'],
      owner.token,
      owner.orgId,
    );
    expect(demoteOwner.code).toBe(1);
    expect(demoteOwner.stderr.trim()).toMatch(
      /^selfdevop members: .*role admin may not change a member with role owner to viewer$/,
    );

    const noRole = await cli(['members', 'set-role', 'ann@example.com'], owner.token, owner.orgId);
    expect(noRole.code).toBe(2);
    expect(noRole.stderr.trim()).toBe(
      'selfdevop members: members set-role needs a ROLE: one of owner, admin, deployer, viewer',
    );
    const stranger = await cli(
      ['members', 'remove', 'nobody@example.com'],
      owner.token,
      owner.orgId,
    );
    expect(stranger.code).toBe(1);
    expect(stranger.stderr).toMatch(/nobody@example.com is not a member of this org/);
    const badRole = await cli(
      ['invites', 'create', 'x@example.com', '--role', 'king'],
      owner.token,
      owner.orgId,
    );
    expect(badRole.code).toBe(1);
    expect(badRole.stderr).toMatch(/role: /);
    const noPending = await cli(['invites', 'revoke', 'x@example.com'], owner.token, owner.orgId);
    expect(noPending.code).toBe(1);
    expect(noPending.stderr).toMatch(/no pending invite for x@example.com/);
    const badToken = await cli(
      ['invites', 'accept', 'sdi_' + 'Z'.repeat(43)],
      owner.token,
      owner.orgId,
    );
    expect(badToken.code).toBe(1);
    expect(badToken.stderr).toMatch(/invite not found/);
  });

  it('revokes a pending invite by email', async () => {
    await cli(
      ['invites', 'create', 'carl@example.com', '--role', 'viewer'],
      owner.token,
      owner.orgId,
    );
    const revoked = await cli(['invites', 'revoke', 'carl@example.com'], owner.token, owner.orgId);
    expect(revoked.stdout.trim()).toBe(
      'revoked the invite to carl@example.com: its link no longer works',
    );
    const list = await cli(['invites', '--json'], owner.token, owner.orgId);
    expect(
      JSON.parse(list.stdout).find((i: { email: string }) => i.email === 'carl@example.com').status,
    ).toBe('revoked');
  });
});
