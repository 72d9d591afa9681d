/**
 * A Swarm cluster as a target, through the real self-hosted API (PostgreSQL, migration
 * 0034), the CLI and the dashboard: a manager of the three-manager Swarm on nodes 7-9
 * (scripts/swarm-up.sh 7 8 9) is registered as a node of kind swarm, and its members,
 * roles, availability and labels are read from it; what is not a swarm, or does not
 * answer, is said so.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SwarmRuntime } from '../../adapters/runtime/swarm.ts';
import { startSelfhostApi } from '../support/api.ts';
import { runCli } from '../support/cli.ts';
import { isCi } from '../support/services.ts';

const manager = '/run/sdo-node7/docker.sock';

async function swarmAbsence(): Promise<string | null> {
  if (!existsSync(manager)) return `no engine at ${manager}`;
  try {
    const members = await new SwarmRuntime().members({
      dockerHost: `unix://${manager}`,
      swarm: true,
    });
    return members.length === 3 ? null : `${members.length} members, not 3`;
  } catch (e) {
    return (e as Error).message;
  }
}
const absent = await swarmAbsence();
if (absent) {
  const why = `the Swarm on nodes 7-9 is not up (${absent}): run ../shared/ci/multi-node.sh up 9, then bash scripts/swarm-up.sh 7 8 9`;
  if (isCi) throw new Error(`CI must not skip: ${why}`);
  console.warn(`\n*** SKIPPING Swarm cluster suites: ${why} ***\n`);
}

describe.skipIf(absent !== null)(
  'a Swarm cluster as a node: API, CLI and dashboard',
  // Generous: a shared two-core machine; these wait on a real cluster, never on a timing.
  { timeout: 180_000 },
  () => {
    let api: Awaited<ReturnType<typeof startSelfhostApi>>;
    let session: string;
    let cookie: string;
    let dir: string;
    let swarmId: string;

    beforeAll(async () => {
      api = await startSelfhostApi();
      // The install's first account is its operator: it may register local sockets.
      const signup = await fetch(`${api.url}/dashboard/signup`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: api.url },
        body: new URLSearchParams({
          email: 'swarm@example.com',
          password: 'correct horse battery',
          next: '/dashboard/nodes',
        }),
        redirect: 'manual',
      });
      const cookies = signup.headers.getSetCookie();
      cookie = cookies.map((c) => c.split(';')[0]).join('; ');
      session = /sdo_session=([^;]+)/.exec(cookie)![1]!;
      dir = await mkdtemp(join(tmpdir(), 'sdo-swarm-cli-'));
    }, 120_000);

    afterAll(async () => {
      await api?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('registers a manager as a node of kind swarm and reads its members from it', async () => {
      const created = await api.request('POST', '/api/nodes', {
        token: session,
        body: {
          name: 'swarm-7-9',
          kind: 'swarm',
          dockerHost: `unix://${manager}`,
          address: '10.213.0.17',
        },
      });
      expect(created.status, created.text).toBe(201);
      expect(created.body.kind).toBe('swarm');
      swarmId = created.body.id;
      const listed = await api.request('GET', '/api/nodes', { token: session });
      expect(listed.body.items.map((n: { kind: string }) => n.kind)).toEqual(['swarm']);
      const cluster = await api.request('GET', `/api/nodes/${swarmId}/cluster`, { token: session });
      expect(cluster.status, cluster.text).toBe(200);
      expect(cluster.body.available).toBe(true);
      expect(
        cluster.body.members.map((m: { hostname: string; address: string; role: string }) => [
          m.hostname,
          m.address,
          m.role,
        ]),
      ).toEqual([
        ['sdo-node7', '10.213.0.17', 'manager'],
        ['sdo-node8', '10.213.0.18', 'manager'],
        ['sdo-node9', '10.213.0.19', 'manager'],
      ]);
      expect(cluster.body.members.filter((m: { leader: boolean }) => m.leader)).toHaveLength(1);
    });

    it('refuses an unknown kind with a 400 naming the field', async () => {
      const bad = await api.request('POST', '/api/nodes', {
        token: session,
        body: {
          name: 'k8s',
          kind: 'kubernetes',
          dockerHost: `unix://${manager}`,
          address: '10.213.0.17',
        },
      });
      expect(bad.status).toBe(400);
      expect(bad.text).toContain('kind');
    });

    it('answers 409 node_not_swarm for an engine, and the reason for a manager that does not answer', async () => {
      const engine = await api.request('POST', '/api/nodes', {
        token: session,
        body: { name: 'local', dockerHost: 'unix:///var/run/docker.sock', address: '127.0.0.1' },
      });
      expect(engine.status, engine.text).toBe(201);
      expect(engine.body.kind).toBe('engine');
      const notSwarm = await api.request('GET', `/api/nodes/${engine.body.id}/cluster`, {
        token: session,
      });
      expect(notSwarm.status).toBe(409);
      expect(notSwarm.body.error.code).toBe('node_not_swarm');
      const gone = await api.request('POST', '/api/nodes', {
        token: session,
        body: {
          name: 'gone',
          kind: 'swarm',
          dockerHost: 'unix:///run/sdo-no-such-node/docker.sock',
          address: '10.213.0.17',
        },
      });
      expect(gone.status, gone.text).toBe(201);
      const down = await api.request('GET', `/api/nodes/${gone.body.id}/cluster`, {
        token: session,
      });
      expect(down.status).toBe(200);
      expect(down.body.available).toBe(false);
      expect(down.body.reason).toContain('unix:///run/sdo-no-such-node/docker.sock did not answer');
    });

    it('lists the members with the CLI', async () => {
      const env = { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: session };
      const run = await runCli(['nodes', 'cluster', 'swarm-7-9'], { cwd: dir, env });
      expect(run.code, run.stderr).toBe(0);
      const lines = run.stdout.trim().split('\n');
      expect(lines[0]).toMatch(/^HOSTNAME\s+ADDRESS\s+ROLE\s+AVAILABILITY\s+STATE\s+LABELS\s+ID$/);
      expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2))).toEqual([
        ['sdo-node7', '10.213.0.17'],
        ['sdo-node8', '10.213.0.18'],
        ['sdo-node9', '10.213.0.19'],
      ]);
      expect(run.stdout).toContain('manager (leader)');
      const list = await runCli(['nodes'], { cwd: dir, env });
      expect(list.stdout).toMatch(
        /swarm-7-9\s+swarm\s+active\s+(unknown|reachable|lost)\s+\S+\s+unix:\/\/\/run\/sdo-node7/,
      );
      const added = await runCli(
        [
          'nodes',
          'add',
          'swarm-cli',
          '--swarm',
          '--docker-host',
          `unix://${manager}`,
          '--address',
          '10.213.0.17',
        ],
        { cwd: dir, env },
      );
      expect(added.code, added.stderr).toBe(0);
      expect(added.stdout).toMatch(/^added swarm swarm-cli \(node_/);
      const viaCli = await runCli(['nodes', 'cluster', 'swarm-cli', '--json'], { cwd: dir, env });
      expect(viaCli.code, viaCli.stderr).toBe(0);
      expect((JSON.parse(viaCli.stdout) as { members: unknown[] }).members).toHaveLength(3);
      const engine = await runCli(['nodes', 'cluster', 'local'], { cwd: dir, env });
      expect(engine.code).toBe(1);
      expect(engine.stderr).toContain('is a Docker Engine, not a Swarm cluster');
    });

    it("shows the members on the node's dashboard page", async () => {
      const page = await fetch(`${api.url}/dashboard/nodes/${swarmId}`, { headers: { cookie } });
      expect(page.status).toBe(200);
      const html = await page.text();
      expect(html).toContain('Swarm cluster, reached through this manager');
      expect(html).toContain('<h2 id="cluster">Swarm members</h2>');
      for (const member of ['sdo-node7', 'sdo-node8', 'sdo-node9']) expect(html).toContain(member);
    });
  },
);
