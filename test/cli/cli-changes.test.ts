/**
 * The CLI's verbs for changing what runs (issue 14): services update/redeploy/delete,
 * projects update/delete, environments create/update/delete/promote, nodes update. The
 * real process, spawned as CI runs it, against the self-hosted API on PostgreSQL (no
 * worker: releases stay queued, which is what the in-flight refusals need).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { runCli } from '../support/cli.ts';

describe('the selfdevop CLI for changing services, environments, projects and nodes', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let dir: string;
  let owner: string;
  let env: Record<string, string>;

  const cli = (args: string[]) => runCli(args, { cwd: dir, env });

  beforeAll(async () => {
    api = await startSelfhostApi();
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'cli-changes@example.com', password: 'correct horse battery' },
    });
    expect(s.status, s.text).toBe(201);
    owner = s.body.token;
    const key = await api.request('POST', `/api/orgs/${s.body.org.id}/api-keys`, {
      token: owner,
      body: { name: 'k-admin', role: 'admin' },
    });
    env = { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: key.body.key as string };
    // This machine's engine is the operator's: the first account's session registers it.
    const node = await api.request('POST', '/api/nodes', {
      token: owner,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
    dir = await mkdtemp(join(tmpdir(), 'sdo-cli-changes-'));
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('updates a service, saying what applies now and what with the next release', async () => {
    expect((await cli(['projects', 'create', 'shop'])).code).toBe(0);
    const project = await api.request('GET', '/api/projects', { token: owner });
    const svc = await api.request('POST', '/api/services', {
      token: owner,
      body: {
        projectId: project.body.items[0].id,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
      },
    });
    expect(svc.status, svc.text).toBe(201);

    const updated = await cli([
      'services',
      'update',
      'web',
      '--project',
      'shop',
      '--name',
      'front',
      '--port',
      '3000',
      '--env',
      'NODE_ENV=production',
      '--sticky',
      '--cpus',
      '0.5',
    ]);
    expect(updated.code, updated.stderr).toBe(0);
    expect(updated.stdout).toMatch(/^updated service front \(svc_\w+\)$/m);
    expect(updated.stdout).toMatch(/^applied now: name$/m);
    expect(updated.stdout).toMatch(/^with the next release: containerPort, env, cpus, sticky$/m);
    const got = await api.request('GET', `/api/services/${svc.body.id}`, { token: owner });
    expect(got.body).toMatchObject({
      name: 'front',
      containerPort: 3000,
      env: { NODE_ENV: 'production' },
      sticky: true,
      cpus: 0.5,
    });

    const usage = await cli(['services', 'update', 'front', '--port', 'eighty']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--port eighty: expected a whole number');
    expect((await cli(['services', 'update', 'front'])).code).toBe(2);
    const refused = await cli(['services', 'update', 'front', '--strategy', 'canary']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^selfdevop services: strategy/);
  }, 60_000);

  it('renames, promotes and deletes environments, naming what is refused', async () => {
    const created = await cli(['environments', 'create', 'staging', '--project', 'shop']);
    expect(created.code, created.stderr).toBe(0);
    const renamed = await cli([
      'environments',
      'update',
      'staging',
      '--project',
      'shop',
      '--name',
      'qa',
    ]);
    expect(renamed.code, renamed.stderr).toBe(0);
    expect(renamed.stdout.trim()).toBe('renamed environment staging to qa in shop');
    const prod = await cli([
      'environments',
      'update',
      'production',
      '--project',
      'shop',
      '--name',
      'live',
    ]);
    expect(prod.code).toBe(1);
    expect(prod.stderr).toContain('production keeps its name');

    const nothing = await cli([
      'environments',
      'promote',
      'qa',
      '--project',
      'shop',
      '--to',
      'production',
    ]);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toContain('nothing serves in qa');
    const unknownService = await cli([
      'environments',
      'promote',
      'qa',
      '--project',
      'shop',
      '--to',
      'production',
      '--service',
      'nope',
    ]);
    expect(unknownService.code).toBe(1);
    expect(unknownService.stderr).toContain('service nope not found in project shop');
    expect((await cli(['environments', 'promote', 'qa', '--project', 'shop'])).code).toBe(2);

    expect((await cli(['environments', 'delete', 'qa', '--project', 'shop'])).code).toBe(2);
    const wrong = await cli([
      'environments',
      'delete',
      'qa',
      '--project',
      'shop',
      '--confirm',
      'staging',
    ]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("type the environment's name (qa)");
    const deleted = await cli([
      'environments',
      'delete',
      'qa',
      '--project',
      'shop',
      '--confirm',
      'qa',
    ]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stdout).toContain('deleted environment qa of shop');
    const listed = await cli(['environments', '--project', 'shop', '--json']);
    expect((JSON.parse(listed.stdout) as { name: string }[]).map((e) => e.name)).toEqual([
      'production',
    ]);
  }, 60_000);

  it('refuses a redeploy with nothing serving and a delete while a release is in flight', async () => {
    const redeploy = await cli(['services', 'redeploy', 'front', '--project', 'shop']);
    expect(redeploy.code).toBe(1);
    expect(redeploy.stderr).toContain('has no release serving in production');
    const svc = (await api.request('GET', '/api/services', { token: owner })).body.items[0];
    const release = await api.request('POST', '/api/releases', {
      token: owner,
      body: { serviceId: svc.id, image: 'selfdevop-test/app:v1' },
    });
    expect(release.status, release.text).toBe(202);
    const busy = await cli(['services', 'delete', 'front', '--confirm', 'front']);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toContain(release.body.id);
    await api.request('POST', `/api/releases/${release.body.id}/cancel`, { token: owner });
    expect((await cli(['services', 'delete', 'front'])).code).toBe(2);
    const deleted = await cli(['services', 'delete', 'front', '--confirm', 'front']);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stdout).toContain('deleted service front');
    expect((await cli(['services', '--json'])).stdout.trim()).toBe('[]');
  }, 60_000);

  it('renames and deletes a project, and relabels a node', async () => {
    const renamed = await cli(['projects', 'update', 'shop', '--name', 'store']);
    expect(renamed.code, renamed.stderr).toBe(0);
    expect(renamed.stdout.trim()).toBe('renamed project shop to store');
    const wrong = await cli(['projects', 'delete', 'store', '--confirm', 'shop']);
    expect(wrong.code).toBe(1);
    const deleted = await cli(['projects', 'delete', 'store', '--confirm', 'store']);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect((await cli(['projects', '--json'])).stdout.trim()).toBe('[]');

    const labelled = await cli(['nodes', 'update', 'local', '--label', 'role=app']);
    expect(labelled.code, labelled.stderr).toBe(0);
    expect(labelled.stdout).toMatch(/^applied now: labels$/m);
    expect((await cli(['nodes'])).stdout).toMatch(/^local +engine +active .* role=app /m);
    const bad = await cli(['nodes', 'update', 'local', '--label', 'role']);
    expect(bad.code).toBe(2);
    const refused = await cli(['nodes', 'update', 'local', '--address', '169.254.169.254']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('address');

    const spare = await api.request('POST', '/api/nodes', {
      token: owner,
      body: { name: 'spare', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(spare.status, spare.text).toBe(201);
    const removed = await cli(['nodes', 'rm', 'spare']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout.trim()).toBe('deleted node spare');
    expect((await api.request('GET', `/api/nodes/${spare.body.id}`, { token: owner })).status).toBe(
      404,
    );
    const again = await cli(['nodes', 'rm', 'spare']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('node spare not found');
    expect((await cli(['nodes', 'rm'])).code).toBe(2);
  }, 60_000);
});
