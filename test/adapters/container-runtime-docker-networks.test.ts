/**
 * The Docker adapter's network, volume and entrypoint options on the real engine: a
 * container on a user-defined network (made on first use) is reachable by name from
 * another on that network and from nowhere else, a named volume outlives its container
 * until removeVolume, and removing a volume twice is fine. An internal network (a restore
 * drill's own) reaches its members by name and nothing outside the node; removeNetwork
 * removes it, twice is fine.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import type { ContainerSpec } from '../../core/ports.ts';
import {
  dockerTarget,
  ensureTestImages,
  removeContainersByLabel,
  testImages,
  testRun,
} from '../support/docker.ts';
import { available } from '../support/services.ts';

const ready = await available('docker');
const docker = (...args: string[]) =>
  promisify(execFile)('docker', args, { timeout: 30_000 }).then((r) => r.stdout.trim());

describe.skipIf(!ready)('DockerRuntime networks, volumes and entrypoints', () => {
  const run = testRun(import.meta.url);
  const runtime = new DockerRuntime();
  const network = `sdo-test-net-${run.id}`;
  const volume = `sdo-test-vol-${run.id}`;
  const drillNet = `sdo-test-drill-${run.id}`;

  beforeAll(() => ensureTestImages(), 180_000);
  afterAll(async () => {
    await removeContainersByLabel(run.labels);
    await docker('volume', 'rm', '-f', volume).catch(() => undefined);
    await docker('network', 'rm', network).catch(() => undefined);
    await docker('network', 'rm', drillNet).catch(() => undefined);
  });

  const oneOff = (sh: string, net?: string): ContainerSpec => ({
    name: run.name('client'),
    image: testImages.app,
    env: {},
    labels: run.labels,
    entrypoint: ['sh', '-c', sh],
    restartPolicy: 'no',
    ...(net ? { network: net } : {}),
  });

  it('joins a network made on first use, reachable by name only on it, data on a named volume', async () => {
    const name = run.name('server');
    const server = await runtime.start(dockerTarget, {
      name,
      image: testImages.app,
      env: {},
      labels: run.labels,
      restartPolicy: 'no',
      network,
      volumes: [`${volume}:/data`],
      // The entrypoint replaces the app: write to the volume, then serve it.
      entrypoint: ['sh', '-c', 'echo kept > /data/marker && exec httpd -f -p 8080 -h /data'],
    });
    expect(server.state).toBe('running');
    expect(server.published).toBeNull();
    expect(await docker('network', 'inspect', '-f', '{{.Driver}}', network)).toBe('bridge');
    const inside = await runtime.runOnce(
      dockerTarget,
      oneOff(`wget -q -O - http://${name}:8080/marker`, network),
      20_000,
    );
    expect([inside.exitCode, inside.output.trim()]).toEqual([0, 'kept']);
    const outside = await runtime.runOnce(
      dockerTarget,
      oneOff(`wget -q -T 3 -O - http://${name}:8080/marker`),
      20_000,
    );
    expect(outside.exitCode).not.toBe(0);

    await runtime.remove(dockerTarget, name);
    // The named volume outlives its container (remove drops anonymous volumes only).
    expect(await docker('volume', 'ls', '-q', '--filter', `name=^${volume}$`)).toBe(volume);
    await runtime.removeVolume(dockerTarget, volume);
    expect(await docker('volume', 'ls', '-q', '--filter', `name=^${volume}$`)).toBe('');
    await expect(runtime.removeVolume(dockerTarget, volume)).resolves.toBeUndefined();
  }, 90_000);

  it('makes an internal network when asked (no route out, the engine says), members reach each other by name', async () => {
    const name = run.name('ds'); // a host name: one DNS label, at most 63
    await runtime.start(dockerTarget, {
      name,
      image: testImages.app,
      env: {},
      labels: run.labels,
      restartPolicy: 'no',
      network: drillNet,
      internalNetwork: true,
    });
    expect(await docker('network', 'inspect', '-f', '{{.Internal}}', drillNet)).toBe('true');
    // Node (dynamic glibc) as the client: static busybox crashes resolving names on an
    // internal network, whose embedded DNS answers nothing from outside.
    const member = await runtime.runOnce(
      dockerTarget,
      {
        ...oneOff('', drillNet),
        image: 'selfdevop-test/node:base',
        entrypoint: [
          'node',
          '-e',
          `require('node:http').get('http://${name}:8080/version', (r) => r.pipe(process.stdout))`,
        ],
        internalNetwork: true,
      },
      30_000,
    );
    expect([member.exitCode, member.output.trim()]).toEqual([0, 'v1']);
    await runtime.remove(dockerTarget, name);
    await runtime.removeNetwork(dockerTarget, drillNet);
    expect(await docker('network', 'ls', '-q', '--filter', `name=^${drillNet}$`)).toBe('');
    await expect(runtime.removeNetwork(dockerTarget, drillNet)).resolves.toBeUndefined();
  }, 90_000);
});
