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

    it('drains and undrains members through Swarm from the API, the CLI and the dashboard, and refuses the last available member with a 409', async () => {
      const env = { SELFDEVOP_URL: api.url, SELFDEVOP_TOKEN: session };
      const availability = async () =>
        Object.fromEntries(
          (
            (await api.request('GET', `/api/nodes/${swarmId}/cluster`, { token: session })).body
              .members as { hostname: string; availability: string }[]
          ).map((m) => [m.hostname, m.availability]),
        );
      try {
        // API, by hostname.
        const drained = await api.request(
          'POST',
          `/api/nodes/${swarmId}/cluster/members/sdo-node8/drain`,
          { token: session },
        );
        expect(drained.status, drained.text).toBe(202);
        expect(drained.body.member.hostname).toBe('sdo-node8');
        expect(drained.body.member.availability).toBe('drain');
        expect(drained.body.leaving).toEqual([]);
        expect(await availability()).toEqual({
          'sdo-node7': 'active',
          'sdo-node8': 'drain',
          'sdo-node9': 'active',
        });
        // CLI, by hostname too.
        const cli = await runCli(['nodes', 'drain', 'swarm-7-9', '--member', 'sdo-node9'], {
          cwd: dir,
          env,
        });
        expect(cli.code, cli.stderr).toBe(0);
        expect(cli.stdout).toContain(
          'draining member sdo-node9 of swarm swarm-7-9 (availability drain)',
        );
        // The last member that takes tasks: a clear 409, through the API and the CLI.
        const last = await api.request(
          'POST',
          `/api/nodes/${swarmId}/cluster/members/sdo-node7/drain`,
          { token: session },
        );
        expect(last.status, last.text).toBe(409);
        expect(last.body.error.code).toBe('last_available_member');
        expect(last.body.error.message).toContain(
          'sdo-node7 is the last member of swarm swarm-7-9',
        );
        const lastCli = await runCli(['nodes', 'drain', 'swarm-7-9', '--member', 'sdo-node7'], {
          cwd: dir,
          env,
        });
        expect(lastCli.code).not.toBe(0);
        expect(lastCli.stderr).toContain('is the last member of swarm swarm-7-9');
        expect((await availability())['sdo-node7']).toBe('active');
        // The dashboard shows each member's availability and offers the other action.
        const page = await (
          await fetch(`${api.url}/dashboard/nodes/${swarmId}`, { headers: { cookie } })
        ).text();
        const memberId = (
          (await api.request('GET', `/api/nodes/${swarmId}/cluster`, { token: session })).body
            .members as { id: string; hostname: string }[]
        ).find((m) => m.hostname === 'sdo-node9')!.id;
        expect(page).toContain(`action="/dashboard/nodes/${swarmId}/members/${memberId}/undrain"`);
        expect(page).toContain('Undrain sdo-node9');
        expect(page).toContain('Drain sdo-node7');
        // Undrain from the dashboard (a form post), then from the CLI.
        const posted = await fetch(
          `${api.url}/dashboard/nodes/${swarmId}/members/${memberId}/undrain`,
          {
            method: 'POST',
            headers: {
              cookie,
              origin: api.url,
              'content-type': 'application/x-www-form-urlencoded',
            },
            body: '',
            redirect: 'manual',
          },
        );
        expect(posted.status).toBe(303);
        expect((await availability())['sdo-node9']).toBe('active');
        const undrained = await runCli(['nodes', 'undrain', 'swarm-7-9', '--member', 'sdo-node8'], {
          cwd: dir,
          env,
        });
        expect(undrained.code, undrained.stderr).toBe(0);
        expect(undrained.stdout).toContain('member sdo-node8 of swarm swarm-7-9 takes tasks again');
        expect(await availability()).toEqual({
          'sdo-node7': 'active',
          'sdo-node8': 'active',
          'sdo-node9': 'active',
        });
        // Each is in the audit trail.
        for (const [action, count] of [
          ['node.member_drained', 2],
          ['node.member_undrained', 2],
        ] as const) {
          const audit = await api.request('GET', `/api/audit-events?action=${action}`, {
            token: session,
          });
          expect(audit.status, audit.text).toBe(200);
          expect(audit.body.items, action).toHaveLength(count);
        }
      } finally {
        for (const m of ['sdo-node7', 'sdo-node8', 'sdo-node9'])
          await api.request('POST', `/api/nodes/${swarmId}/cluster/members/${m}/undrain`, {
            token: session,
          });
      }
    });

    it('answers a member it does not know with a 404, and an engine with node_not_swarm', async () => {
      const unknown = await api.request(
        'POST',
        `/api/nodes/${swarmId}/cluster/members/no-such-member/drain`,
        { token: session },
      );
      expect(unknown.status, unknown.text).toBe(404);
      expect(unknown.body.error.code).toBe('cluster_member_not_found');
      expect(unknown.body.error.message).toContain('no-such-member');
      const engine = (await api.request('GET', '/api/nodes', { token: session })).body.items.find(
        (n: { name: string }) => n.name === 'local',
      );
      const notSwarm = await api.request(
        'POST',
        `/api/nodes/${engine.id}/cluster/members/sdo-node8/drain`,
        { token: session },
      );
      expect(notSwarm.status).toBe(409);
      expect(notSwarm.body.error.code).toBe('node_not_swarm');
    });
  },
);
