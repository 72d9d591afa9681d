/**
 * SwarmRuntime.start against a scripted manager (the Engine API calls it makes, in memory):
 * when the spread's pin is dropped, and how often the cluster is read. The real Swarm
 * suite (test/swarm/swarm.test.ts) proves that dropping the pin leaves the task be; this
 * one proves the order of the calls, which timing on a real cluster cannot.
 */
import { describe, expect, it } from 'vitest';
import { SwarmRuntime, envInSpecWarning } from '../../adapters/runtime/swarm.ts';
import type { ContainerSpec } from '../../core/ports.ts';

/** A task's states as the manager answers them, one per read of the service's tasks. */
type Script = ('pending' | 'assigned' | 'starting' | 'running')[];

interface FakeService {
  ID: string;
  Version: { Index: number };
  Spec: {
    Name: string;
    TaskTemplate: { Placement?: { Constraints?: string[] } };
  } & Record<string, unknown>;
}

/**
 * A three-member manager; each service's one task goes through `script`. The images hold
 * `files` (for the shell probe: busybox's /bin/sh and /bin/env by default).
 */
function fakeManager(
  script: Script,
  o: { failUpdate?: string; files?: string[]; probeFails?: boolean } = {},
) {
  const files = new Set(o.files ?? ['/bin/sh', '/bin/env']);
  const nodes = ['n1', 'n2', 'n3'].map((id, i) => ({
    ID: id,
    Spec: { Role: 'manager', Availability: 'active', Labels: {} },
    Status: { State: 'ready', Addr: `10.0.0.${i + 1}` },
  }));
  const services = new Map<string, FakeService>();
  const reads = new Map<string, number>();
  const nodeOf = new Map<string, string>();
  const calls: string[] = [];
  /** Each pin dropped: the service, and its task's state the last time it was read. */
  const unpins: { service: string; taskWas: string }[] = [];
  const lastState = new Map<string, string>();
  const notFound = () => Object.assign(new Error('no such service'), { statusCode: 404 });
  const byName = (nameOrId: string) =>
    [...services.values()].find((s) => s.ID === nameOrId || s.Spec.Name === nameOrId);
  const docker = {
    listNodes: async () => {
      calls.push('listNodes');
      return nodes;
    },
    getNode: (id: string) => ({
      inspect: async () => {
        calls.push('getNode');
        return nodes.find((n) => n.ID === id);
      },
    }),
    getImage: (image: string) => ({
      inspect: async () => {
        calls.push('inspectImage');
        return {
          Id: image.startsWith('sha256:') ? image : 'sha256:abc',
          RepoDigests: [],
          Config: { Cmd: ['httpd'], Env: ['PATH=/usr/bin:/bin'] },
        };
      },
    }),
    createContainer: async (opts: { Image: string }) => {
      calls.push(`createContainer ${opts.Image}`);
      if (o.probeFails) throw Object.assign(new Error('engine busy'), { statusCode: 500 });
      return { id: `probe${calls.length}` };
    },
    getContainer: (id: string) => ({
      infoArchive: async ({ path }: { path: string }) => {
        calls.push(`head ${path}`);
        if (!files.has(path)) throw Object.assign(new Error('not found'), { statusCode: 404 });
        return null;
      },
      remove: async () => {
        calls.push(`removeContainer ${id}`);
      },
    }),
    createSecret: async () => {
      calls.push('createSecret');
      return { id: `sec${services.size}` };
    },
    createService: async (body: FakeService['Spec']) => {
      const id = `svc${services.size + 1}`;
      services.set(id, { ID: id, Version: { Index: 11 }, Spec: body });
      // Swarm allocates the endpoint right after a create: the version moves.
      services.get(id)!.Version.Index++;
      const pin = body.TaskTemplate.Placement?.Constraints?.find((c) => c.startsWith('node.id=='));
      nodeOf.set(id, pin ? pin.slice('node.id=='.length) : 'n1');
      return { id };
    },
    getService: (nameOrId: string) => ({
      inspect: async () => {
        const s = byName(nameOrId);
        if (!s) throw notFound();
        return structuredClone(s);
      },
      update: async (opts: { version: number } & FakeService['Spec']) => {
        const s = byName(nameOrId);
        if (!s) throw notFound();
        if (o.failUpdate) throw new Error(o.failUpdate);
        if (opts.version !== s.Version.Index) throw new Error('update out of sequence');
        const { version: _v, ...spec } = opts;
        const pinned = (c?: string[]) => (c ?? []).some((x) => x.startsWith('node.id=='));
        if (
          pinned(s.Spec.TaskTemplate.Placement?.Constraints) &&
          !pinned(spec.TaskTemplate.Placement?.Constraints)
        )
          unpins.push({ service: s.ID, taskWas: lastState.get(s.ID) ?? 'unread' });
        s.Spec = spec;
        s.Version.Index++;
      },
    }),
    listTasks: async (opts: { filters: { service?: string[] } }) => {
      const id = opts.filters.service?.[0];
      if (!id) {
        calls.push('listTasks(all)');
        return [];
      }
      const n = reads.get(id) ?? 0;
      reads.set(id, n + 1);
      const state = script[Math.min(n, script.length - 1)]!;
      lastState.set(id, state);
      return [
        {
          ID: `${id}.1`,
          ServiceID: id,
          CreatedAt: '2026-12-04T00:00:00Z',
          DesiredState: 'running',
          ...(state === 'pending' ? {} : { NodeID: nodeOf.get(id) }),
          Status: {
            State: state,
            ...(state === 'running'
              ? { PortStatus: { Ports: [{ TargetPort: 8080, PublishedPort: 30001 }] } }
              : {}),
          },
        },
      ];
    },
  };
  const runtime = new SwarmRuntime({ startPollMs: 5 });
  // The manager's client is the one thing replaced: every call the runtime makes reaches it.
  (runtime as unknown as { client: () => Promise<unknown> }).client = async () => docker;
  return { runtime, services, calls, unpins };
}

