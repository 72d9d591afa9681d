/**
 * Releases as Swarm services on a real three-manager Swarm (scripts/swarm-up.sh 7 8 9:
 * multi-node engines 7-9 in their own network namespaces at 10.213.0.17-19) behind a real
 * Caddy with dynamic upstreams: deploy three replicas, switch to v2 under a bounded load,
 * roll back, and a failing candidate that leaves the serving set as it was. No routing
 * mesh (this kernel has no IPVS): the edge reaches each task at its member's host-mode
 * port. Bounded loops, no timing asserts.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type UpstreamDnsServer } from '../../adapters/edge/upstream-dns.ts';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import { SwarmRuntime, withSwarm } from '../../adapters/runtime/swarm.ts';
import type { Release } from '../../core/models.ts';
import {
  createRelease,
  handleReleaseRetire,
  handleReleaseStep,
  releaseRetireQueue,
  releaseStepsQueue,
  type ReleaseDeps,
} from '../../core/releases/engine.ts';
import { NodeChecker } from '../../core/nodes/checks.ts';
import { drainClusterMember, undrainClusterMember } from '../../core/nodes/cluster.ts';
import { defaultHosts, routeId } from '../../core/releases/plan.ts';
import { rollbackRelease } from '../../core/releases/rollback.ts';
import { startCaddy, type TestCaddy } from '../support/caddy.ts';
import { available, isCi } from '../support/services.ts';
import { aNode, aProject, aService, anEnvironment, anOrg } from '../core/releases/builders.ts';
import { deployer, orgId } from '../core/releases/harness.ts';

/** An admin of the test org: drains members (manage-nodes). */
const admin = { ...deployer, role: 'admin' as const };
import { releaseDepsBehindCaddy } from '../support/edge-release.ts';

const manager = '/run/sdo-node7/docker.sock';
const memberAddresses = ['10.213.0.17', '10.213.0.18', '10.213.0.19'];
const target = { dockerHost: `unix://${manager}`, swarm: true };
const script = fileURLToPath(new URL('../../../shared/ci/multi-node.sh', import.meta.url));
const multiNode = (...args: string[]) =>
  promisify(execFile)('bash', [script, ...args], { timeout: 60_000 });
/** A member's power back (a cold boot of its engine; slower than a thaw on a loaded machine). */
const powerOn = (index: string) =>
  promisify(execFile)('bash', [script, 'start', index], { timeout: 180_000 });

interface MemberNode {
  ID: string;
  Description?: { Hostname?: string };
  Spec?: { Availability?: string; Labels?: Record<string, string> };
  Status?: { State?: string; Message?: string; Addr?: string };
  ManagerStatus?: { Leader?: boolean; Reachability?: string };
}

/**
 * Each member as the manager sees it, for failure messages: a member that is not ready
 * (missed heartbeats under load, a leader change) explains a stalled stop or a placement
 * no member takes, and the next CI failure says so.
 */
async function memberStates(docker: Docker): Promise<string> {
  try {
    const nodes = (await docker.listNodes()) as MemberNode[];
    return nodes
      .map(
        (n) =>
          `${n.Description?.Hostname ?? n.ID} ${n.Status?.State ?? '?'}/${n.Spec?.Availability ?? '?'}` +
          ` ${n.ManagerStatus?.Leader ? 'leader' : (n.ManagerStatus?.Reachability ?? 'worker')}` +
          (n.Status?.Message ? ` (${n.Status.Message})` : ''),
      )
      .sort()
      .join('; ');
  } catch (e) {
    return `members unreadable: ${(e as Error).message}`;
  }
}

/**
 * Waits (bounded) until all three members are ready and active: a member that missed its
 * heartbeats on a loaded machine is back within seconds, and the spread and placement
 * tests need every member. Throws with the members' states when they do not come back.
 */
