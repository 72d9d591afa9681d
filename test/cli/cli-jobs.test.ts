/**
 * `selfdevop jobs` and worker services: the real CLI process against the self-hosted API
 * with its workers (pg-boss cron keeps the schedules), on the real Docker Engine. A worker
 * is deployed (no route, no host), a job is added with a time zone, refused clearly for bad
 * input, run now and its run read back; another org sees none of it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import { available } from '../support/services.ts';
import { runCli } from '../support/cli.ts';

const ready = await available('docker');

describe.skipIf(!ready)('the selfdevop CLI for cron jobs, and worker services', () => {
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;
  let dir: string;
  let env: Record<string, string>;
  let orgId: string;
  let token: string;
  let serviceId: string;
  let otherToken: string;

  const cli = (args: string[]) => runCli(args, { cwd: dir, env, timeoutMs: 120_000 });

  async function until<T>(read: () => Promise<T | null>, what: string, ms = 60_000): Promise<T> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const v = await read();
      if (v !== null) return v;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`${what} did not happen within ${ms} ms`);
  }

  beforeAll(async () => {
    await ensureTestImages();
    api = await startSelfhostApi({ workers: true });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'cli-jobs@example.com', password: 'correct horse battery' },
    });
    orgId = s.body.org.id;
    token = s.body.token as string;
    const key = await api.request('POST', `/api/orgs/${orgId}/api-keys`, {
      token,
      body: { name: 'ci', role: 'deployer' },
    });
    env = { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: key.body.key };
    const project = await api.request('POST', '/api/projects', { token, body: { name: 'shop' } });
    const svc = await api.request('POST', '/api/services', {
      token,
      body: {
        projectId: project.body.id,
        name: 'mailer',
        kind: 'worker',
        image: 'selfdevop-test/app:v1',
        env: { GREETING: 'from-env' },
        workerHealth: { stableSeconds: 1 },
      },
    });
    expect(svc.status, JSON.stringify(svc.body)).toBe(201);
    serviceId = svc.body.id;
    const node = await api.request('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    expect(node.status, JSON.stringify(node.body)).toBe(201);
    const other = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'cli-jobs-other@example.com', password: 'correct horse battery' },
    });
    otherToken = other.body.token as string;
    dir = await mkdtemp(join(tmpdir(), 'sdo-cli-jobs-'));
  }, 900_000);

  afterAll(async () => {
    await api?.close();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('deploys a worker: no host, no route, no domain', async () => {
    const shown = await api.request('GET', `/api/services/${serviceId}`, { token });
    expect([shown.body.kind, shown.body.containerPort, shown.body.hosts]).toEqual([
      'worker',
      null,
      [],
    ]);
    const release = await api.request('POST', '/api/releases', {
      token,
      body: { serviceId, image: 'selfdevop-test/app:v1' },
    });
    expect(release.status, JSON.stringify(release.body)).toBe(202);
    const done = await until(async () => {
      const r = await api.request('GET', `/api/releases/${release.body.id}`, { token });
      return ['completed', 'failed'].includes(r.body.status) ? r.body : null;
    }, 'the worker release to settle');
    expect([done.status, done.error, done.upstream]).toEqual(['completed', null, null]);
    const domain = await api.request('POST', '/api/domains', {
      token,
      body: { serviceId, hostname: 'mailer.example.com' },
    });
    expect([domain.status, domain.body.error?.message]).toEqual([
      400,
      'serviceId: a worker has no route, so it takes no domain',
    ]);
  });

  it('adds a job, refuses bad schedules and zones by name, runs it now and shows the run', async () => {
    const seconds = await cli([
      'jobs',
      'add',
      'report',
      '--service',
      'mailer',
      '--schedule',
      '* * * * * *',
      '--command',
      'true',
    ]);
    expect(seconds.code).not.toBe(0);
    expect(seconds.stderr).toContain('a seconds field would fire more often than once a minute');
    const zone = await cli([
      'jobs',
      'add',
      'report',
      '--service',
      'mailer',
      '--schedule',
      '30 2 * * *',
      '--time-zone',
      'Mars/Olympus',
      '--command',
      'true',
    ]);
    expect(zone.code).not.toBe(0);
    expect(zone.stderr).toContain('timeZone: "Mars/Olympus" is not a known IANA time zone');

    const added = await cli([
      'jobs',
      'add',
      'report',
      '--service',
      'mailer',
      '--schedule',
      '30 2 * * *',
      '--time-zone',
      'Europe/Berlin',
      '--command',
      'echo "report $GREETING"; exit 3',
      '--timeout',
      '60',
      '--json',
    ]);
    expect(added.code, added.stderr).toBe(0);
    const job = JSON.parse(added.stdout);
    expect([job.schedule, job.timeZone, job.overlap, job.environment]).toEqual([
      '30 2 * * *',
      'Europe/Berlin',
      'skip',
      'production',
    ]);
    const list = await cli(['jobs', '--service', 'mailer']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain('report');
    expect(list.stdout).toContain('Europe/Berlin');

    const run = await cli(['jobs', 'run', job.id]);
    expect(run.code, run.stderr).toBe(0);
    const runs = await until(async () => {
      const r = await cli(['jobs', 'runs', job.id, '--json']);
      const items = JSON.parse(r.stdout) as { status: string }[];
      return items.some((x) => x.status !== 'running') ? items : null;
    }, 'the run to finish');
    expect(runs[0]).toMatchObject({
      trigger: 'manual',
      status: 'failed',
      exitCode: 3,
      logTail: 'report from-env',
      error: 'exited with code 3',
    });
    const table = await cli(['jobs', 'runs', job.id]);
    expect(table.stdout).toContain('failed');

    // Another org: the job and the service do not exist for it.
    const foreign = await api.request('GET', `/api/jobs/${job.id}`, { token: otherToken });
    expect(foreign.status).toBe(404);
    const foreignRun = await api.request('POST', `/api/jobs/${job.id}/run`, { token: otherToken });
    expect(foreignRun.status).toBe(404);
    const foreignCreate = await api.request('POST', '/api/jobs', {
      token: otherToken,
      body: { serviceId, name: 'steal', schedule: '@daily', command: 'true' },
    });
    expect([foreignCreate.status, foreignCreate.body.error?.code]).toEqual([
      404,
      'service_not_found',
    ]);

    const removed = await cli(['jobs', 'rm', job.id]);
    expect(removed.code, removed.stderr).toBe(0);
    expect((await api.request('GET', `/api/jobs/${job.id}`, { token })).status).toBe(404);
  });
});