const target = { dockerHost: 'unix:///fake/manager.sock', swarm: true };
const replica = (index: number, release = 'rel_1'): ContainerSpec => ({
  name: `sdo-svc_1-env_1-${release}-r${index}`,
  image: 'sha256:abc',
  env: { PORT: '8080' },
  labels: { 'selfdevop.release': release },
  containerPort: 8080,
  restartPolicy: 'unless-stopped',
  replicaIndex: index,
});
const constraintsOf = (s: FakeService) => s.Spec.TaskTemplate.Placement?.Constraints ?? [];

describe('SwarmRuntime.start and the spread', () => {
  it('drops the pin once Swarm gave the task its member, while it starts, never while it is pending', async () => {
    const m = fakeManager(['pending', 'assigned', 'starting', 'starting', 'running']);
    const infos = await Promise.all([0, 1, 2].map((i) => m.runtime.start(target, replica(i))));
    expect(infos.map((i) => i.published).sort()).toEqual([
      '10.0.0.1:30001',
      '10.0.0.2:30001',
      '10.0.0.3:30001',
    ]);
    expect(m.unpins.map((u) => u.taskWas)).toEqual(['assigned', 'assigned', 'assigned']);
    for (const s of m.services.values()) expect(constraintsOf(s)).toEqual([]);
  });

  it('never returns with the pin, even when the task is first seen running', async () => {
    const m = fakeManager(['running']);
    await m.runtime.start(target, replica(0));
    expect(m.unpins.map((u) => u.taskWas)).toEqual(['running']);
    expect(constraintsOf([...m.services.values()][0]!)).toEqual([]);
  });

  it("reads the members and their tasks once for a release's replicas, and again for another release", async () => {
    const m = fakeManager(['assigned', 'running']);
    await Promise.all([0, 1, 2].map((i) => m.runtime.start(target, replica(i))));
    expect(m.calls.filter((c) => c === 'listNodes')).toHaveLength(1);
    expect(m.calls.filter((c) => c === 'listTasks(all)')).toHaveLength(1);
    // Where each task runs comes from that read too: no member is read again.
    expect(m.calls.filter((c) => c === 'getNode')).toHaveLength(0);
    await m.runtime.start(target, replica(0, 'rel_2'));
    expect(m.calls.filter((c) => c === 'listNodes')).toHaveLength(2);
  });

  it('fails the start when the pin cannot be dropped, so a retry drops it', async () => {
    const m = fakeManager(['assigned', 'running'], { failUpdate: 'rpc error: manager gone' });
    await expect(m.runtime.start(target, replica(0))).rejects.toThrow(/manager gone/);
  });
});

