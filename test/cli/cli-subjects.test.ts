/**
 * The CLI for every subject of the API beyond deploying: webhooks (with a real loopback
 * receiver), API keys, projects, environments, orgs, the audit trail and deploy jobs. The
 * real process, spawned as CI runs it (credentials in the environment), against the
 * self-hosted API on a real PostgreSQL database.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature } from '../../core/webhooks/signature.ts';
import { startSelfhostApi } from '../support/api.ts';

const cliMain = join(import.meta.dirname, '..', '..', 'cli', 'main.ts');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface Received {
  body: string;
  headers: http.IncomingHttpHeaders;
}

describe('the selfdevop CLI for webhooks, API keys, projects, environments, orgs, audit, deploy jobs', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let dir: string;
  let owner: string;
  let orgId: string;
  let admin: Record<string, string>;
  let receiver: http.Server;
  let receiverUrl: string;
  const received: Received[] = [];
  let answer = 204;

  function cli(args: string[], env: Record<string, string> = admin): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [cliMain, ...args], {
        cwd: dir,
        env: { ...process.env, XDG_CONFIG_HOME: join(dir, 'no-config'), ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
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
    });
  }

  const keyOf = async (role: string) => {
    const k = await api.request('POST', `/api/orgs/${orgId}/api-keys`, {
      token: owner,
      body: { name: `k-${role}`, role },
    });
    expect(k.status, k.text).toBe(201);
    return { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: k.body.key as string };
  };

  beforeAll(async () => {
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        received.push({ body, headers: req.headers });
        res.writeHead(answer).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
    // Loopback is never an install's webhook target: this system accepts the test's
    // receiver through the composition root's test-only override.
    api = await startSelfhostApi({ webhooksToLoopback: true });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'subjects@example.com', password: 'correct horse battery' },
    });
    expect(s.status, s.text).toBe(201);
    owner = s.body.token;
    orgId = s.body.org.id;
    admin = await keyOf('admin');
    dir = await mkdtemp(join(tmpdir(), 'sdo-cli-subjects-'));
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lists every subject in the overview, and each has its own --help', async () => {
    const overview = await cli(['--help']);
    for (const name of [
      'projects',
      'environments',
      'deploy-jobs',
      'webhooks',
      'api-keys',
      'orgs',
      'audit',
    ]) {
      expect(overview.stdout).toMatch(new RegExp(`^  ${name} +\\S`, 'm'));
      const help = await cli([name, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain(`selfdevop ${name}`);
    }
  }, 60_000);

  it('adds a webhook, shows its secret once, sends a signed test event and removes it', async () => {
    const added = await cli(['webhooks', 'add', receiverUrl, '--events', 'release.failed']);
    expect(added.code, added.stderr).toBe(0);
    const id = /added webhook (whk_\w+) for release\.failed/.exec(added.stdout)?.[1];
    const secret = /signing secret \(shown once, keep it now\): (whsec_\S+)/.exec(
      added.stdout,
    )?.[1];
    expect(id).toBeTruthy();
    expect(secret).toBeTruthy();

    const list = await cli(['webhooks', '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual([
      { id, orgId, url: receiverUrl, events: ['release.failed'], createdAt: expect.any(String) },
    ]);
    expect(list.stdout).not.toContain(secret);

    answer = 204;
    const tested = await cli(['webhooks', 'test', id!]);
    expect(tested.code, tested.stderr).toBe(0);
    expect(tested.stdout).toMatch(/^delivered test event evt_\w+: the receiver answered 204$/m);
    expect(received).toHaveLength(1);
    const got = received[0]!;
    expect(JSON.parse(got.body)).toMatchObject({ type: 'webhook.test', data: { webhookId: id } });
    expect(
      verifySignature(
        secret!,
        String(got.headers['x-selfdevop-signature']),
        got.body,
        Math.floor(Date.now() / 1000),
      ),
    ).toBe(true);

    answer = 500;
    const refused = await cli(['webhooks', 'test', id!]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim()).toBe('not delivered: the receiver answered 500');

    const deliveries = await cli(['webhooks', 'deliveries', id!]);
    expect(deliveries.code, deliveries.stderr).toBe(0);
    const rows = deliveries.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^WHEN +EVENT +TYPE +ATTEMPT +RESULT +ANSWER$/);
    expect(rows.slice(1).map((r) => r.split(/ +/).slice(2))).toEqual([
      ['webhook.test', '1', 'delivered', '204'],
      ['webhook.test', '1', 'failed', '500'],
    ]);

    const removed = await cli(['webhooks', 'rm', id!]);
    expect(removed.code, removed.stderr).toBe(0);
    expect((await cli(['webhooks'])).stdout).toContain('no webhooks yet');
    const again = await cli(['webhooks', 'test', id!]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^selfdevop webhooks: webhook .*not found/);
    const gone = await cli(['webhooks', 'deliveries', id!]);
    expect(gone.code).toBe(1);
    expect(gone.stderr.trim()).toBe(`selfdevop webhooks: webhook ${id} not found`);
  }, 60_000);

  it('says why a webhook is refused: address, events, scheme, role, missing URL', async () => {
    const linkLocal = await cli(['webhooks', 'add', 'http://169.254.169.254/latest']);
    expect(linkLocal.code).toBe(1);
    expect(linkLocal.stderr.trim()).toBe(
      'selfdevop webhooks: url: must not point at a loopback or link-local address',
    );
    // Private ranges only where the operator set WEBHOOKS_ALLOW_PRIVATE (not here).
    const privateRange = await cli(['webhooks', 'add', 'http://10.1.2.3/hooks']);
    expect(privateRange.code).toBe(1);
    expect(privateRange.stderr.trim()).toBe(
      'selfdevop webhooks: url: must not point at a loopback, link-local or private address',
    );
    const badEvent = await cli(['webhooks', 'add', receiverUrl, '--events', 'release.exploded']);
    expect(badEvent.code).toBe(1);
    expect(badEvent.stderr).toMatch(/^selfdevop webhooks: events/);
    const scheme = await cli(['webhooks', 'add', 'ftp://example.com/x']);
    expect(scheme.code).toBe(1);
    expect(scheme.stderr).toMatch(/^selfdevop webhooks: url/);
    const deployer = await cli(['webhooks', 'add', receiverUrl], await keyOf('deployer'));
    expect(deployer.code).toBe(1);
    expect(deployer.stderr).toMatch(/^selfdevop webhooks: .*manage webhooks/);
    const usage = await cli(['webhooks', 'add']);
    expect(usage.code).toBe(2);
    expect(usage.stderr.trim()).toBe('selfdevop webhooks: webhooks add needs a URL');
    expect((await cli(['webhooks', 'frobnicate'])).code).toBe(2);
    expect((await cli(['webhooks'])).stdout).toContain('no webhooks yet');
  }, 60_000);

  it('creates an API key shown once on stdout, lists it, and revokes it so it stops working', async () => {
    const created = await cli(['api-keys', 'create', 'ci-reader', '--role', 'viewer']);
    expect(created.code, created.stderr).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^\S+$/);
    expect(created.stderr).toMatch(/created API key ci-reader \(key_\w+\); it is shown once/);

    const asViewer = { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: key };
    const org = await cli(['orgs'], asViewer);
    expect(org.code, org.stderr).toBe(0);
    expect(org.stdout).toMatch(new RegExp(`\\(${orgId}\\).*this API key act as viewer`));

    const list = await cli(['api-keys', '--json']);
    const keys = JSON.parse(list.stdout) as { name: string; role: string; prefix: string }[];
    const listed = keys.find((k) => k.name === 'ci-reader');
    expect(listed).toMatchObject({ role: 'viewer', revokedAt: null });
    expect(key.startsWith(listed!.prefix)).toBe(true);
    expect(list.stdout).not.toContain(key);

    const revoked = await cli(['api-keys', 'revoke', 'ci-reader']);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(/^revoked API key ci-reader \(key_\w+\)$/m);
    // Other processes may believe a key for a second; this one forgot it at the revoke.
    const after = await cli(['orgs'], asViewer);
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/^selfdevop orgs: /);
    expect((await cli(['api-keys'])).stdout).toMatch(/^ci-reader +viewer +\S+ +revoked/m);

    const again = await cli(['api-keys', 'revoke', 'ci-reader']);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe('selfdevop api-keys: no active API key ci-reader');
    const tooMuch = await cli(['api-keys', 'create', 'root', '--role', 'owner']);
    expect(tooMuch.code).toBe(1);
    expect(tooMuch.stderr).toMatch(/^selfdevop api-keys: .*owner/);
    const badRole = await cli(['api-keys', 'create', 'x', '--role', 'god']);
    expect(badRole.code).toBe(1);
    expect(badRole.stderr).toMatch(/^selfdevop api-keys: role/);
  }, 60_000);

  it('creates, lists and shows projects and their environments, naming bad input', async () => {
    const created = await cli(['projects', 'create', 'shop']);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^created project shop \(prj_\w+\) with production$/m);
    const env = await cli(['environments', 'create', 'staging', '--project', 'shop']);
    expect(env.code, env.stderr).toBe(0);
    expect(env.stdout).toMatch(/^created environment staging in shop \(env_\w+\)$/m);

    const shown = await cli(['projects', 'show', 'shop', '--json']);
    expect(
      (JSON.parse(shown.stdout) as { environments: { name: string }[] }).environments
        .map((e) => e.name)
        .sort(),
    ).toEqual(['production', 'staging']);
    const listed = await cli(['environments', '--project', 'shop']);
    expect(listed.stdout).toMatch(/^shop +production /m);
    expect(listed.stdout).toMatch(/^shop +staging /m);
    expect((await cli(['projects'])).stdout).toMatch(/^shop +\S+ +prj_\w+$/m);

    const dup = await cli(['environments', 'create', 'staging', '--project', 'shop']);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/^selfdevop environments: .*staging/);
    const badName = await cli(['projects', 'create', 'Not_A_Label']);
    expect(badName.code).toBe(1);
    expect(badName.stderr).toMatch(/^selfdevop projects: name/);
    const noProject = await cli(['environments', 'create', 'qa', '--project', 'nope']);
    expect(noProject.code).toBe(1);
    expect(noProject.stderr.trim()).toBe('selfdevop environments: project nope not found');
    expect((await cli(['environments', 'create', 'qa'])).code).toBe(2);
    const missing = await cli(['projects', 'show', 'nope']);
    expect(missing.stderr.trim()).toBe('selfdevop projects: project nope not found');
  }, 60_000);

  it('shows the org and refuses to create one with an API key, saying why', async () => {
    const shown = await cli(['orgs', '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id: orgId, role: 'admin' });
    const create = await cli(['orgs', 'create', 'other']);
    expect(create.code).toBe(1);
    expect(create.stderr).toMatch(/^selfdevop orgs: \S/);
    const asUser = await cli(['orgs', 'create', 'other'], {
      SELFDEVOP_URL: api.url,
      SELFDEVOP_TOKEN: owner,
    });
    expect(asUser.code, asUser.stderr).toBe(0);
    expect(asUser.stdout).toMatch(/^created org other \(org_\w+\); you own it$/m);
    // The user now has two orgs: without a pick, the CLI says how to choose.
    const ambiguous = await cli(['orgs'], { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: owner });
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(/several orgs .*SELFDEVOP_ORG/);
  }, 60_000);

  it('reads the audit trail filtered by action and target, one page at a time', async () => {
    const hooks = await cli(['audit', '--action', 'webhook.created', '--json']);
    expect(hooks.code, hooks.stderr).toBe(0);
    const page = JSON.parse(hooks.stdout) as {
      items: { action: string; targetId: string }[];
      nextCursor: string | null;
    };
    expect(page.items.map((e) => e.action)).toEqual(['webhook.created']);
    const byTarget = await cli(['audit', '--target', page.items[0]!.targetId]);
    expect(byTarget.stdout).toMatch(/webhook\.created/);
    expect(byTarget.stdout).toMatch(/webhook\.tested/);
    expect(byTarget.stdout).toMatch(/webhook\.deleted/);

    const first = await cli(['audit', '--limit', '1']);
    expect(first.stdout.trim().split('\n')).toHaveLength(3);
    const cursor = /^more: selfdevop audit --cursor (\S+)$/m.exec(first.stdout)?.[1];
    expect(cursor).toBeTruthy();
    const second = await cli(['audit', '--limit', '1', '--cursor', cursor!]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout.split('\n')[1]).not.toBe(first.stdout.split('\n')[1]);

    expect((await cli(['audit', '--action', 'nothing.happened'])).stdout.trim()).toBe(
      'no events match',
    );
    const bad = await cli(['audit', '--limit', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe(
      'selfdevop audit: --limit must be a whole number from 1 to 200, got 0',
    );
  }, 60_000);

  it('lists deploy jobs and shows one; an unknown one is not found', async () => {
    const shop = await api.request('POST', '/api/projects', {
      token: owner,
      headers: { 'x-org-id': orgId },
      body: { name: 'jobs' },
    });
    expect(shop.status, shop.text).toBe(201);
    const svc = await api.request('POST', '/api/services', {
      token: owner,
      headers: { 'x-org-id': orgId },
      body: {
        projectId: shop.body.id,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
      },
    });
    expect(svc.status, svc.text).toBe(201);
    // No workers run here: the job stays queued, which is all this test reads.
    const node = await api.request('POST', '/api/nodes', {
      token: owner,
      headers: { 'x-org-id': orgId },
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
    const job = await api.request('POST', '/api/deploy-jobs', {
      token: owner,
      headers: { 'x-org-id': orgId },
      body: { serviceId: svc.body.id, image: 'selfdevop-test/app:v1' },
    });
    expect(job.status, job.text).toBe(202);

    const list = await cli(['deploy-jobs', '--json']);
    expect(list.code, list.stderr).toBe(0);
    const jobs = JSON.parse(list.stdout) as { id: string; kind: string; releaseId: string }[];
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ kind: 'deploy' });
    const shown = await cli(['deploy-jobs', 'show', jobs[0]!.id]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(jobs[0]!.releaseId);
    const unknown = await cli(['deploy-jobs', 'show', 'job_nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^selfdevop deploy-jobs: .*not found/);
  }, 60_000);
});
