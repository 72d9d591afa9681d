/**
 * Images without a shell on a real three-manager Swarm (issue 17; scripts/swarm-up.sh 7 8 9)
 * behind a real Caddy. The sealed environment's shim needs `/bin/sh` and `env`; an image
 * `FROM scratch` with one static binary has neither, so its environment goes into the
 * service spec (Swarm has no other way to hand it over) and the release's log says so. The
 * image: busybox, copied from the offline busybox image as `/httpd` (busybox runs the applet
 * its file is named after), serving `/health`, and `/cgi-bin/env`, a link to the same
 * binary that busybox runs as `env`: it prints the task's environment, so the test reads
 * back what the task was given. An image with a shell on the same Swarm still gets a secret.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UpstreamDnsServer } from '../../adapters/edge/upstream-dns.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { SwarmRuntime, envInSpecWarning, withSwarm } from '../../adapters/runtime/swarm.ts';
import type { Release } from '../../core/models.ts';
import {
  createRelease,
  handleReleaseRetire,
  handleReleaseStep,
  releaseRetireQueue,
  releaseStepsQueue,
  type ReleaseDeps,
} from '../../core/releases/engine.ts';
import { defaultHosts } from '../../core/releases/plan.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { ensureTestImages } from '../support/docker.ts';
import { releaseDepsBehindCaddy } from '../support/edge-release.ts';
import { available } from '../support/services.ts';
import {
  allMembersReady,
  cluster as target,
  copyImage,
  dk,
  managerHost,
  managerSocket as manager,
  memberEngines,
  swarmReady,
} from '../support/swarm.ts';
import { aNode, aProject, aService, anEnvironment, anOrg } from '../core/releases/builders.ts';
import { deployer, orgId } from '../core/releases/harness.ts';

const exec = promisify(execFile);
const memberHosts = Object.values(memberEngines);
const ready = (await swarmReady('the Swarm no-shell suite')) && (await available('caddy'));

/** One tag, built from the same inputs each run: the members keep it between runs. */
const noShellImage = 'selfdevop-test/noshell:v1';
const shellImage = 'selfdevop-test/app:v1';

/** FROM scratch: busybox as /httpd, a health file, and busybox again as the CGI `env`. */
async function buildNoShellImage(): Promise<void> {
  const ctx = await mkdtemp(path.join(tmpdir(), 'swarm-noshell-'));
  try {
    const from = await dk(null, 'create', 'selfdevop-test/busybox:base');
    try {
      await dk(null, 'cp', `${from}:/bin/busybox`, path.join(ctx, 'httpd'));
    } finally {
      await dk(null, 'rm', from);
    }
    await mkdir(path.join(ctx, 'www', 'cgi-bin'), { recursive: true });
    await writeFile(path.join(ctx, 'www', 'health'), 'ok\n');
    await symlink('/httpd', path.join(ctx, 'www', 'cgi-bin', 'env'));
    await writeFile(
      path.join(ctx, 'Dockerfile'),
      'FROM scratch\nCOPY httpd /httpd\nCOPY www /www\nCMD ["/httpd", "-f", "-p", "8080", "-h", "/www"]\n',
    );
    await exec('docker', ['build', '-q', '-t', noShellImage, ctx], {
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
      timeout: 120_000,
    });
  } finally {
    await rm(ctx, { recursive: true, force: true });
  }
}

/**
 * The raw answer of `GET path` at `hostPort`: busybox httpd sends a CGI's output after its
 * status line as is, and `env` prints no headers, which an HTTP client would refuse.
 */
function rawGet(hostPort: string, path: string): Promise<string> {
  const [host, port] = hostPort.split(':');
  return new Promise((resolve) => {
    const s = net.connect(Number(port), host!);
    let out = '';
    s.setTimeout(5000, () => s.destroy());
    s.on('connect', () => s.write(`GET ${path} HTTP/1.0\r\n\r\n`));
    s.on('data', (d) => (out += d.toString('utf8')));
    s.on('close', () => resolve(out));
    s.on('error', (e) => resolve(`error: ${e.message}`));
  });
}

/** GET through the edge with a Host header; a refused or cut request is data, not a throw. */
function get(port: number, host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = http.get(
      { host: '127.0.0.1', port, path, headers: { host }, agent: false, timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ status: 0, body: e.message }));
  });
}

interface ServiceView {
  Spec: {
    Labels: Record<string, string>;
    TaskTemplate: {
      ContainerSpec: {
        Env?: string[];
        Command?: string[];
        Secrets?: { SecretName: string }[];
      };
    };
  };
}

