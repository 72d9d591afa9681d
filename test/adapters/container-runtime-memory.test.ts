import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../adapters/clock/manual.ts';
import { MemoryRuntime } from '../../adapters/runtime/memory.ts';
import { Unavailable } from '../../core/errors.ts';
import type { ContainerSpec } from '../../core/ports.ts';
import { runContainerRuntimeContract } from '../contracts/container-runtime.case.ts';
import { testImages, unreachableTargets } from '../support/docker.ts';

describe('MemoryRuntime contract', () => {
  runContainerRuntimeContract({
    images: testImages,
    make: async () => {
      const runtime = MemoryRuntime.withTestImages();
      for (const t of unreachableTargets) runtime.setReachable(t.dockerHost, false);
      let n = 0;
      return {
        runtime,
        target: { dockerHost: 'unix:///var/run/docker.sock' },
        unreachable: unreachableTargets,
        httpGet: async (published, path) => runtime.httpGet(published, path),
        labels: { 'selfdevop.test': 'memory' },
        name: (what) => `memory-${what}-${++n}`,
        cleanup: async () => undefined,
      };
    },
  });
});

describe('MemoryRuntime knobs', () => {
  const node = { dockerHost: 'unix:///var/run/docker.sock' };
  const other = { dockerHost: 'tcp://10.0.0.2:2376' };
  const spec = (name: string, patch: Partial<ContainerSpec> = {}): ContainerSpec => ({
    name,
    image: testImages.app,
    env: {},
    labels: {},
    containerPort: 8080,
    restartPolicy: 'no',
    ...patch,
  });

  it('fails the next calls of a method with the injected error, then recovers', async () => {
    const runtime = MemoryRuntime.withTestImages();
    const boom = new Unavailable('docker', `${node.dockerHost}: engine restarting`);
    runtime.failNext('start', boom, 2);
    await expect(runtime.start(node, spec('a'))).rejects.toBe(boom);
    await expect(runtime.start(node, spec('a'))).rejects.toBe(boom);
    expect((await runtime.start(node, spec('a'))).state).toBe('running');
    await expect(runtime.inspect(node, 'a')).resolves.not.toBeNull();
  });

  it('takes a node offline and back', async () => {
    const runtime = MemoryRuntime.withTestImages().setReachable(
      other.dockerHost,
      false,
      'connect EHOSTUNREACH 10.0.0.2:2376',
    );
    await expect(runtime.ping(other)).rejects.toThrow(
      'docker is unavailable: tcp://10.0.0.2:2376: connect EHOSTUNREACH 10.0.0.2:2376',
    );
    await runtime.ping(node);
    runtime.setReachable(other.dockerHost, true);
    await runtime.ping(other);
  });

  it('records every call in order', async () => {
    const runtime = MemoryRuntime.withTestImages();
    await runtime.resolveImage(node, testImages.app);
    await runtime.start(other, spec('web'));
    await runtime.list(other, { a: 'b' });
    expect(runtime.calls).toEqual([
      { method: 'resolveImage', dockerHost: node.dockerHost, subject: testImages.app },
      { method: 'start', dockerHost: other.dockerHost, subject: 'web' },
      { method: 'list', dockerHost: other.dockerHost, subject: '{"a":"b"}' },
    ]);
  });

  it('keeps each node its own containers, with deterministic published ports', async () => {
    const runtime = MemoryRuntime.withTestImages({ firstPort: 45000 });
    const a = await runtime.start(node, spec('web'));
    const b = await runtime.start(other, spec('web', { publishIp: '10.0.0.2' }));
    expect(a.id).not.toBe(b.id);
    expect([a.published, b.published]).toEqual(['127.0.0.1:45000', '10.0.0.2:45001']);
    expect(runtime.containers(other).map((c) => c.spec.name)).toEqual(['web']);
    expect(runtime.containers()).toHaveLength(2);
    expect(runtime.container(node, 'web')?.spec.env).toEqual({});
  });

  it('becomes healthy after the image delay, on the clock it was given', async () => {
    const clock = new ManualClock();
    const runtime = MemoryRuntime.withTestImages({ clock });
    const info = await runtime.start(node, spec('slow', { image: testImages.slow }));
    expect(runtime.httpGet(info.published!, '/health')?.status).toBe(404);
    clock.advance(2999);
    expect(runtime.httpGet(info.published!, '/health')?.status).toBe(404);
    clock.advance(1);
    expect(runtime.httpGet(info.published!, '/health')).toEqual({ status: 200, body: 'ok\n' });
  });

  it('turns one container unhealthy, or crashes it', async () => {
    const runtime = MemoryRuntime.withTestImages();
    const info = await runtime.start(node, spec('web', { env: { APP_VERSION: 'v9' } }));
    expect(runtime.httpGet(info.published!, '/')?.body).toBe('selfdevop-test app v9\n');
    runtime.setHealthy(node.dockerHost, 'web', false);
    expect(runtime.httpGet(info.published!, '/health')?.status).toBe(404);
    runtime.crash(node.dockerHost, 'web', 137);
    expect(await runtime.inspect(node, 'web')).toMatchObject({ state: 'exited', published: null });
    expect(runtime.container(node, 'web')?.exitCode).toBe(137);
    expect(runtime.httpGet(info.published!, '/')).toBeNull();
    expect(() => runtime.crash(node.dockerHost, 'nope')).toThrow('container nope not found');
  });

  it('runs one-offs for their planned duration on the clock, timing out when longer', async () => {
    const clock = new ManualClock('2026-01-01T00:00:00.000Z');
    const runtime = new MemoryRuntime({ clock }).addImage('acme/api:1', {
      oneOffs: { 'npm run migrate': { exitCode: 0, lines: ['ok'], durationMs: 500 } },
      defaultOneOff: { exitCode: 2, lines: ['unknown command'] },
    });
    const once = (cmd: string[], timeoutMs: number) =>
      runtime.runOnce(node, spec('m', { image: 'acme/api:1', cmd }), timeoutMs);
    expect(await once(['npm', 'run', 'migrate'], 1000)).toEqual({
      exitCode: 0,
      timedOut: false,
      output: 'ok',
    });
    expect(clock.now().toISOString()).toBe('2026-01-01T00:00:00.500Z');
    expect(await once(['npm', 'run', 'migrate'], 200)).toEqual({
      exitCode: null,
      timedOut: true,
      output: 'ok',
    });
    expect(clock.now().toISOString()).toBe('2026-01-01T00:00:00.700Z');
    expect(await once(['other'], 1000)).toEqual({
      exitCode: 2,
      timedOut: false,
      output: 'unknown command',
    });
  });

  it('answers with a custom responder and a fixed digest, by name or digest', async () => {
    const runtime = new MemoryRuntime().addImage('acme/api:1', {
      digest: `sha256:${'ab'.repeat(32)}`,
      healthPath: '/ready',
      respond: (path) =>
        path === '/teapot' ? { status: 418, body: 'short and stout' } : undefined,
    });
    expect(await runtime.resolveImage(node, 'acme/api:1')).toBe(`sha256:${'ab'.repeat(32)}`);
    const info = await runtime.start(node, spec('api', { image: `sha256:${'ab'.repeat(32)}` }));
    expect(runtime.httpGet(info.published!, '/teapot')).toEqual({
      status: 418,
      body: 'short and stout',
    });
    expect(runtime.httpGet(info.published!, '/ready')?.status).toBe(200);
    expect(runtime.httpGet(info.published!, '/health')?.status).toBe(404);
    expect(runtime.httpGet(info.published!, '/')?.body).toBe('selfdevop-test app 1\n');
  });

  it('forgets a removed image', async () => {
    const runtime = MemoryRuntime.withTestImages().removeImage(testImages.app);
    await expect(runtime.resolveImage(node, testImages.app)).rejects.toThrow(
      `image ${testImages.app} not found on node and could not be pulled`,
    );
  });

  it('hands emitted lines to followers and ends them when the container goes', async () => {
    const runtime = MemoryRuntime.withTestImages();
    await runtime.start(node, spec('web'));
    const seen: string[] = [];
    const following = runtime.followLogs(
      node,
      'web',
      (line, stream) => seen.push(`${stream}: ${line}`),
      new AbortController().signal,
    );
    runtime.emitLog(node.dockerHost, 'web', 'GET / 200');
    runtime.emitLog(node.dockerHost, 'web', 'oops', 'stderr');
    await runtime.remove(node, 'web');
    await following;
    expect(seen).toEqual([
      'stdout: app v1 listening on :8080 (mode normal)',
      'stdout: GET / 200',
      'stderr: oops',
    ]);
  });
});
