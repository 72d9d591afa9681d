/**
 * Replicas and nodes measured, for real: the self-hosted control plane with its workers and
 * its usage collector, a real Docker Engine and Caddy, and a real Prometheus scraping the
 * worker's usage endpoint. The MetricsQuery adapter reads the replica's CPU and memory
 * chart and the node's back from Prometheus; a replica that crash-loops (a container of
 * `selfdevop-test/app:crash` the engine keeps restarting) is reported once as
 * `replica.crash_looping` and shown on the health view, the service page and the CLI.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrometheusMetricsQuery } from '../../adapters/metrics-query/prometheus.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { replicaContainerName } from '../../core/releases/plan.ts';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { freePort } from '../support/ports.ts';
import { dockerTarget, ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import { startPrometheus, type TestPrometheus } from '../support/prometheus.ts';
import { available } from '../support/services.ts';

const ready =
  (await available('docker')) && (await available('caddy')) && (await available('prometheus'));

async function until<T>(what: string, fn: () => Promise<T | null>, ms = 90_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await fn();
      if (v !== null) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`${what} not within ${ms} ms (${String(last)})`);
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

describe.skipIf(!ready)('usage of replicas and nodes, and crash loops', () => {
  const token = randomBytes(24).toString('hex');
  let caddy: TestCaddy;
  let prometheus: TestPrometheus;
  let api: ApiHarness & { url: string; logLines(): string[] };
  let statsAddress: string;
  let session: string;
  let orgId: string;
  let serviceId: string;
  let nodeId: string;
  let release: { id: string; environmentId: string; serviceId: string };

  beforeAll(async () => {
    await ensureTestImages();
    caddy = await startCaddy();
    statsAddress = `127.0.0.1:${await freePort()}`;
    prometheus = await startPrometheus({
      files: { token: token },
      config: [
        'global: {scrape_interval: 1s}',
        'scrape_configs:',
        '  - job_name: selfdevop-usage',
        '    authorization: {credentials_file: token}',
        `    static_configs: [{targets: ['${statsAddress}']}]`,
        '',
      ].join('\n'),
    });
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
      alertReceiverToken: token,
      statsIntervalSeconds: 5,
      statsListen: statsAddress,
      nodeProbeImage: 'selfdevop-test/busybox:base',
      logLevel: 'warn',
    });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'usage@example.com', password: 'correct horse battery' },
    });
    session = s.body.token;
    orgId = s.body.org.id;
    const projectId = (
      await api.request('POST', '/api/projects', { token: session, body: { name: 'measured' } })
    ).body.id;
    const node = await api.request('POST', '/api/nodes', {
      token: session,
      body: { name: 'local', dockerHost: dockerTarget.dockerHost, address: '127.0.0.1' },
    });
    expect(node.status, node.text).toBe(201);
    nodeId = node.body.id;
    const svc = await api.request('POST', '/api/services', {
      token: session,
      body: {
        projectId,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 2, deadlineMs: 10_000, timeoutMs: 1_000 },
        drainSeconds: 1,
      },
    });
    expect(svc.status, svc.text).toBe(201);
    serviceId = svc.body.id;
    const created = await api.request('POST', '/api/releases', {
      token: session,
      body: { serviceId, image: 'selfdevop-test/app:v1' },
    });
    expect(created.status, created.text).toBe(202);
    release = await until('the release completing', async () => {
      const r = await api.request('GET', `/api/releases/${created.body.id}`, { token: session });
      if (r.body.status === 'failed') throw new Error(`release failed: ${r.body.error}`);
      return r.body.status === 'completed' ? r.body : null;
    });
  }, 180_000);

  afterAll(async () => {
    await api?.close();
    await prometheus?.stop();
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('reads a running container’s CPU time and memory from the engine', async () => {
    const runtime = new DockerRuntime();
    const [c] = await runtime.list(dockerTarget, { 'selfdevop.release': release.id });
    expect(c).toBeDefined();
    const u = await runtime.usage(dockerTarget, c!.id);
    expect(u!.memoryBytes).toBeGreaterThan(0);
    expect(u!.cpuSeconds).toBeGreaterThan(0);
    expect(await runtime.usage(dockerTarget, 'sdo-no-such-container')).toBeNull();
  });

  it('serves the usage only to the bearer of the token', async () => {
    const bare = await fetch(`http://${statsAddress}/metrics`);
    expect(bare.status).toBe(401);
    const text = await until('the replica in the usage endpoint', async () => {
      const r = await fetch(`http://${statsAddress}/metrics`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const body = await r.text();
      return body.includes(`service="${serviceId}"`) &&
        body.includes('selfdevop_node_disk_used_ratio')
        ? body
        : null;
    });
    const own = `org="${orgId}",service="${serviceId}",environment="${release.environmentId}",replica="0",node="${nodeId}"`;
    expect(text).toMatch(new RegExp(`selfdevop_replica_memory_bytes\\{${own}\\} [1-9]\\d*`));
    expect(text).toMatch(new RegExp(`selfdevop_replica_cpu_seconds_total\\{${own}\\} \\d`));
    expect(text).toContain(`selfdevop_replica_restarts_total{${own}} 0`);
    const disk = /selfdevop_node_disk_used_ratio\{org="[^"]+",node="([^"]+)"\} ([\d.e-]+)/.exec(
      text,
    );
    expect(disk?.[1]).toBe(nodeId);
    expect(Number(disk?.[2])).toBeGreaterThan(0);
    expect(Number(disk?.[2])).toBeLessThanOrEqual(1);
  }, 120_000);

  it('lets the MetricsQuery adapter read the replica and node charts back from Prometheus', async () => {
    const query = new PrometheusMetricsQuery(prometheus.url);
    const window = () => {
      const end = new Date();
      return { start: new Date(end.getTime() - 120_000), end, stepSeconds: 5 };
    };
    const service = await until('CPU and memory points', async () => {
      const series = await query.series({
        scope: {
          kind: 'service',
          orgId,
          serviceId,
          environmentId: release.environmentId,
          hosts: [],
        },
        keys: ['cpu', 'memory'],
        ...window(),
      });
      const ok = series.every((s) => s.points.length > 0);
      return ok ? series : null;
    });
    const memory = service.find((s) => s.key === 'memory')!.points;
    expect(memory.every(([, v]) => v > 0)).toBe(true);
    const cpu = service.find((s) => s.key === 'cpu')!.points;
    expect(cpu.every(([, v]) => v >= 0 && v < 64)).toBe(true);
    // The node's CPU needs two probes (15 s apart at the least): a rate of its counters.
    const node = await until(
      'node CPU, memory and disk points',
      async () => {
        const series = await query.series({
          scope: { kind: 'node', orgId, nodeId },
          keys: ['cpu', 'memory', 'disk'],
          ...window(),
        });
        return series.every((s) => s.points.length > 0) ? series : null;
      },
      120_000,
    );
    for (const s of node)
      for (const [, v] of s.points) {
        expect(v, s.key).toBeGreaterThanOrEqual(0);
        expect(v, s.key).toBeLessThanOrEqual(1);
      }
    // Another org's scope reads nothing of this one's.
    const other = await query.series({
      scope: { kind: 'node', orgId: 'org_someone_else', nodeId },
      keys: ['memory'],
      ...window(),
    });
    expect(other[0]!.points).toEqual([]);
  }, 240_000);

  it('reports a crash-looping replica once, on the health view, the page and the CLI', async () => {
    // One restart in 15 minutes is this service's crash loop (the rule's threshold, per service).
    const t = await api.request('PUT', '/api/alerts/thresholds', {
      token: session,
      body: { serviceId, rule: 'crash_loop', value: 1 },
    });
    expect(t.status, t.text).toBe(200);
    // Replica 1 of the serving release starts crashing; the engine keeps restarting it.
    const runtime = new DockerRuntime();
    await runtime.start(dockerTarget, {
      name: replicaContainerName(release, 1),
      image: 'selfdevop-test/app:crash',
      env: {},
      labels: {
        'selfdevop.org': orgId,
        'selfdevop.service': serviceId,
        'selfdevop.environment': release.environmentId,
        'selfdevop.release': release.id,
        'selfdevop.role': 'web',
      },
      restartPolicy: 'unless-stopped',
    });
    const events = await until('the crash_looping event', async () => {
      const r = await api.request(
        'GET',
        `/api/audit-events?action=replica.crash_looping&targetId=${serviceId}`,
        { token: session },
      );
      return r.body.items?.length ? r.body.items : null;
    }).catch(async (e: Error) => {
      const usage = api.logLines().filter((l) => l.includes('usage'));
      const text = await fetch(`http://${statsAddress}/metrics`, {
        headers: { authorization: `Bearer ${token}` },
      }).then((r) => r.text());
      throw new Error(
        `${e.message}; the collector said: ${usage.slice(-10).join('\n')}; exported: ${text
          .split('\n')
          .filter((l) => l.includes('restarts'))
          .join('\n')}`,
      );
    });
    expect(events[0].data).toMatchObject({
      serviceId,
      environmentId: release.environmentId,
      releaseId: release.id,
      replica: '1',
      nodeId,
      threshold: 1,
      windowSeconds: 900,
    });
    expect(events[0].data.restartsInWindow).toBeGreaterThanOrEqual(1);

    const h = await api.request('GET', `/api/services/${serviceId}/health`, { token: session });
    expect(h.status, h.text).toBe(200);
    expect(h.body.crashLoops).toEqual([
      expect.objectContaining({ releaseId: release.id, replica: '1', threshold: 1 }),
    ]);
    const page = await fetch(`${api.url}/dashboard/services/${serviceId}`, {
      headers: { cookie: `sdo_session=${session}` },
    });
    expect((await page.text()).replace(/\s+/g, ' ')).toMatch(
      /Crash-looping: <span class="badge bad">failed<\/span> replica 1/,
    );
    const cli = await new Promise<{ code: number; stdout: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [join(import.meta.dirname, '..', '..', 'cli', 'main.ts'), 'services', 'health', serviceId],
        {
          env: {
            ...process.env,
            SELFDEVOP_URL: api.url,
            SELFDEVOP_TOKEN: session,
            XDG_CONFIG_HOME: '/nonexistent',
          },
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(killer);
        resolve({ code: code ?? -1, stdout });
      });
    });
    expect(cli.stdout).toMatch(/crash-looping: replica 1, \d+ restarts in 15 min \(threshold 1\)/);
    expect(cli.code).toBe(1);

    // Further collections while it keeps looping add no second event for the same container.
    await new Promise((r) => setTimeout(r, 12_000));
    const again = await api.request(
      'GET',
      `/api/audit-events?action=replica.crash_looping&targetId=${serviceId}`,
      { token: session },
    );
    expect(again.body.items).toHaveLength(1);
  }, 240_000);
});
