/**
 * `selfdevop notification-channels`: the real CLI process, spawned as CI runs it
 * (credentials in the environment), against the self-hosted API on a real PostgreSQL
 * database, sending through a real SMTP server on loopback.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { startSmtpServer } from '../support/smtp.ts';
import { runCli } from '../support/cli.ts';

describe('the selfdevop CLI for notification channels', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let dir: string;
  let env: Record<string, string>;

  const cli = (args: string[]) => runCli(args, { cwd: dir, env });

  beforeAll(async () => {
    smtp = await startSmtpServer();
    api = await startSelfhostApi({ smtpUrl: `smtp://127.0.0.1:${smtp.port}` });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'cli-notify@example.com', password: 'correct horse battery' },
    });
    expect(s.status, s.text).toBe(201);
    const k = await api.request('POST', `/api/orgs/${s.body.org.id}/api-keys`, {
      token: s.body.token,
      body: { name: 'ci', role: 'admin' },
    });
    env = { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: k.body.key as string };
    dir = await mkdtemp(join(tmpdir(), 'sdo-cli-notify-'));
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await smtp?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('adds an e-mail channel, tests it, lists what was sent and removes it', async () => {
    const help = await cli(['notification-channels', '--help']);
    expect(help.stdout).toContain('selfdevop notification-channels add slack NAME URL');
    const added = await cli([
      'notification-channels',
      'add',
      'email',
      'on-call',
      'ops@example.com',
      '--events',
      'release.failed,release.rolled_back',
      '--window',
      '120',
    ]);
    expect(added.code, added.stderr).toBe(0);
    const id =
      /added email channel (nch_\w+) \(ops@example\.com\) for release\.failed, release\.rolled_back/.exec(
        added.stdout,
      )?.[1];
    expect(id, added.stdout).toBeTruthy();
    const list = await cli(['notification-channels']);
    expect(list.stdout).toMatch(new RegExp(`${id} +email +on-call +ops@example.com .* 120s`));

    const tested = await cli(['notification-channels', 'test', id!]);
    expect(tested.code, tested.stderr).toBe(0);
    expect(tested.stdout.trim()).toBe('test message delivered');
    expect(smtp.received.map((m) => m.to)).toEqual(['ops@example.com']);
    const log = await cli(['notification-channels', 'deliveries', id!, '--json']);
    expect(JSON.parse(log.stdout)).toEqual([
      expect.objectContaining({ eventType: 'notification.test', delivered: true }),
    ]);

    const removed = await cli(['notification-channels', 'rm', id!]);
    expect(removed.code, removed.stderr).toBe(0);
    const again = await cli(['notification-channels', 'rm', id!]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain(`notification_channel ${id} not found`);
  }, 60_000);

  it("refuses a URL that is not Slack's, and bad arguments, with the words that say why", async () => {
    const notSlack = await cli([
      'notification-channels',
      'add',
      'slack',
      'alerts',
      'https://example.com/hook',
    ]);
    expect(notSlack.code).not.toBe(0);
    expect(notSlack.stderr).toContain('must be a Slack incoming-webhook URL');
    const noKind = await cli(['notification-channels', 'add', 'pager', 'x', 'y']);
    expect(noKind.code).toBe(2);
    expect(noKind.stderr).toContain('needs a kind: slack or email');
    const badWindow = await cli([
      'notification-channels',
      'add',
      'email',
      'x',
      'ops@example.com',
      '--window',
      'soon',
    ]);
    expect(badWindow.code).toBe(2);
    expect(badWindow.stderr).toContain('--window must be a whole number of seconds');
  }, 60_000);
});
