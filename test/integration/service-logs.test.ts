/**
 * App logs for real: the self-hosted control plane with its workers, a real Docker Engine
 * and a real Caddy. Two releases of a service: the logs API, the CLI and the service page
 * read the containers' own output from the engine, each line named by its replica, merged
 * in time order; a live follow (SSE) sees a line the app writes after it opened; bad ranges
 * and searches are 400s naming the problem.
 */
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiHarness } from '../api/api.case.ts';
import { startSelfhostApi } from '../support/api.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages, removeContainersByLabel } from '../support/docker.ts';
import { available } from '../support/services.ts';

const ready = (await available('docker')) && (await available('caddy'));
if (!ready && process.env.CI === 'true')
  throw new Error('service logs need Docker and Caddy, which CI must have');
if (!ready) console.warn('SKIPPED service-logs: Docker or Caddy is not available here');

interface Line {
  time: string;
  replica: string;
  node: string;
  stream: string;
  text: string;
}

describe.skipIf(!ready)('app logs, from the nodes’ engines', () => {
  let caddy: TestCaddy;
  let api: ApiHarness & { url: string };
  let token: string;
  let orgId: string;
  let serviceId: string;
  const containers: string[] = [];

  async function settle(releaseId: string, deadlineMs = 40_000) {
    const end = Date.now() + deadlineMs;
    for (;;) {
      const r = await api.request('GET', `/api/releases/${releaseId}`, { token });
      if (['completed', 'failed', 'rolled_back'].includes(r.body.status)) return r.body;
      if (Date.now() > end)
        throw new Error(`release ${releaseId} still ${r.body.status} after ${deadlineMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const deploy = async (image: string) => {
    const res = await api.request('POST', '/api/releases', { token, body: { serviceId, image } });
    expect(res.status, res.text).toBe(202);
    const done = await settle(res.body.id);
    expect(done.status).toBe('completed');
    return done as { id: string; containerId: string };
  };

  const logs = async (query: string) => {
    const res = await fetch(`${api.url}/api/services/${serviceId}/logs?${query}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const text = await res.text();
    return {
      status: res.status,
      type: res.headers.get('content-type'),
      text,
      rows: res.ok
        ? text
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Line | { type: string })
        : [],
    };
  };
  const linesOf = (rows: (Line | { type: string })[]) =>
    rows.filter((r): r is Line => !('type' in r));

  /** Writes a line to the app's own stdout, as the app would. */
  const appSays = (container: string, text: string) =>
    promisify(execFile)('docker', ['exec', container, 'sh', '-c', `echo '${text}' > /proc/1/fd/1`]);

  const cli = (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [join(import.meta.dirname, '..', '..', 'cli', 'main.ts'), ...args],
        {
          env: {
            ...process.env,
            SELFDEVOP_URL: api.url,
            SELFDEVOP_TOKEN: token,
            XDG_CONFIG_HOME: '/nonexistent',
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(killer);
        resolve({ code: code ?? -1, stdout, stderr });
      });
    });

  beforeAll(async () => {
    await ensureTestImages();
    caddy = await startCaddy();
    api = await startSelfhostApi({
      workers: true,
      caddyAdminUrl: caddy.adminUrl,
      caddyServer: caddy.serverName,
    });
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: 'logs@example.com', password: 'correct horse battery' },
    });
    token = s.body.token;
    orgId = s.body.org.id;
    const projectId = (
      await api.request('POST', '/api/projects', { token, body: { name: 'logged' } })
    ).body.id;
    await api.request('POST', '/api/nodes', {
      token,
      body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
    });
    const svc = await api.request('POST', '/api/services', {
      token,
      body: {
        projectId,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
        health: { intervalMs: 100, successes: 2, deadlineMs: 10_000, timeoutMs: 1_000 },
        drainSeconds: 1,
        // The previous release stays (stopped later) so both releases' containers are read.
        warmSeconds: 600,
      },
    });
    expect(svc.status, svc.text).toBe(201);
    serviceId = svc.body.id;
    const names = async (id: string) =>
      (await promisify(execFile)('docker', ['inspect', '--format', '{{.Name}}', id])).stdout
        .trim()
        .slice(1);
    containers.push(await names((await deploy('selfdevop-test/app:v1')).containerId));
    containers.push(await names((await deploy('selfdevop-test/app:v2')).containerId));
  }, 180_000);

  afterAll(async () => {
    await api?.close();
    await caddy?.stop();
    if (orgId) await removeContainersByLabel({ 'selfdevop.org': orgId });
  });

  it('reads both releases’ containers, merged in time order, each line named by replica and node', async () => {
    const res = await logs('since=10m');
    expect(res.status, res.text).toBe(200);
    expect(res.type).toContain('application/x-ndjson');
    const lines = linesOf(res.rows);
    const listening = lines.filter((l) => l.text.includes('listening on :8080'));
    expect(listening.map((l) => [l.replica, l.node, l.stream, l.text])).toEqual([
      [containers[0], 'local', 'stdout', 'app v1 listening on :8080 (mode normal)'],
      [containers[1], 'local', 'stdout', 'app v2 listening on :8080 (mode normal)'],
    ]);
    const times = lines.map((l) => l.time);
    expect(times).toEqual([...times].sort());
    expect(res.rows.at(-1)).toEqual({ type: 'end' });
  });

  it('searches by substring and by a regular expression; a catastrophic pattern is answered at once', async () => {
    await appSays(containers[1]!, 'GET /checkout status=500 took=12ms');
    await appSays(containers[1]!, 'GET /checkout status=200 took=3ms');
    const plain = linesOf((await logs('since=10m&grep=status%3D500')).rows);
    expect(plain.map((l) => l.text)).toEqual(['GET /checkout status=500 took=12ms']);
    const regex = linesOf(
      (
        await logs(
          `since=10m&regex=true&grep=${encodeURIComponent('status=[45]\\d\\d took=\\d+ms$')}`,
        )
      ).rows,
    );
    expect(regex.map((l) => l.text)).toEqual(['GET /checkout status=500 took=12ms']);
    await appSays(containers[1]!, `${'a'.repeat(4000)}!`);
    const evil = await logs(`since=10m&regex=true&grep=${encodeURIComponent('(a+)+$')}`);
    expect(evil.status).toBe(200);
    expect(linesOf(evil.rows)).toEqual([]);
  });

  it('keeps the newest lines with tail, across replicas', async () => {
    const lines = linesOf((await logs('tail=2')).rows);
    expect(lines.map((l) => l.text)).toEqual([
      'GET /checkout status=200 took=3ms',
      `${'a'.repeat(4000)}!`,
    ]);
  });

  it('pages a search at its limit: a more marker, whose since reads on with no repeat and no gap', async () => {
    for (let k = 0; k < 3; k++) await appSays(containers[1]!, `page-marker ${k}`);
    const first = await logs('since=10m&grep=page-marker&limit=2');
    expect(first.status, first.text).toBe(200);
    expect(linesOf(first.rows).map((l) => l.text)).toEqual(['page-marker 0', 'page-marker 1']);
    const more = first.rows.at(-2) as { type: string; since: string };
    expect(more).toEqual({ type: 'more', since: expect.stringMatching(/\.\d{9}Z$/) });
    expect(first.rows.at(-1)).toEqual({ type: 'end' });
    const next = await logs(`since=${encodeURIComponent(more.since)}&grep=page-marker&limit=2`);
    expect(linesOf(next.rows).map((l) => l.text)).toEqual(['page-marker 2']);
    expect(next.rows.some((r) => 'type' in r && r.type === 'more')).toBe(false);
    const tooMany = await logs('since=10m&limit=5001');
    expect(tooMany.status).toBe(400);
    expect(tooMany.text).toContain('limit');
  });

  it('refuses a ten-year range, a bad time and an unsupported pattern with a 400 naming it', async () => {
    const wide = await logs('since=3650d');
    expect(wide.status).toBe(400);
    expect(wide.text).toContain('at most 31 days');
    const bad = await logs('since=yesterday');
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('since: an ISO 8601 time');
    const backref = await logs(`regex=true&grep=${encodeURIComponent('(a)\\1')}`);
    expect(backref.status).toBe(400);
    expect(backref.text).toContain('backreferences are not supported');
    const tail = await logs('tail=999999');
    expect(tail.status).toBe(400);
    const unknown = await fetch(`${api.url}/api/services/svc_nope/logs`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(unknown.status).toBe(404);
  });

  it('follows live over Server-Sent Events: a line the app writes after opening arrives', async () => {
    const controller = new AbortController();
    const res = await fetch(
      `${api.url}/api/services/${serviceId}/logs?follow=true&tail=0&grep=live-marker`,
      {
        headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
        signal: controller.signal,
      },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let received = '';
    const timer = setTimeout(() => controller.abort(), 20_000);
    // The follow opens its engine streams as the response starts: say it a few times.
    const saying = setInterval(
      () => void appSays(containers[1]!, 'live-marker 1').catch(() => undefined),
      300,
    );
    try {
      while (!received.includes('live-marker 1')) {
        const { value, done } = await reader.read();
        if (done) break;
        received += decoder.decode(value, { stream: true });
      }
    } finally {
      clearInterval(saying);
      clearTimeout(timer);
      controller.abort();
    }
    const event = received.split('\n\n').find((b) => b.includes('live-marker 1'))!;
    expect(event).toMatch(/^event: log\ndata: /);
    expect(JSON.parse(event.split('data: ')[1]!)).toMatchObject({
      replica: containers[1],
      node: 'local',
      stream: 'stdout',
      text: 'live-marker 1',
    });
  });

  it('prints them with the CLI: selfdevop logs SERVICE --since --grep', async () => {
    const r = await cli(['logs', 'web', '--since', '10m', '--grep', 'listening']);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout.trim().split('\n');
    expect(out).toHaveLength(2);
    expect(out[0]).toMatch(
      new RegExp(`^\\d{4}-.*Z  ${containers[0]}@local  app v1 listening on :8080`),
    );
    expect(out[1]).toContain(`${containers[1]}@local  app v2 listening`);
    const wide = await cli(['logs', 'web', '--since', '3650d']);
    expect(wide.code).not.toBe(0);
    expect(wide.stderr).toContain('at most 31 days');
  });

  it('shows them on the service page, with a search and a live tail', async () => {
    const page = async (q: string) => {
      const res = await fetch(`${api.url}/dashboard/services/${serviceId}?${q}`, {
        headers: { cookie: `sdo_session=${token}` },
      });
      expect(res.status).toBe(200);
      return res.text();
    };
    const all = await page('');
    expect(all).toContain('<h2 id="logs-h">Logs</h2>');
    expect(all).toContain(`${containers[1]}@local app v2 listening on :8080`);
    expect(all).toContain(
      `data-logs-live="/dashboard/services/${serviceId}/logs/events?environment=production"`,
    );
    const searched = await page('grep=status%3D500&logs_since=1h');
    expect(searched).toContain('GET /checkout status=500 took=12ms');
    expect(searched).not.toContain('app v2 listening');
    const refused = await page('grep=(a)%5C1&regex=1');
    expect(refused).toContain('backreferences are not supported');
    const live = await fetch(
      `${api.url}/dashboard/services/${serviceId}/logs/events?environment=production`,
      {
        headers: { cookie: `sdo_session=${token}` },
        signal: AbortSignal.timeout(5_000),
      },
    );
    expect(live.status).toBe(200);
    expect(live.headers.get('content-type')).toContain('text/event-stream');
    await live.body?.cancel();
  });
});