async function allMembersReady(docker: Docker, deadlineMs = 90_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const nodes = ((await docker.listNodes().catch(() => [])) as MemberNode[]).filter(
      (n) => n.Status?.State === 'ready' && n.Spec?.Availability === 'active',
    );
    if (nodes.length === 3) return;
    if (Date.now() > end)
      throw new Error(
        `the Swarm's members are not all ready after ${deadlineMs} ms: ${await memberStates(docker)}`,
      );
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** Why the Swarm is not usable here, or null when three managers answer and are ready. */
async function swarmAbsence(): Promise<string | null> {
  if (!existsSync(manager)) return `no engine at ${manager}`;
  try {
    const members = await new SwarmRuntime().members(target);
    const ready = members.filter(
      (m) => m.role === 'manager' && m.state === 'ready' && memberAddresses.includes(m.address),
    );
    return ready.length === 3 ? null : `${ready.length} of 3 managers ready`;
  } catch (e) {
    return (e as Error).message;
  }
}
const absent = await swarmAbsence();
if (absent) {
  const why = `the Swarm on nodes 7-9 is not up (${absent}): run ../shared/ci/multi-node.sh up 9 with MN_IMAGES, then bash scripts/swarm-up.sh 7 8 9`;
  if (isCi) throw new Error(`CI must not skip: ${why}`);
  console.warn(`\n*** SKIPPING Swarm suites: ${why} ***\n`);
}
const ready = !absent && (await available('caddy'));

/** GET through the edge with a Host header; a refused or cut request is data, not a throw. */
function get(port: number, host: string, path = '/'): Promise<{ status: number; body: string }> {
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

describe.skipIf(!ready)(
  'releases as Swarm services on a real three-manager Swarm',
  // Generous: a shared two-core machine; these wait on a real cluster, never on a timing.
  { timeout: 180_000 },
  () => {
    const serviceId = `svc_${randomBytes(4).toString('hex')}`;
    const docker = new Docker({ socketPath: manager });
    let caddy: TestCaddy;
    let dns: UpstreamDnsServer;
    let deps: ReleaseDeps;
    let host: string;
    let stops: (() => Promise<void>)[] = [];

    beforeAll(async () => {
      await allMembersReady(docker);
      caddy = await startCaddy();
      ({ deps, dns } = await releaseDepsBehindCaddy(caddy, {
        runtime: withSwarm(new DockerRuntime(), new SwarmRuntime()),
        migrationTimeoutMs: 60_000,
      }));
      const service = aService({
        id: serviceId,
        image: 'selfdevop-test/app:v1',
        replicas: 3,
        maxSurge: 3,
        health: { intervalMs: 200, timeoutMs: 1000, successes: 2, deadlineMs: 15_000 },
        // The old set stays warm a little after a switch, then retires.
        warmSeconds: 2,
        drainSeconds: 1,
        migrateCommand: 'echo migrating on the swarm',
      });
      host = defaultHosts({
        service,
        environment: anEnvironment(),
        edgeDomain: 'apps.example.test',
      })[0]!;
      await deps.store.withOrg(orgId, async (r) => {
        await r.orgs.insert(anOrg());
        await r.projects.insert(aProject());
        await r.environments.insert(anEnvironment());
        await r.services.insert(service);
        await r.nodes.insert(
          aNode({
            id: 'node_swarm1',
            name: 'swarm-7-9',
            kind: 'swarm',
            dockerHost: `unix://${manager}`,
            address: '10.213.0.17',
          }),
        );
      });
      stops = [
        await deps.queue.consume(releaseStepsQueue, handleReleaseStep(deps)),
        await deps.queue.consume(releaseRetireQueue, handleReleaseRetire(deps)),
      ];
    }, 180_000);

    afterAll(async () => {
      for (const stop of stops) await stop();
      const swarm = new SwarmRuntime();
      for (const s of await swarm.list(target, { 'selfdevop.service': serviceId }).catch(() => []))
        await swarm.remove(target, s.name).catch(() => undefined);
      await caddy?.stop();
      await dns?.close();
    });

    const release = (id: string) =>
      deps.store.withOrg(orgId, async (x) => (await x.releases.get(id))!);

    async function settle(id: string): Promise<Release> {
      for (let i = 0; i < 2400; i++) {
        const r = await release(id);
        if (r.status === 'completed' || r.status === 'failed') return r;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error(`release ${id} did not settle`);
    }

    /** Requests in a loop until `done` says so (at most `max`), counting answers by body. */
    async function load(done: () => Promise<boolean>, max = 3000, path = '/env/APP_VERSION') {
      const seen = new Map<string, number>();
      let failed = 0;
      let sent = 0;
      while (sent < max) {
        const r = await get(caddy.httpPort, host, path);
        sent++;
        if (r.status === 200) seen.set(r.body, (seen.get(r.body) ?? 0) + 1);
        else {
          failed++;
          console.warn(`failed request: ${r.status} ${r.body.slice(0, 200)}`);
        }
        if (sent % 10 === 0 && (await done())) break;
      }
      return { seen, failed, sent };
    }

    /** Each service's tasks (state, desired state, member), for failure messages. */
    async function tasksSaid(serviceIds: string[]): Promise<string> {
      const nodes = (await docker.listNodes().catch(() => [])) as MemberNode[];
      const hostOf = (id?: string) =>
        nodes.find((n) => n.ID === id)?.Description?.Hostname ?? id ?? 'unplaced';
      const said: string[] = [];
      for (const service of serviceIds) {
        const tasks = (await docker
          .listTasks({ filters: { service: [service] } })
          .catch(() => [])) as {
          ServiceID: string;
          NodeID?: string;
          DesiredState?: string;
          Status?: { State?: string; Err?: string };
        }[];
        for (const t of tasks.filter((x) => x.ServiceID === service))
          said.push(
            `${service.slice(0, 8)} ${t.Status?.State}->${t.DesiredState} on ${hostOf(t.NodeID)}${t.Status?.Err ? ` (${t.Status.Err})` : ''}`,
          );
      }
      return said.join(', ') || 'no tasks';
    }

    /** The Swarm services of one release, as the manager has them. */
    const servicesOf = async (releaseId: string) =>
      docker.listServices({ filters: { label: [`selfdevop.release=${releaseId}`] } });

    let v1: Release;
    let v2: Release;

    it('reads the three managers of the cluster, their addresses and availability', async () => {
      const members = await deps.runtime.clusterMembers!(target);
      expect(members.map((m) => [m.hostname, m.address, m.role, m.availability, m.state])).toEqual([
        ['sdo-node7', '10.213.0.17', 'manager', 'active', 'ready'],
        ['sdo-node8', '10.213.0.18', 'manager', 'active', 'ready'],
        ['sdo-node9', '10.213.0.19', 'manager', 'active', 'ready'],
      ]);
      expect(members.filter((m) => m.leader)).toHaveLength(1);
    });

    it('deploys three replicas as Swarm services with dnsrr and host-mode ports, no mesh', async () => {
      await allMembersReady(docker);
      const { id } = await createRelease(deps, deployer, {
        serviceId,
        image: 'selfdevop-test/app:v1',
      });
      v1 = await settle(id);
      expect(v1.status, v1.error ?? '').toBe('completed');
      const upstreams = v1.replicaSet!.replicas.map((r) => r.upstream!);
      expect(upstreams).toHaveLength(3);
      // Every task at a member's address, never at a VIP or the ingress mesh.
      for (const u of upstreams) expect(memberAddresses).toContain(u.split(':')[0]);
      // selfdevop spreads the release's one-task services: one per member.
      expect(
        new Set(upstreams.map((u) => u.split(':')[0])).size,
        `${upstreams.join(', ')}; members: ${await memberStates(docker)}`,
      ).toBe(3);
      const services = (await servicesOf(id)) as unknown as {
        Spec: {
          Mode: { Replicated: { Replicas: number } };
          EndpointSpec: { Mode: string; Ports: { PublishMode: string }[] };
          TaskTemplate: { RestartPolicy: { Condition: string } };
        };
      }[];
      expect(services).toHaveLength(3);
      for (const s of services) {
        expect(s.Spec.Mode.Replicated.Replicas).toBe(1);
        expect(s.Spec.EndpointSpec.Mode).toBe('dnsrr');
        expect(s.Spec.EndpointSpec.Ports.map((p) => p.PublishMode)).toEqual(['host']);
        expect(s.Spec.TaskTemplate.RestartPolicy.Condition).toBe('any');
      }
      // The migration ran as a one-off Swarm job, and was removed once it ended.
      const logs = await deps.store.withOrg(orgId, (x) => x.releaseLogs.list(id, 0, 500));
      expect(logs.map((l) => l.line).join('\n')).toContain('migrating on the swarm');
      const result = await load(async () => true, 60);
      expect(result.failed).toBe(0);
      expect([...result.seen.keys()]).toEqual(['v1']);
      // Round robin over the three tasks: each answers.
      const hostnames = await load(async () => true, 30, '/env/HOSTNAME');
      expect(hostnames.seen.size).toBe(3);
    });

    it('switches to v2 under load with no failed request, then retires the v1 services', async () => {
      const { id } = await createRelease(deps, deployer, {
        serviceId,
        image: 'selfdevop-test/app:v2',
      });
      const during = await load(async () => {
        const r = await release(id);
        return r.status === 'completed' || r.status === 'failed';
      });
      v2 = await settle(id);
      expect(v2.status, v2.error ?? '').toBe('completed');
      expect(during.failed).toBe(0);
      expect(during.seen.get('v1')).toBeGreaterThan(0);
      const after = await load(async () => true, 30);
      expect([...after.seen.keys()]).toEqual(['v2']);
      // Warm for 2 s, then removed from the cluster.
      for (let i = 0; i < 200 && (await servicesOf(v1.id)).length > 0; i++)
        await new Promise((resolve) => setTimeout(resolve, 100));
      const left = await servicesOf(v1.id);
      expect(
        left.map((s) => s.Spec?.Name),
        `v1 services left: ${await tasksSaid(left.map((s) => s.ID))}; members: ${await memberStates(docker)}`,
      ).toEqual([]);
    });

    it('rolls back to v1 with every request answered', async () => {
      const rolled = await rollbackRelease(deps, deployer, { releaseId: v2.id });
      expect(rolled.path).toBe('redeploy');
      const back = rolled.redeploy!.id;
      const during = await load(async () => {
        const r = await release(back);
        return r.status === 'completed' || r.status === 'failed';
      });
      const done = await settle(back);
      expect(done.status, done.error ?? '').toBe('completed');
      expect(during.failed).toBe(0);
      expect((await release(v2.id)).status).toBe('rolled_back');
      const after = await load(async () => true, 30);
      expect([...after.seen.keys()]).toEqual(['v1']);
    });

    it('fails an unhealthy candidate, removes its services, and leaves the serving set as it was', async () => {
      const serving = (await deps.store.withOrg(orgId, (x) =>
        x.releases.latest(serviceId, 'env_000001', ['completed']),
      ))!;
      const before = (await servicesOf(serving.id)).map((s) => s.ID).sort();
      expect(before).toHaveLength(3);
      const { id } = await createRelease(deps, deployer, {
        serviceId,
        image: 'selfdevop-test/app:unhealthy',
      });
      const during = await load(async () => {
        const r = await release(id);
        return r.status === 'completed' || r.status === 'failed';
      });
      const failed = await settle(id);
      expect(failed.status).toBe('failed');
      expect(failed.error).toMatch(/health check did not pass/);
      expect(during.failed).toBe(0);
      expect(await servicesOf(id)).toEqual([]);
      expect((await servicesOf(serving.id)).map((s) => s.ID).sort()).toEqual(before);
      const after = await load(async () => true, 30);
      expect(after.failed).toBe(0);
      expect([...after.seen.keys()]).toEqual(['v1']);
    });

    it("places tasks by the service's placement labels as Swarm constraints, and fails a placement no member takes", async () => {
      await allMembersReady(docker);
      const member = (await docker.listNodes()).find(
        (n: { Description?: { Hostname?: string } }) => n.Description?.Hostname === 'sdo-node8',
      ) as { ID: string; Version: { Index: number }; Spec: { Labels?: Record<string, string> } };
      await docker.getNode(member.ID).update({
        version: member.Version.Index,
        ...member.Spec,
        Labels: { ...member.Spec.Labels, 'sdo-test-zone': 'b' },
      });
      const placed = aService({
        id: `${serviceId}p`,
        name: 'placed',
        image: 'selfdevop-test/app:v1',
        replicas: 2,
        maxSurge: 2,
        health: { intervalMs: 200, timeoutMs: 1000, successes: 2, deadlineMs: 15_000 },
        placement: { labels: { 'sdo-test-zone': 'b' } },
        warmSeconds: 0,
        drainSeconds: 1,
      });
      await deps.store.withOrg(orgId, (r) => r.services.insert(placed));
      try {
        const { id } = await createRelease(deps, deployer, {
          serviceId: placed.id,
          image: 'selfdevop-test/app:v1',
        });
        const done = await settle(id);
        expect(done.status, `${done.error ?? ''}; members: ${await memberStates(docker)}`).toBe(
          'completed',
        );
        expect(done.replicaSet!.replicas.map((r) => r.upstream!.split(':')[0])).toEqual([
          '10.213.0.18',
          '10.213.0.18',
        ]);
        await deps.store.withOrg(orgId, (r) =>
          r.services.update(placed.id, { placement: { labels: { 'sdo-test-zone': 'nowhere' } } }),
        );
        const { id: nowhere } = await createRelease(deps, deployer, {
          serviceId: placed.id,
          image: 'selfdevop-test/app:v2',
        });
        const failed = await settle(nowhere);
        expect(failed.status).toBe('failed');
        expect(failed.error).toContain('no member takes its task');
        expect(failed.error).toContain('no suitable node');
        expect(await servicesOf(nowhere)).toEqual([]);
        expect(await servicesOf(id)).toHaveLength(2);
      } finally {
        const swarm = new SwarmRuntime();
        for (const s of await swarm.list(target, { 'selfdevop.service': placed.id }))
          await swarm.remove(target, s.name);
        const now = (await docker.getNode(member.ID).inspect()) as typeof member;
        const { 'sdo-test-zone': _zone, ...labels } = now.Spec.Labels ?? {};
        await docker
          .getNode(member.ID)
          .update({ version: now.Version.Index, ...now.Spec, Labels: labels });
      }
    });

    it('spreads a release of three replicas over the three members even when the others carry more tasks, then leaves Swarm free to move them', async () => {
      await allMembersReady(docker);
      const nodes = (await docker.listNodes()) as MemberNode[];
      const idOf = (hostname: string) =>
        nodes.find((n) => n.Description?.Hostname === hostname)!.ID;
      const running = (await docker.listTasks({
        filters: { 'desired-state': ['running'] },
      })) as { NodeID?: string }[];
      const load = (hostname: string) => running.filter((t) => t.NodeID === idOf(hostname)).length;
      // Fillers on node7 and node9 until each carries 3 tasks more than any member did, so
      // Swarm on its own (the fewest tasks overall) would put all three replicas on node8.
      const most = Math.max(...['sdo-node7', 'sdo-node8', 'sdo-node9'].map(load));
      const fillers = ['sdo-node7', 'sdo-node9'].map((hostname) => ({
        name: `sdo-${serviceId}-filler-${hostname.slice(-1)}`,
        hostname,
        tasks: most + 3 - load(hostname),
      }));
      const spread = aService({
        id: `${serviceId}s`,
        name: 'spread',
        image: 'selfdevop-test/app:v1',
        replicas: 3,
        maxSurge: 3,
        health: { intervalMs: 200, timeoutMs: 1000, successes: 2, deadlineMs: 15_000 },
        warmSeconds: 0,
        drainSeconds: 1,
      });
      await deps.store.withOrg(orgId, (r) => r.services.insert(spread));
      try {
        for (const f of fillers)
          await docker.createService({
            Name: f.name,
            Labels: { 'selfdevop.test': serviceId },
            TaskTemplate: {
              ContainerSpec: { Image: 'selfdevop-test/app:v1' },
              Placement: { Constraints: [`node.hostname==${f.hostname}`] },
            },
            Mode: { Replicated: { Replicas: f.tasks } },
          });
        const wanted = fillers.reduce((n, f) => n + f.tasks, 0);
        let up = 0;
        for (let i = 0; i < 120 && up < wanted; i++) {
          const tasks = (await docker.listTasks({
            filters: { 'desired-state': ['running'] },
          })) as { ServiceID: string; Status?: { State?: string } }[];
          const fillerIds = await Promise.all(
            fillers.map(
              async (f) => ((await docker.getService(f.name).inspect()) as { ID: string }).ID,
            ),
          );
          up = tasks.filter(
            (t) => fillerIds.includes(t.ServiceID) && t.Status?.State === 'running',
          ).length;
          if (up < wanted) await new Promise((resolve) => setTimeout(resolve, 500));
        }
        expect(up, `fillers running; members: ${await memberStates(docker)}`).toBe(wanted);
        const { id } = await createRelease(deps, deployer, {
          serviceId: spread.id,
          image: 'selfdevop-test/app:v1',
        });
        const done = await settle(id);
        expect(done.status, done.error ?? '').toBe('completed');
        const services = (await servicesOf(id)) as unknown as {
          ID: string;
          Spec: { TaskTemplate: { Placement?: { Constraints?: string[] } } };
        }[];
        const addresses = done.replicaSet!.replicas.map((r) => r.upstream!.split(':')[0]);
        expect(
          [...addresses].sort(),
          `${await tasksSaid(services.map((s) => s.ID))}; members: ${await memberStates(docker)}`,
        ).toEqual(memberAddresses);
        for (const s of services) {
          // The pin went once the task ran, so Swarm may reschedule it anywhere after a loss…
          expect(s.Spec.TaskTemplate.Placement?.Constraints ?? []).toEqual([]);
          // …and dropping it left the running task be (no second task).
          expect(await tasksSaid([s.ID])).toMatch(/^\S+ running->running on sdo-node\d$/);
        }
      } finally {
        const swarm = new SwarmRuntime();
        // Stopped, then removed once Swarm's reaper is done (SwarmRuntime.remove says why).
        for (const f of fillers) {
          await swarm.stop(target, f.name, 0).catch(() => undefined);
          await swarm.remove(target, f.name).catch(() => undefined);
        }
        for (const s of await swarm.list(target, { 'selfdevop.service': spread.id }))
          await swarm.remove(target, s.name);
        // Its release no longer serves anything: a later drain must not find it on a member.
        await deps.store.withOrg(orgId, (r) => r.services.delete(spread.id));
      }
    });

    it('stops a service whose member is lost without waiting for its task, and the member stops it once it is back', async () => {
      await allMembersReady(docker);
      // Neither the manager this suite talks to nor the leader: the cluster keeps answering.
      const lost = ((await docker.listNodes()) as (MemberNode & { Version: { Index: number } })[])
        .filter((n) => n.Description?.Hostname !== 'sdo-node7' && !n.ManagerStatus?.Leader)
        .sort((a, b) => (a.Description!.Hostname! < b.Description!.Hostname! ? -1 : 1))[0]!;
      const index = lost.Description!.Hostname!.replace('sdo-node', '');
      const swarm = new SwarmRuntime();
      const name = `sdo-${serviceId}-lost`;
      const labelled = async (labels: Record<string, string>) => {
        const now = (await docker.getNode(lost.ID).inspect()) as typeof lost;
        const { 'sdo-test-lost': _mark, ...rest } = now.Spec?.Labels ?? {};
        await docker
          .getNode(lost.ID)
          .update({ version: now.Version.Index, ...now.Spec, Labels: { ...rest, ...labels } });
      };
      let frozen = false;
      try {
        await labelled({ 'sdo-test-lost': 'yes' });
        const info = await swarm.start(target, {
          name,
          image: 'selfdevop-test/app:v1',
          env: {},
          labels: { 'selfdevop.service': serviceId },
          restartPolicy: 'unless-stopped',
          placementLabels: { 'sdo-test-lost': 'yes' },
        });
        expect(info.state).toBe('running');
        // The member hangs (cgroup freezer): no heartbeat, so the manager marks it down.
        frozen = true;
        await multiNode('freeze', index);
        for (let i = 0; i < 120; i++) {
          const node = (await docker.getNode(lost.ID).inspect()) as MemberNode;
          if (node.Status?.State !== 'ready') break;
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
        expect(await memberStates(docker)).toMatch(new RegExp(`sdo-node${index} (down|unknown)`));
        // A grace the member will never honour while it is frozen: before the fix, stop waited
        // grace + 30 s for the task to leave running, and the member is thawed long before.
        const stopped = swarm.stop(target, name, 60).then(() => 'returned' as const);
        const outcome = await Promise.race([
          stopped,
          new Promise<'still waiting'>((resolve) =>
            setTimeout(() => resolve('still waiting'), 45_000),
          ),
        ]);
        const service = (await docker.getService(name).inspect()) as { ID: string };
        const said = await tasksSaid([service.ID]);
        expect(outcome, `${said}; members: ${await memberStates(docker)}`).toBe('returned');
        // The manager still has the task running on the lost member: stop did not wait for it.
        expect(said).toContain(`running->shutdown on sdo-node${index}`);
        await multiNode('thaw', index);
        frozen = false;
        await allMembersReady(docker);
        // Back, the member reports and stops the task its desired state says is shut down.
        let after = '';
        for (let i = 0; i < 120; i++) {
          after = await tasksSaid([service.ID]);
          if (!after.includes('running->')) break;
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
        expect(after).not.toContain('running->');
      } finally {
        if (frozen) await multiNode('thaw', index);
        await allMembersReady(docker);
        await swarm.remove(target, name).catch(() => undefined);
        await labelled({});
      }
    });
    it("follows Swarm's tasks when a member loses power: its task leaves the edge, and Swarm's replacement joins once it answers", async () => {
      await allMembersReady(docker);
      // Each replica is a single-task service, which Swarm places on the member with the
      // fewest tasks: the earlier tests' serving set would bias that (in CI all three landed
      // on node7 and node8). It is done with, so it goes, and the members start even.
      const swarmRuntime = new SwarmRuntime();
      for (const s of await swarmRuntime.list(target, { 'selfdevop.service': serviceId }))
        await swarmRuntime.remove(target, s.name);
      const followed = aService({
        id: `${serviceId}n`,
        name: 'followed',
        image: 'selfdevop-test/app:v1',
        replicas: 3,
        maxSurge: 3,
        health: { intervalMs: 200, timeoutMs: 1000, successes: 2, deadlineMs: 15_000 },
        warmSeconds: 0,
        drainSeconds: 1,
      });
      const followedHost = defaultHosts({
        service: followed,
        environment: anEnvironment(),
        edgeDomain: 'apps.example.test',
      })[0]!;
      await deps.store.withOrg(orgId, (r) => r.services.insert(followed));
      const edgeSet = async () =>
        (await deps.edge.get(routeId(followed.id, 'env_000001')))?.upstreams ?? [];
      // The worker's node checks, as an install runs them (a round a second).
      const checker = new NodeChecker({
        release: deps,
        policy: { intervalMs: 1000, timeoutMs: 1000, missesToLose: 2 },
      });
      let stopChecks: (() => Promise<void>) | undefined;
      let killed: string | null = null;
      try {
        const { id } = await createRelease(deps, deployer, {
          serviceId: followed.id,
          image: 'selfdevop-test/app:v1',
        });
        const v = await settle(id);
        expect(v.status, v.error ?? '').toBe('completed');
        const services = (await servicesOf(id)).map((s: { ID: string }) => s.ID);
        // The member to lose: one holding a task, neither the manager this suite talks to
        // (node7) nor the leader (a leader's loss is an election, not this test).
        const hosts = v.replicaSet!.replicas.map((r) => r.upstream!.split(':')[0]!);
        const lost = ((await docker.listNodes()) as MemberNode[]).find(
          (n) =>
            n.Description?.Hostname !== 'sdo-node7' &&
            !n.ManagerStatus?.Leader &&
            hosts.includes(
              `10.213.0.${10 + Number(n.Description?.Hostname?.replace('sdo-node', ''))}`,
            ),
        );
        expect(
          lost,
          `no task on a member that may be lost: ${await tasksSaid(services)}; members: ${await memberStates(docker)}`,
        ).toBeDefined();
        const index = lost!.Description!.Hostname!.replace('sdo-node', '');
        const lostAddress = `10.213.0.${10 + Number(index)}`;
        const onLost = v.replicaSet!.replicas.filter((r) =>
          r.upstream!.startsWith(`${lostAddress}:`),
        );
        const lostUpstreams = onLost.map((r) => r.upstream!);
        stopChecks = checker.start();
        killed = index;
        await multiNode('kill', index);
        // Out of the edge long before the manager sees the member down (heartbeats: ~15 s).
        let edge: string[] = [];
        for (let i = 0; i < 300; i++) {
          edge = await edgeSet();
          if (!edge.some((u) => lostUpstreams.includes(u))) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        expect(
          edge.filter((u) => lostUpstreams.includes(u)),
          `members: ${await memberStates(docker)}`,
        ).toEqual([]);
        expect(edge.length).toBe(3 - onLost.length);
        // Swarm reschedules the lost tasks; each joins once it answers at its new address.
        let now = v;
        for (let i = 0; i < 240; i++) {
          now = await release(id);
          edge = await edgeSet();
          const ups = now.replicaSet!.replicas.map((r) => r.upstream!);
          if (!ups.some((u) => u.startsWith(`${lostAddress}:`)) && edge.length === 3) break;
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
        const ups = now.replicaSet!.replicas.map((r) => r.upstream!);
        expect(
          ups.filter((u) => u.startsWith(`${lostAddress}:`)),
          `${await tasksSaid(services)}; members: ${await memberStates(docker)}`,
        ).toEqual([]);
        expect([...edge].sort()).toEqual([...ups].sort());
        expect(now.replicaSet!.replicas.every((r) => r.health === 'healthy')).toBe(true);
        // Every request through the edge answers, from the three replicas.
        const answered = new Set<string>();
        for (let i = 0; i < 60; i++) {
          const r = await get(caddy.httpPort, followedHost, '/env/HOSTNAME');
          expect(r.status, r.body).toBe(200);
          answered.add(r.body);
        }
        expect(answered.size).toBe(3);
        // What happened is on the release's log and in the audit trail.
        const lines = (await deps.store.withOrg(orgId, (r) => r.releaseLogs.list(id))).map(
          (l) => l.line,
        );
        for (const r of onLost) {
          expect(lines).toContain(
            `swarm task of replica ${r.index} does not answer: left the edge`,
          );
          expect(lines.some((l) => l.startsWith(`swarm runs replica ${r.index} at `))).toBe(true);
        }
        const audit = await deps.store.withOrg(orgId, (r) =>
          r.audit.list({ limit: 50 }, { action: 'edge.tasks_changed' }),
        );
        expect(audit.items.filter((a) => a.targetId === id).length).toBeGreaterThanOrEqual(2);
      } finally {
        await stopChecks?.();
        if (killed) await powerOn(killed);
        await allMembersReady(docker, 180_000);
        const swarm = new SwarmRuntime();
        for (const s of await swarm
          .list(target, { 'selfdevop.service': followed.id })
          .catch(() => []))
          await swarm.remove(target, s.name).catch(() => undefined);
      }
    }, 420_000);

    it('seals the environment in a Swarm secret: the service spec holds no value, the app sees every one, and the secret goes with the service', async () => {
      await allMembersReady(docker);
      const swarm = new SwarmRuntime();
      const name = `sdo-${serviceId}-sealed`;
      const secretValue = `s3cr'et "${randomBytes(6).toString('hex')}" $HOME`;
      try {
        const info = await swarm.start(target, {
          name,
          image: 'selfdevop-test/app:v1',
          env: { DATABASE_URL: secretValue, GREETING: 'hello', 'dotted.name': 'x' },
          labels: { 'selfdevop.service': serviceId },
          containerPort: 8080,
          restartPolicy: 'unless-stopped',
        });
        expect(info.state).toBe('running');
        const inspected = JSON.stringify(await docker.getService(name).inspect());
        expect(inspected).not.toContain(secretValue);
        expect(inspected).not.toContain('DATABASE_URL');
        expect(inspected).not.toContain('hello');
        const spec = (
          (await docker.getService(name).inspect()) as {
            Spec: {
              TaskTemplate: {
                ContainerSpec: { Env?: string[]; Secrets: { SecretName: string }[] };
              };
            };
          }
        ).Spec.TaskTemplate.ContainerSpec;
        expect(spec.Env ?? []).toEqual([]);
        expect(spec.Secrets).toHaveLength(1);
        const secretName = spec.Secrets[0]!.SecretName;
        // The image's own env and command still apply (APP_VERSION, /bin/app).
        const at = info.published!.split(':');
        const ask = async (path: string) => {
          const r = await new Promise<{ status: number; body: string }>((resolve) => {
            const req = http.get(
              { host: at[0], port: Number(at[1]), path, agent: false, timeout: 5000 },
              (res) => {
                let body = '';
                res.setEncoding('utf8');
                res.on('data', (c: string) => (body += c));
                res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
              },
            );
            req.on('error', (e) => resolve({ status: 0, body: e.message }));
          });
          return r;
        };
        let answer = { status: 0, body: '' };
        for (let i = 0; i < 100 && answer.status !== 200; i++) {
          answer = await ask('/env/DATABASE_URL');
          if (answer.status !== 200) await new Promise((resolve) => setTimeout(resolve, 100));
        }
        expect(answer).toEqual({ status: 200, body: secretValue });
        expect((await ask('/env/GREETING')).body).toBe('hello');
        expect((await ask('/env/APP_VERSION')).body).toBe('v1');
        expect(
          (await docker.listSecrets({ filters: { name: [secretName] } })).map(
            (x: { Spec?: { Name?: string } }) => x.Spec?.Name,
          ),
        ).toEqual([secretName]);
        await swarm.stop(target, name, 1);
        await swarm.remove(target, name);
        expect(await docker.listSecrets({ filters: { name: [secretName] } })).toEqual([]);
      } finally {
        await swarm.remove(target, name).catch(() => undefined);
      }
    });

    it("drains a member through Swarm from selfdevop under load: its tasks leave the edge first, Swarm's replacements join once healthy, no request fails", async () => {
      await allMembersReady(docker);
      const drainedService = aService({
        id: `${serviceId}d`,
        name: 'drained',
        image: 'selfdevop-test/app:v1',
        replicas: 3,
        maxSurge: 3,
        health: { intervalMs: 200, timeoutMs: 1000, successes: 2, deadlineMs: 15_000 },
        warmSeconds: 0,
        drainSeconds: 2,
      });
      const drainedHost = defaultHosts({
        service: drainedService,
        environment: anEnvironment(),
        edgeDomain: 'apps.example.test',
      })[0]!;
      await deps.store.withOrg(orgId, (r) => r.services.insert(drainedService));
      const edgeSet = async () =>
        (await deps.edge.get(routeId(drainedService.id, 'env_000001')))?.upstreams ?? [];
      // The worker's node checks (and so the task following), a round a second.
      const checker = new NodeChecker({
        release: deps,
        policy: { intervalMs: 1000, timeoutMs: 1000, missesToLose: 2 },
      });
      let stopChecks: (() => Promise<void>) | undefined;
      let drainedMember: string | null = null;
      try {
        const { id } = await createRelease(deps, deployer, {
          serviceId: drainedService.id,
          image: 'selfdevop-test/app:v1',
        });
        const v = await settle(id);
        expect(v.status, v.error ?? '').toBe('completed');
        const services = (await servicesOf(id)).map((x: { ID: string }) => x.ID);
        // A member holding one of its tasks (Swarm's spread depends on what earlier tests
        // left), the manager this suite talks to last.
        const hosts = v.replicaSet!.replicas.map((r) => r.upstream!.split(':')[0]!);
        const memberAddress =
          ['10.213.0.19', '10.213.0.18', '10.213.0.17'].find((a) => hosts.includes(a)) ?? '';
        const member = `sdo-node${Number(memberAddress.split('.')[3]) - 10}`;
        const onMember = v.replicaSet!.replicas.filter((r) =>
          r.upstream!.startsWith(`${memberAddress}:`),
        );
        expect(onMember.length, `tasks: ${await tasksSaid(services)}`).toBeGreaterThan(0);
        drainedMember = member;
        stopChecks = checker.start();
        let draining: Promise<Awaited<ReturnType<typeof drainClusterMember>>> | null = null;
        let settledAt = 0;
        const during = await (async () => {
          const seen = new Map<string, number>();
          let failed = 0;
          let sent = 0;
          while (sent < 4000) {
            const r = await get(caddy.httpPort, drainedHost, '/env/HOSTNAME');
            sent++;
            if (r.status === 200) seen.set(r.body, (seen.get(r.body) ?? 0) + 1);
            else {
              failed++;
              console.warn(`failed request: ${r.status} ${r.body.slice(0, 200)}`);
            }
            // Some load first, then the drain, then until Swarm's replacements serve.
            if (sent === 50)
              draining = drainClusterMember(deps, admin, 'node_swarm1', member, null);
            if (sent % 10 === 0 && draining && !settledAt) {
              const now = await release(id);
              const edge = await edgeSet();
              const ups = now.replicaSet!.replicas.map((x) => x.upstream!);
              if (
                edge.length === 3 &&
                !ups.some((u) => u.startsWith(`${memberAddress}:`)) &&
                [...edge].sort().join() === [...ups].sort().join()
              )
                settledAt = sent;
            }
            // A little more load once the edge holds Swarm's replacements.
            if (settledAt && sent >= settledAt + 100) break;
          }
          return { seen, failed, sent };
        })();
        const drained = await draining!;
        expect(drained.member.availability).toBe('drain');
        expect(drained.leaving.map((l) => l.releaseId)).toContain(id);
        // Its own replicas all left the edge first. (Earlier tests' releases whose services
        // they removed still name upstreams on the member; the edge keeps those, and says so.)
        expect(drained.kept.filter((k) => k.releaseId === id)).toEqual([]);
        expect(
          settledAt,
          `${await tasksSaid(services)}; members: ${await memberStates(docker)}; edge ${(await edgeSet()).join(', ')}`,
        ).toBeGreaterThan(0);
        expect(during.failed).toBe(0);
        expect(await memberStates(docker)).toContain(`${member} ready/drain`);
        // Swarm itself moved the tasks: none of the release's services runs on the member.
        expect(await tasksSaid(services)).not.toMatch(new RegExp(`running->running on ${member}`));
        const now = await release(id);
        expect(now.replicaSet!.replicas.every((r) => r.health === 'healthy')).toBe(true);
        const lines = (await deps.store.withOrg(orgId, (r) => r.releaseLogs.list(id))).map(
          (l) => l.line,
        );
        for (const r of onMember) {
          expect(lines).toContain(`swarm member of replica ${r.index} is draining: left the edge`);
          expect(lines.some((l) => l.startsWith(`swarm runs replica ${r.index} at `))).toBe(true);
        }
        const audit = await deps.store.withOrg(orgId, (r) =>
          r.audit.list({ limit: 50 }, { action: 'node.member_drained' }),
        );
        expect(audit.items.map((a) => a.data?.member)).toContain(member);
        // Undrain: the member takes tasks again; nothing moves back by itself.
        const back = await undrainClusterMember(deps, admin, 'node_swarm1', member, null);
        expect(back.member.availability).toBe('active');
        expect((await release(id)).replicaSet!.replicas.map((r) => r.upstream)).toEqual(
          now.replicaSet!.replicas.map((r) => r.upstream),
        );
      } finally {
        await stopChecks?.();
        if (drainedMember)
          await undrainClusterMember(deps, admin, 'node_swarm1', drainedMember, null).catch(
            () => undefined,
          );
        await allMembersReady(docker);
        const swarm = new SwarmRuntime();
        for (const x of await swarm
          .list(target, { 'selfdevop.service': drainedService.id })
          .catch(() => []))
          await swarm.remove(target, x.name).catch(() => undefined);
      }
    }, 300_000);
  },
);
