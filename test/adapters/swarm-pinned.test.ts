/**
 * `withSwarm` and a pinned target (a data service on a Swarm cluster): every call goes to
 * the manager's own engine, never to a Swarm service, and the project network is made the
 * cluster's attachable overlay first, so the engine joins it instead of making a local bridge
 * no task on another member reaches. The engine and the manager are recorded in memory; the
 * real Swarm suite (test/swarm/swarm-data.test.ts) proves the tasks then reach the server.
 */
import { describe, expect, it } from 'vitest';
import { SwarmRuntime, withSwarm } from '../../adapters/runtime/swarm.ts';
import type { ContainerRuntime, ContainerSpec, DockerTarget } from '../../core/ports.ts';

/** The engine runtime: records each call's name and target, answers the least it can. */
function recordingEngine() {
  const calls: { call: string; target: DockerTarget }[] = [];
  const record =
    (call: string, answer: unknown = undefined) =>
    async (target: DockerTarget) => {
      calls.push({ call, target });
      return answer;
    };
  const info = { id: 'c1', name: 'c', state: 'running', labels: {}, published: null };
  const engine = {
    ping: record('ping'),
    resolveImage: record('resolveImage', 'sha256:abc'),
    start: record('start', info),
    runOnce: record('runOnce', { exitCode: 0, output: '' }),
    runPiped: record('runPiped', { stdout: (async function* () {})(), result: Promise.resolve() }),
    inspect: record('inspect', info),
    list: record('list', []),
    stop: record('stop'),
    remove: record('remove'),
    exec: record('exec', { exitCode: 0, output: '' }),
    removeVolume: record('removeVolume'),
    removeNetwork: record('removeNetwork'),
  } as unknown as ContainerRuntime;
  return { engine, calls };
}

/** A manager that holds `networks` (name → driver) and records what the runtime asks it. */
function scriptedManager(networks: Record<string, string>) {
  const asked: string[] = [];
  const docker = {
    listNetworks: async (o: { filters: { name: string[] } }) => {
      asked.push(`listNetworks ${o.filters.name[0]}`);
      return Object.entries(networks)
        .filter(([name]) => name.includes(o.filters.name[0]!))
        .map(([Name, Driver]) => ({ Name, Driver }));
    },
    createNetwork: async (o: { Name: string; Driver: string; Attachable: boolean }) => {
      asked.push(`createNetwork ${o.Name} ${o.Driver}${o.Attachable ? ' attachable' : ''}`);
      networks[o.Name] = o.Driver;
      return {};
    },
    createService: async () => {
      asked.push('createService');
      return { id: 'svc1' };
    },
  };
  const swarm = new SwarmRuntime();
  // The manager's client is the one thing replaced: every call the runtime makes reaches it.
  (swarm as unknown as { client: () => Promise<unknown> }).client = async () => docker;
  return { swarm, asked, networks };
}

const cluster: DockerTarget = { dockerHost: 'unix:///fake/manager.sock', swarm: true };
const pinned: DockerTarget = { ...cluster, pinned: true };
const server: ContainerSpec = {
  name: 'sdo-data-ds_1',
  image: 'selfdevop/redis:7',
  env: {},
  labels: { 'selfdevop.role': 'data' },
  restartPolicy: 'unless-stopped',
  network: 'sdo-net-prj_1',
  volumes: ['sdo-data-ds_1-data:/data'],
};

describe('withSwarm with a pinned target (a data service on a Swarm)', () => {
  it("starts the server on the manager's engine, on the project network made an attachable overlay first", async () => {
    const { engine, calls } = recordingEngine();
    const m = scriptedManager({});
    const runtime = withSwarm(engine, m.swarm);
    await runtime.start(pinned, server);
    expect(m.asked).toEqual([
      'listNetworks sdo-net-prj_1',
      'createNetwork sdo-net-prj_1 overlay attachable',
    ]);
    expect(calls).toEqual([
      { call: 'start', target: { dockerHost: 'unix:///fake/manager.sock', pinned: true } },
    ]);
  });

  it('joins the overlay the services made, and sends every data-service call to the engine', async () => {
    const { engine, calls } = recordingEngine();
    const m = scriptedManager({ 'sdo-net-prj_1': 'overlay' });
    const runtime = withSwarm(engine, m.swarm);
    await runtime.runOnce(pinned, { ...server, name: 'check', restartPolicy: 'no' }, 1000);
    await runtime.runPiped!(
      pinned,
      { ...server, name: 'dump', restartPolicy: 'no' },
      { timeoutMs: 1000 },
    );
    await runtime.inspect(pinned, 'sdo-data-ds_1');
    await runtime.stop(pinned, 'sdo-data-ds_1', 10);
    await runtime.remove(pinned, 'sdo-data-ds_1');
    await runtime.exec!(pinned, 'sdo-data-ds_1', ['true'], 1000);
    await runtime.removeVolume!(pinned, 'sdo-data-ds_1-data');
    expect(m.asked).not.toContain('createService');
    expect(m.asked.filter((a) => a.startsWith('createNetwork'))).toEqual([]);
    expect(calls.map((c) => c.call)).toEqual([
      'runOnce',
      'runPiped',
      'inspect',
      'stop',
      'remove',
      'exec',
      'removeVolume',
    ]);
    for (const c of calls) expect(c.target.swarm).toBeUndefined();
  });

  it("leaves a drill's internal network to the engine (a bridge on the manager, drill only)", async () => {
    const { engine, calls } = recordingEngine();
    const m = scriptedManager({});
    const runtime = withSwarm(engine, m.swarm);
    await runtime.start(pinned, { ...server, network: 'sdo-drill-bak_1', internalNetwork: true });
    expect(m.asked).toEqual([]);
    expect(calls.map((c) => c.call)).toEqual(['start']);
  });

  it('refuses (409 naming the network) a local bridge of the project network’s name on the manager', async () => {
    const { engine, calls } = recordingEngine();
    const m = scriptedManager({ 'sdo-net-prj_1': 'bridge' });
    const runtime = withSwarm(engine, m.swarm);
    await expect(runtime.start(pinned, server)).rejects.toMatchObject({
      kind: 'conflict',
      code: 'project_network_not_overlay',
      message: expect.stringContaining('network sdo-net-prj_1 on the Swarm manager'),
    });
    expect(calls).toEqual([]);
  });

  it('still answers not_on_swarm for what a Swarm service cannot do yet', async () => {
    const { engine, calls } = recordingEngine();
    const runtime = withSwarm(engine, scriptedManager({}).swarm);
    await expect(runtime.exec!(cluster, 'sdo-svc-r0', ['true'], 1000)).rejects.toMatchObject({
      code: 'not_on_swarm',
    });
    await expect(runtime.runPiped!(cluster, server, { timeoutMs: 1000 })).rejects.toMatchObject({
      code: 'not_on_swarm',
    });
    await expect(runtime.removeVolume!(cluster, 'v')).rejects.toMatchObject({
      code: 'not_on_swarm',
    });
    expect(calls).toEqual([]);
  });
});
