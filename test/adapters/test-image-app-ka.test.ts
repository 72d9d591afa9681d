/**
 * selfdevop-test/app-ka (test-images/app-ka), the app bench:scale puts under load, on the
 * real engine: app:v1's contract (`/`, `/version`, `/health`, `/env/<NAME>`, the unhealthy
 * mode), every request of a client over one connection where busybox's app:v1 opens one per
 * request (why the bench moved to it), and a `docker stop` that closes an idle keep-alive
 * connection and exits 0 at once instead of waiting out the grace.
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureAppKaImage,
  ensureTestImages,
  removeContainersByLabel,
  testImages,
  testRun,
} from '../support/docker.ts';
import { available } from '../support/services.ts';

const hasDocker = await available('docker');
const sh = promisify(execFile);
const run = testRun(import.meta.url);

/** Starts `image` with its :8080 on a loopback port; resolves with the name and the port. */
async function start(image: string, env: Record<string, string> = {}) {
  const name = run.name('app');
  const labels = Object.entries(run.labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
  const envs = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  await sh('docker', [
    'run',
    '-d',
    '--name',
    name,
    ...labels,
    ...envs,
    '-p',
    '127.0.0.1::8080',
    image,
  ]);
  const { stdout } = await sh('docker', ['port', name, '8080/tcp']);
  const port = Number(/:(\d+)\s*$/m.exec(stdout)![1]);
  // Up once it answers (Node takes a moment to start; busybox is at once).
  for (let i = 0; i < 100; i++) {
    if ((await get(port, '/version').catch(() => null))?.status === 200) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { name, port };
}

function get(
  port: number,
  path: string,
  agent?: http.Agent,
): Promise<{ status: number; body: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, localPort: req.socket?.localPort ?? 0 }),
      );
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

/** The client ports `n` sequential requests over one keep-alive agent used. */
async function connectionsFor(port: number, n: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const ports = new Set<number>();
  try {
    for (let i = 0; i < n; i++) ports.add((await get(port, '/env/HOSTNAME', agent)).localPort);
  } finally {
    agent.destroy();
  }
  return ports.size;
}

describe.skipIf(!hasDocker)('the keep-alive test app (selfdevop-test/app-ka)', () => {
  beforeAll(async () => {
    await ensureAppKaImage();
    // app:v1 only for the comparison: the whole set is built just when it is missing.
    const has = await sh('docker', ['image', 'inspect', testImages.app]).then(
      () => true,
      () => false,
    );
    if (!has) await ensureTestImages();
  }, 180_000);
  afterAll(() => removeContainersByLabel(run.labels));

  it("serves app:v1's contract: version text, health, the environment", async () => {
    const { port } = await start(testImages.appKaV2, { GREETING: 'hello there' });
    expect(await get(port, '/')).toMatchObject({ status: 200, body: 'selfdevop-test app v2\n' });
    expect(await get(port, '/version')).toMatchObject({ status: 200, body: 'v2\n' });
    expect(await get(port, '/health')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await get(port, '/env/GREETING')).toMatchObject({ status: 200, body: 'hello there' });
    expect((await get(port, '/env/NOT_SET')).status).toBe(404);
    expect((await get(port, '/nothing-here')).status).toBe(404);
  }, 30_000);

  it('has no /health in the unhealthy mode, as the app', async () => {
    const { port } = await start(testImages.appKa, { APP_MODE: 'unhealthy' });
    expect((await get(port, '/health')).status).toBe(404);
    expect((await get(port, '/version')).body).toBe('v1\n');
  }, 30_000);

  it('answers every request of a client on one connection; busybox app:v1 opens one each', async () => {
    const ka = await start(testImages.appKa);
    const busybox = await start(testImages.app);
    expect(await connectionsFor(ka.port, 20)).toBe(1);
    expect(await connectionsFor(busybox.port, 20)).toBe(20);
  }, 30_000);

  it('stops at once on docker stop, closing an idle keep-alive connection', async () => {
    const { name, port } = await start(testImages.appKa);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    await get(port, '/health', agent);
    const idle = Object.values(agent.freeSockets).flat()[0]!;
    const closed = new Promise<void>((r) => idle.once('close', () => r()));
    const t0 = Date.now();
    // The grace is 10 s: an app that ignored SIGTERM or waited for the idle socket takes it all.
    await sh('docker', ['stop', '-t', '10', name]);
    expect(Date.now() - t0).toBeLessThan(5000);
    await closed;
    const { stdout } = await sh('docker', ['inspect', '-f', '{{.State.ExitCode}}', name]);
    expect(stdout.trim()).toBe('0');
    agent.destroy();
  }, 30_000);
});