describe('SwarmRuntime.start and an image without a shell', () => {
  const specOf = (s: FakeService) =>
    (s.Spec.TaskTemplate as { ContainerSpec: Record<string, unknown> }).ContainerSpec;

  it("looks into an image once for a release's replicas and the next release's, and seals the environment", async () => {
    const m = fakeManager(['running']);
    await Promise.all([0, 1, 2].map((i) => m.runtime.start(target, replica(i))));
    await m.runtime.start(target, replica(0, 'rel_2'));
    expect(m.calls.filter((c) => c.startsWith('createContainer'))).toEqual([
      'createContainer sha256:abc',
    ]);
    // /bin/sh, and env in each directory of the image's PATH.
    expect(m.calls.filter((c) => c.startsWith('head')).sort()).toEqual([
      'head /bin/env',
      'head /bin/sh',
      'head /usr/bin/env',
    ]);
    expect(m.calls.filter((c) => c.startsWith('removeContainer'))).toHaveLength(1);
    expect(m.calls.filter((c) => c === 'createSecret')).toHaveLength(4);
    for (const s of m.services.values()) {
      expect(specOf(s).Env).toEqual([]);
      expect(specOf(s).Secrets).toHaveLength(1);
    }
  });

  it("puts the environment in the spec of an image without /bin/sh, says so on the start's answer, and makes no secret", async () => {
    const m = fakeManager(['running'], { files: ['/app', '/bin/env'] });
    const info = await m.runtime.start(target, replica(0));
    expect(info.warnings).toEqual([envInSpecWarning('the image has no /bin/sh')]);
    expect(info.labels).toEqual({ 'selfdevop.release': 'rel_1' });
    const [service] = [...m.services.values()];
    expect(specOf(service!)).toMatchObject({ Env: ['PORT=8080'] });
    expect(specOf(service!).Secrets).toBeUndefined();
    expect(specOf(service!).Command).toBeUndefined();
    expect(m.calls).not.toContain('createSecret');
    expect(m.calls.filter((c) => c.startsWith('removeContainer'))).toHaveLength(1);
    // A retried start finds the service and says it again.
    expect((await m.runtime.start(target, replica(0))).warnings).toEqual(info.warnings);
  });

  it('looks into no image when there is no environment to deliver', async () => {
    const m = fakeManager(['running'], { files: [] });
    const info = await m.runtime.start(target, { ...replica(0), env: {} });
    expect(info.warnings).toBeUndefined();
    expect(m.calls.filter((c) => c.startsWith('createContainer'))).toEqual([]);
  });

  it('fails the start when the image cannot be looked into, and looks again on the retry', async () => {
    const m = fakeManager(['running'], { probeFails: true });
    await expect(m.runtime.start(target, replica(0))).rejects.toThrow(/engine busy/);
    await expect(m.runtime.start(target, replica(0))).rejects.toThrow(/engine busy/);
    expect(m.calls.filter((c) => c.startsWith('createContainer'))).toHaveLength(2);
    expect(m.services.size).toBe(0);
  });
});

describe('SwarmRuntime while the Swarm has no leader', () => {
  const answering = (error: { statusCode: number; message: string }) => {
    const runtime = new SwarmRuntime();
    (runtime as unknown as { client: () => Promise<unknown> }).client = async () => ({
      listNodes: async () => {
        throw Object.assign(new Error(error.message), { statusCode: error.statusCode });
      },
    });
    return runtime;
  };

  it.each([
    {
      statusCode: 500,
      message:
        '(HTTP code 500) server error - rpc error: code = DeadlineExceeded desc = context deadline exceeded ',
    },
    {
      statusCode: 503,
      message:
        "(HTTP code 503) unexpected - The swarm does not have a leader. It's possible that too few managers are online.",
    },
    { statusCode: 500, message: 'rpc error: code = Unavailable desc = transport is closing' },
  ])('answers $statusCode "$message" as unavailable, so the step is retried', async (error) => {
    await expect(answering(error).members(target)).rejects.toMatchObject({
      kind: 'unavailable',
      code: 'docker_unavailable',
    });
  });

  it('leaves any other server error as it is', async () => {
    const e = await answering({ statusCode: 500, message: 'rpc error: code = Unknown desc = boom' })
      .members(target)
      .catch((x: unknown) => x);
    expect(e).not.toMatchObject({ kind: 'unavailable' });
    expect((e as Error).message).toContain('boom');
  });
});
