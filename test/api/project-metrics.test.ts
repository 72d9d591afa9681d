/**
 * A project's charts through the real HTTP API on PostgreSQL, read from a real Prometheus
 * backfilled with its services' edge and replica series (and another org's, far larger):
 * the sums of its service environments, the range switch, another org's project a 404,
 * a range it does not know a 400, and without any Prometheus what to install; then the
 * CLI's `projects metrics`, the real process, against both.
 */
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MetricsFixture, ServiceLoad } from '../contracts/metrics-query.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { freePort } from '../support/ports.ts';
import { openMetricsOf } from '../support/openmetrics.ts';
import { startPrometheus, type TestPrometheus } from '../support/prometheus.ts';
import { available } from '../support/services.ts';

type Api = Awaited<ReturnType<typeof startSelfhostApi>>;
type Answer = {
  available: boolean;
  range: string;
  stepSeconds: number;
  source: string;
  reason?: string;
  services: number;
  environments: number;
  series: { key: string; unit: string; points: [number, number][] }[];
};

/** The CLI as a user runs it, bounded at a minute, with no config file. */
const cli = (args: string[], env: Record<string, string>) => runCli(args, { cwd: tmpdir(), env });

const ready = await available('prometheus');
if (!ready && process.env.CI === 'true') throw new Error('this test needs Prometheus under CI');