describe.skipIf(!ready)(
  'images without a shell on a real three-manager Swarm',
  { timeout: 300_000 },
  () => {
    const suffix = randomBytes(4).toString('hex');
    const docker = new Docker({ socketPath: manager });
    const value = `it's "${randomBytes(6).toString('hex')}" $HOME`;
    const noShell = aService({
      id: `svc_ns${suffix}`,
      name: 'noshell',
      image: noShellImage,
      replicas: 2,
      maxSurge: 2,
      env: { GREETING: value, 'dotted.name': 'x' },
      health: { intervalMs: 200, timeoutMs: 1000, successes: 2, deadlineMs: 30_000 },
      warmSeconds: 0,
      drainSeconds: 1,
    });
    const withShell = aService({
      id: `svc_sh${suffix}`,
      name: 'withshell',
      image: shellImage,
      replicas: 1,
      env: { GREETING: value },
      health: { intervalMs: 200, timeoutMs: 1000, successes: 2, deadlineMs: 30_000 },
      warmSeconds: 0,
      drainSeconds: 1,
    });
    const hostOf = (service: typeof noShell) =>
      defaultHosts({ service, environment: anEnvironment(), edgeDomain: 'apps.example.test' })[0]!;
    let caddy: TestCaddy;
    let dns: UpstreamDnsServer;
    let deps: ReleaseDeps;
    let stops: (() => Promise<void>)[] = [];

    beforeAll(async () => {
      await allMembersReady();
      await ensureTestImages();
      await buildNoShellImage();
      // Every member may run a task: each holds both images (the release names them by id).
      for (const host of memberHosts) {
        await copyImage(noShellImage, host);
        await copyImage(shellImage, host);
      }
      caddy = await startCaddy();
      ({ deps, dns } = await releaseDepsBehindCaddy(caddy, {
        runtime: withSwarm(new DockerRuntime(), new SwarmRuntime()),
      }));
      await deps.store.withOrg(orgId, async (r) => {
        await r.orgs.insert(anOrg());
        await r.projects.insert(aProject());
        await r.environments.insert(anEnvironment());
        await r.services.insert(noShell);
        await r.services.insert(withShell);
        await r.nodes.insert(
          aNode({
            id: 'node_swarm1',
            name: 'swarm-7-9',
            kind: 'swarm',
            dockerHost: managerHost,
            address: '10.213.0.17',
          }),
        );
      });
      stops = [
        await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps)),
        await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps)),
      ];
    }, 600_000);

    afterAll(async () => {
      for (const stop of stops) await stop();
      const swarm = new SwarmRuntime();
      for (const id of [noShell.id, withShell.id])
        for (const s of await swarm.list(target, { 'selfdevop.service': id }).catch(() => []))
          await swarm.remove(target, s.name).catch(() => undefined);
      await caddy?.stop();
      await dns?.close();
    });

    async function settle(id: string): Promise<Release> {
      for (let i = 0; i < 2400; i++) {
        const r = await deps.store.withOrg(orgId, async (x) => (await x.releases.get(id))!);
        if (r.status === 'completed' || r.status === 'failed') return r;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error(`release ${id} did not settle`);
    }

    const servicesOf = async (releaseId: string) =>
      (await docker.listServices({
        filters: { label: [`selfdevop.release=${releaseId}`] },
      })) as unknown as ServiceView[];
    const logOf = async (releaseId: string) =>
      (await deps.store.withOrg(orgId, (x) => x.releaseLogs.list(releaseId, 0, 500))).map(
        (l) => l.line,
      );

    it('deploys an image without /bin/sh: its environment in the service spec, said on the release log, read back by every task, healthy through Caddy', async () => {
      const { id } = await createRelease(deps, deployer, {
        serviceId: noShell.id,
        image: noShellImage,
      });
      const release = await settle(id);
      const lines = await logOf(id);
      expect(release.status, `${release.error ?? ''}\n${lines.join('\n')}`).toBe('completed');
      const because = 'the image has no /bin/sh nor env';
      expect(lines.filter((l) => l.startsWith('warning: '))).toEqual([
        `warning: ${envInSpecWarning(because)}`,
      ]);
      const services = await servicesOf(id);
      expect(services).toHaveLength(2);
      for (const s of services) {
        const spec = s.Spec.TaskTemplate.ContainerSpec;
        expect(spec.Env).toContain(`GREETING=${value}`);
        expect(spec.Env).toContain('dotted.name=x');
        expect(spec.Secrets ?? []).toEqual([]);
        // The image's own command, not the shim.
        expect(spec.Command ?? []).toEqual([]);
        expect(s.Spec.Labels['selfdevop.env-in-spec']).toBe(because);
      }
      // The look into the image left no container behind on the manager's engine.
      expect(
        await dk(
          managerHost,
          'ps',
          '-aq',
          '--filter',
          'label=selfdevop.probe=shell',
          '--filter',
          `ancestor=${noShellImage}`,
        ),
      ).toBe('');
      // No secret was made for it either.
      const secrets = (await docker.listSecrets({
        filters: { label: [`selfdevop.service=${noShell.id}`] },
      })) as unknown[];
      expect(secrets).toEqual([]);
      // Each task (one per member: the spread) was given the value as it is, nothing expanded.
      const upstreams = release.replicaSet!.replicas.map((r) => r.upstream!);
      expect(new Set(upstreams.map((u) => u.split(':')[0])).size).toBe(2);
      for (const u of upstreams) {
        const answer = await rawGet(u, '/cgi-bin/env');
        expect(answer.split(/\r?\n/), answer).toContain(`GREETING=${value}`);
      }
      const health = await get(caddy.httpPort, hostOf(noShell), '/health');
      expect(health).toEqual({ status: 200, body: 'ok\n' });
    });

    it('still seals the environment of an image with a shell on the same Swarm, and warns of nothing', async () => {
      const { id } = await createRelease(deps, deployer, {
        serviceId: withShell.id,
        image: shellImage,
      });
      const release = await settle(id);
      const lines = await logOf(id);
      expect(release.status, `${release.error ?? ''}\n${lines.join('\n')}`).toBe('completed');
      expect(lines.filter((l) => l.startsWith('warning: '))).toEqual([]);
      const [service] = await servicesOf(id);
      const spec = service!.Spec.TaskTemplate.ContainerSpec;
      expect(spec.Env ?? []).toEqual([]);
      expect(spec.Secrets).toHaveLength(1);
      expect(spec.Command?.slice(0, 2)).toEqual(['/bin/sh', '-c']);
      expect(JSON.stringify(service)).not.toContain(value);
      expect(service!.Spec.Labels['selfdevop.env-in-spec']).toBeUndefined();
      const answer = await get(caddy.httpPort, hostOf(withShell), '/env/GREETING');
      expect(answer).toEqual({ status: 200, body: value });
    });
  },
);