describe.skipIf(!ready)('project metrics (API, PostgreSQL, real Prometheus)', () => {
  let bare: Api;
  let api: Api;
  let prometheus: TestPrometheus;
  let tokenA: string;
  let tokenB: string;
  let projectA: string;
  let projectB: string;
  let loads: ServiceLoad[];

  const signup = async (email: string) => {
    const s = await bare.request('POST', '/api/auth/local/signup', {
      body: { email, password: 'correct horse battery' },
    });
    expect(s.status, s.text).toBe(201);
    return { token: s.body.token as string, orgId: s.body.org.id as string };
  };
  const service = async (token: string, projectId: string, name: string) => {
    const r = await bare.request('POST', '/api/services', {
      token,
      body: { projectId, name, image: 'busybox:1', containerPort: 8080, healthcheckPath: '/h' },
    });
    expect(r.status, r.text).toBe(201);
    return r.body as { id: string; hosts: { environment: string; host: string }[] };
  };

  beforeAll(async () => {
    // A Prometheus URL where nothing listens: the page must say what to install.
    bare = await startSelfhostApi({ prometheusUrl: `http://127.0.0.1:${await freePort()}` });
    const a = await signup('charts-a@example.com');
    const b = await signup('charts-b@example.com');
    tokenA = a.token;
    tokenB = b.token;
    const pa = await bare.request('POST', '/api/projects', {
      token: a.token,
      body: { name: 'shop' },
    });
    projectA = pa.body.id;
    const envs: Record<string, string> = { production: pa.body.environments[0].id };
    const staging = await bare.request('POST', '/api/environments', {
      token: a.token,
      body: { projectId: projectA, name: 'staging' },
    });
    expect(staging.status, staging.text).toBe(201);
    envs.staging = staging.body.id;
    const pb = await bare.request('POST', '/api/projects', {
      token: b.token,
      body: { name: 'big' },
    });
    projectB = pb.body.id;
    const web = await service(a.token, projectA, 'web');
    const apiSvc = await service(a.token, projectA, 'api');
    const other = await service(b.token, projectB, 'web');
    const load = (
      orgId: string,
      projectId: string,
      svc: Awaited<ReturnType<typeof service>>,
      environment: string,
      environmentId: string,
      n: number,
    ): ServiceLoad => ({
      orgId,
      projectId,
      serviceId: svc.id,
      environmentId,
      host: svc.hosts.find((h) => h.environment === environment)!.host,
      requestsPerSecond: n,
      share4xx: 0,
      share5xx: 0.25,
      latencySeconds: 0.2,
      cpuCores: n / 10,
      memoryBytes: n * 1024 * 1024,
      connections: n,
      restartsIn15m: 0,
    });
    loads = [
      load(a.orgId, projectA, web, 'production', envs.production!, 8),
      load(a.orgId, projectA, web, 'staging', envs.staging!, 2),
      load(a.orgId, projectA, apiSvc, 'production', envs.production!, 4),
      // Another org's service, far busier: none of it may reach project A's charts.
      load(b.orgId, projectB, other, 'production', pb.body.environments[0].id, 100),
    ];
    const now = Math.floor(Date.now() / 1000 / 60) * 60;
    const fixture: MetricsFixture = {
      from: now - 40 * 60,
      to: now - 5 * 60,
      intervalSeconds: 15,
      services: loads,
      nodes: [],
    };
    prometheus = await startPrometheus({ openMetrics: openMetricsOf(fixture) });
    // The same database and session secret: the same users, read through a Prometheus.
    api = await startSelfhostApi({
      databaseUrl: bare.databaseUrl,
      jwtSecret: bare.jwtSecret,
      prometheusUrl: prometheus.url,
    });
  }, 180_000);

  afterAll(async () => {
    await api?.close();
    await prometheus?.stop();
    await bare?.close();
  });

  const read = async (h: Api, token: string, projectId: string, range = '1h') => {
    const r = await h.request('GET', `/api/projects/${projectId}/metrics?range=${range}`, {
      token,
    });
    expect(r.status, r.text).toBe(200);
    return r.body as Answer;
  };
  const mid = (a: Answer, key: string) => {
    const points = a.series.find((s) => s.key === key)!.points;
    expect(points.length, key).toBeGreaterThan(5);
    return points[Math.floor(points.length / 2)]![1];
  };

  it("charts the sum of every service environment of the project, none of another org's", async () => {
    const m = await read(api, tokenA, projectA);
    expect(m).toMatchObject({
      available: true,
      range: '1h',
      stepSeconds: 60,
      services: 2,
      environments: 2,
      source: `Prometheus at ${prometheus.url}`,
    });
    expect(m.series.map((s) => [s.key, s.unit])).toEqual([
      ['requests', 'req/s'],
      ['errors_5xx', 'req/s'],
      ['latency_p95', 'seconds'],
      ['connections', 'connections'],
      ['cpu', 'cores'],
      ['memory', 'bytes'],
    ]);
    // 8 + 2 + 4 (the other org's 100 would show).
    expect(mid(m, 'requests')).toBeCloseTo(14, 0);
    expect(mid(m, 'errors_5xx')).toBeCloseTo(3.5, 0);
    expect(mid(m, 'connections')).toBe(14);
    expect(mid(m, 'cpu')).toBeCloseTo(1.4, 1);
    expect(mid(m, 'memory')).toBe(14 * 1024 * 1024);
    const p95 = mid(m, 'latency_p95');
    expect(p95).toBeGreaterThan(0.1);
    expect(p95).toBeLessThanOrEqual(0.25);
    const theirs = await read(api, tokenB, projectB);
    expect(mid(theirs, 'memory')).toBe(100 * 1024 * 1024);
  });

  it('switches range: a day at 10 minutes a point, a week at an hour', async () => {
    const day = await read(api, tokenA, projectA, '1d');
    expect(day).toMatchObject({ available: true, range: '1d', stepSeconds: 600 });
    expect(day.series.find((s) => s.key === 'memory')!.points.length).toBeGreaterThan(0);
    const week = await read(api, tokenA, projectA, '1w');
    expect(week).toMatchObject({ available: true, range: '1w', stepSeconds: 3600 });
  });

  it("answers 404 for another org's project (never its series), 401 without a session, 400 for an unknown range", async () => {
    const foreign = await api.request('GET', `/api/projects/${projectB}/metrics`, {
      token: tokenA,
    });
    expect(foreign.status).toBe(404);
    expect(foreign.text).not.toContain('series');
    const unknown = await api.request('GET', '/api/projects/prj_nope/metrics', { token: tokenA });
    expect(unknown.status).toBe(404);
    const anonymous = await api.request('GET', `/api/projects/${projectA}/metrics`);
    expect(anonymous.status).toBe(401);
    const bad = await api.request('GET', `/api/projects/${projectA}/metrics?range=10y`, {
      token: tokenA,
    });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('range');
  });

  it('says exactly what to install when no Prometheus answers, never a broken chart', async () => {
    const m = await read(bare, tokenA, projectA, '1d');
    expect(m).toMatchObject({ available: false, range: '1d' });
    expect(m.reason).toContain('did not answer');
    expect(m.reason).toContain('apt-get install prometheus');
    expect(m.reason).toContain('PROMETHEUS_URL');
    expect(m).not.toHaveProperty('series');
  });

  it('renders the project page: six charts with the range switch, or exactly what to install', async () => {
    const page = (h: Api, range: string) =>
      h.request('GET', `/dashboard/projects/${projectA}?range=${range}`, {
        headers: { cookie: `sdo_session=${tokenA}` },
      });
    const drawn = await page(api, '1w');
    expect(drawn.status).toBe(200);
    expect(drawn.text.match(/<figure class="chart"/g)).toHaveLength(6);
    expect(drawn.text).toContain('data-chart="connections"');
    expect(drawn.text).toMatch(/aria-current="page"\s*>Last week</);
    expect(drawn.text).not.toContain('metrics-unavailable');
    const bareOne = await page(bare, '1h');
    expect(bareOne.status).toBe(200);
    expect(bareOne.text).toContain('id="metrics-unavailable"');
    expect(bareOne.text).toContain('apt-get install prometheus prometheus-alertmanager');
    expect(bareOne.text).not.toContain('<figure class="chart"');
    expect(bareOne.text).not.toMatch(/<svg\s+role="img"/);
    expect(drawn.text).toMatch(/<svg\s+role="img"/);
  });

  it('prints the same through the CLI, and what to install (exit 1) without a Prometheus', async () => {
    const ok = await cli(['projects', 'metrics', 'shop', '--range', '1h'], {
      SELFDEVOP_URL: api.url,
      SELFDEVOP_TOKEN: tokenA,
    });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/Open connections\s+14 connections/);
    expect(ok.stdout).toMatch(/Memory\s+14MiB/);
    const json = await cli(['projects', 'metrics', 'shop', '--json'], {
      SELFDEVOP_URL: api.url,
      SELFDEVOP_TOKEN: tokenA,
    });
    expect(JSON.parse(json.stdout)).toMatchObject({ available: true, range: '1h', services: 2 });
    const none = await cli(['projects', 'metrics', 'shop'], {
      SELFDEVOP_URL: bare.url,
      SELFDEVOP_TOKEN: tokenA,
    });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('apt-get install prometheus');
    const bad = await cli(['projects', 'metrics', 'shop', '--range', '10y'], {
      SELFDEVOP_URL: api.url,
      SELFDEVOP_TOKEN: tokenA,
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--range must be 1h, 1d or 1w');
  }, 120_000);
});
