/** The Swarm service a release's container becomes: pure, compared by exact equality. */
import { describe, expect, it } from 'vitest';
import { DockerRuntime } from '../../adapters/runtime/docker.ts';
import {
  SwarmRuntime,
  envCandidates,
  envInSpecReason,
  envInSpecWarning,
  envScript,
  envSecretName,
  serviceSpec,
  spreadMember,
  swarmServiceName,
  withSwarm,
} from '../../adapters/runtime/swarm.ts';
import type { ContainerRuntime, ContainerSpec } from '../../core/ports.ts';

const spec: ContainerSpec = {
  name: 'sdo-svc_1-env_1-rel_1-r1',
  image: 'sha256:abc',
  env: { PORT: '8080' },
  labels: { 'selfdevop.release': 'rel_1' },
  containerPort: 8080,
  publishIp: '10.213.0.17',
  memoryMb: 256,
  cpus: 0.5,
  restartPolicy: 'unless-stopped',
  placementLabels: { zone: 'a' },
  network: 'sdo-prj_1',
};

describe('serviceSpec', () => {
  it('is one task, dnsrr, a host-mode port, Swarm restarts, constraints and limits', () => {
    const limits = { MemoryBytes: 256 * 1024 * 1024, NanoCPUs: 500_000_000 };
    expect(serviceSpec(spec)).toEqual({
      Name: 'sdo-svc_1-env_1-rel_1-r1',
      Labels: { 'selfdevop.release': 'rel_1' },
      TaskTemplate: {
        ContainerSpec: {
          Image: 'sha256:abc',
          Env: ['PORT=8080'],
          Labels: { 'selfdevop.release': 'rel_1' },
        },
        Resources: { Limits: limits, Reservations: limits },
        RestartPolicy: { Condition: 'any', Delay: 1_000_000_000 },
        Placement: { Constraints: ['node.labels.zone==a'] },
        LogDriver: { Name: 'json-file', Options: { 'max-size': '10m', 'max-file': '3' } },
        Networks: [{ Target: 'sdo-prj_1' }],
      },
      Mode: { Replicated: { Replicas: 1 } },
      EndpointSpec: {
        Mode: 'dnsrr',
        Ports: [{ Protocol: 'tcp', TargetPort: 8080, PublishMode: 'host' }],
      },
    });
  });

  it("names a release's long container name (real ids: ~96 characters) within Swarm's 63, keeping it in a label", () => {
    const name =
      'sdo-svc_01kbn9d2c7m1v0k3w8x5z2q4r6-env_01kbn9d2c7m1v0k3w8x5z2q4r7-rel_01kbn9d2c7m1v0k3w8x5z2q4r8-r1';
    const long = serviceSpec({ ...spec, name });
    expect((long.Name as string).length).toBe(63);
    expect(long.Name).toBe(swarmServiceName(name));
    expect(long.Labels).toEqual({ 'selfdevop.release': 'rel_1', 'selfdevop.name': name });
    // Two replicas that differ only past the kept prefix still get two services.
    expect(swarmServiceName(name)).not.toBe(swarmServiceName(`${name.slice(0, -1)}2`));
    expect(swarmServiceName(spec.name)).toBe(spec.name);
  });

  it('runs a one-off (a migration) as a job of one task that Swarm never restarts, publishing nothing', () => {
    const job = serviceSpec(
      { ...spec, cmd: ['sh', '-c', 'migrate'], restartPolicy: 'no' },
      { oneOff: true },
    );
    expect(job.Mode).toEqual({ ReplicatedJob: { MaxConcurrent: 1, TotalCompletions: 1 } });
    expect(job.EndpointSpec).toEqual({ Mode: 'dnsrr' });
    expect((job.TaskTemplate as { RestartPolicy: unknown }).RestartPolicy).toEqual({
      Condition: 'none',
    });
    expect(
      (job.TaskTemplate as { ContainerSpec: { Command: string[] } }).ContainerSpec.Command,
    ).toEqual(['sh', '-c', 'migrate']);
  });
});

describe("a worker's health command as the task's health check", () => {
  const worker: ContainerSpec = {
    ...spec,
    containerPort: undefined,
    healthCommand: {
      command: ['sh', '-c', 'test -f /tmp/ready'],
      intervalMs: 1000,
      timeoutMs: 5000,
      retries: 3,
      startPeriodMs: 10_000,
    },
  };
  const checkOf = (s: Record<string, unknown>) =>
    (s.TaskTemplate as { ContainerSpec: { Healthcheck?: unknown } }).ContainerSpec.Healthcheck;

  it('is the Healthcheck of the container spec, durations in ns, the command run without a shell of its own', () => {
    expect(checkOf(serviceSpec(worker))).toEqual({
      Test: ['CMD', 'sh', '-c', 'test -f /tmp/ready'],
      Interval: 1_000_000_000,
      Timeout: 5_000_000_000,
      Retries: 3,
      StartPeriod: 10_000_000_000,
    });
  });

  it("runs through the sealed environment's shim, so the command sees the app's variables", () => {
    const sealed = { secretId: 's1', secretName: 'x-env-1', argv: ['node', 'worker.js'] };
    expect((checkOf(serviceSpec(worker, { sealed })) as { Test: string[] }).Test).toEqual([
      'CMD',
      '/bin/sh',
      '-c',
      '. /run/secrets/selfdevop-env',
      'sh',
      'sh',
      '-c',
      'test -f /tmp/ready',
    ]);
  });

  it('is absent without a health command, and from a one-off', () => {
    expect(checkOf(serviceSpec(spec))).toBeUndefined();
    expect(checkOf(serviceSpec(worker, { oneOff: true }))).toBeUndefined();
  });
});

describe('a sealed environment', () => {
  it('names the secret in the spec, runs the shim with the command, and holds no value', () => {
    const sealed = serviceSpec(spec, {
      sealed: {
        secretId: 'sec1',
        secretName: 'sdo-svc_1-env_1-rel_1-r1-env-0a1b2c3d',
        argv: ['/bin/app', '--port', '8080'],
      },
    });
    const container = (sealed.TaskTemplate as { ContainerSpec: Record<string, unknown> })
      .ContainerSpec;
    expect(container.Env).toEqual([]);
    expect(container.Command).toEqual([
      '/bin/sh',
      '-c',
      '. /run/secrets/selfdevop-env',
      'sh',
      '/bin/app',
      '--port',
      '8080',
    ]);
    expect(container.Args).toBeUndefined();
    expect(container.Secrets).toEqual([
      {
        File: { Name: 'selfdevop-env', UID: '0', GID: '0', Mode: 0o444 },
        SecretID: 'sec1',
        SecretName: 'sdo-svc_1-env_1-rel_1-r1-env-0a1b2c3d',
      },
    ]);
    expect(JSON.stringify(sealed)).not.toContain('PORT=8080');
  });

  it('quotes every value for the shell, so nothing in it is expanded', () => {
    expect(envScript({ A: "it's $HOME `x`", 'dotted.name': 'a=b' })).toBe(
      `exec env 'A=it'\\''s $HOME \`x\`' 'dotted.name=a=b' "$@"\n`,
    );
    expect(envScript({})).toBe('exec env "$@"\n');
  });

  it("keeps secret names within Swarm's 64 characters", () => {
    expect(envSecretName('sdo-a-r1', 'ff00ff00')).toBe('sdo-a-r1-env-ff00ff00');
    const long = envSecretName('x'.repeat(80), 'ff00ff00');
    expect(long.length).toBeLessThanOrEqual(64);
    expect(long).not.toBe(envSecretName(`${'x'.repeat(79)}y`, 'ff00ff00'));
  });
});

describe('an image without a shell', () => {
  it("is found out by what the shim runs: /bin/sh, and env in a directory of the image's PATH", () => {
    expect(envInSpecReason({ sh: true, env: true })).toBeNull();
    expect(envInSpecReason({ sh: false, env: true })).toBe('the image has no /bin/sh');
    expect(envInSpecReason({ sh: true, env: false })).toBe('the image has no env');
    expect(envInSpecReason({ sh: false, env: false })).toBe('the image has no /bin/sh nor env');
    expect(envCandidates(['HOME=/', 'PATH=/app/bin:/usr/bin/:relative:/usr/bin'])).toEqual([
      '/app/bin/env',
      '/usr/bin/env',
    ]);
    // No PATH of its own (FROM scratch): the engine's default is what the shim would search.
    expect(envCandidates([])).toEqual([
      '/usr/local/sbin/env',
      '/usr/local/bin/env',
      '/usr/sbin/env',
      '/usr/bin/env',
      '/sbin/env',
      '/bin/env',
    ]);
  });

  it("puts the environment in the spec's Env, runs the image's own command, and says why in a label", () => {
    const because = envInSpecReason({ sh: false, env: false })!;
    const plain = serviceSpec(
      { ...spec, entrypoint: ['/app'], cmd: ['httpd', '-f'] },
      { envInSpec: because },
    );
    expect(plain.Labels).toEqual({
      'selfdevop.release': 'rel_1',
      'selfdevop.env-in-spec': 'the image has no /bin/sh nor env',
    });
    expect((plain.TaskTemplate as { ContainerSpec: unknown }).ContainerSpec).toEqual({
      Image: 'sha256:abc',
      Env: ['PORT=8080'],
      Labels: { 'selfdevop.release': 'rel_1' },
      Command: ['/app'],
      Args: ['httpd', '-f'],
    });
    // A sealed environment never carries the label, whatever else is passed.
    const sealed = serviceSpec(spec, {
      sealed: { secretId: 's', secretName: 'n', argv: ['/bin/app'] },
      envInSpec: because,
    });
    expect(sealed.Labels).toEqual({ 'selfdevop.release': 'rel_1' });
    expect(envInSpecWarning(because)).toBe(
      "the environment is in the Swarm service's spec in clear text (docker service inspect shows it), not in a Swarm secret: the image has no /bin/sh nor env, which reading it from the secret needs (add a shell to the image to keep it sealed)",
    );
  });
});

/** Every method of the port: adding one to ContainerRuntime without listing it here fails the typecheck. */
const portMethods: Record<keyof ContainerRuntime, true> = {
  ping: true,
  clusterMembers: true,
  setMemberAvailability: true,
  capacity: true,
  usage: true,
  runPiped: true,
  removeNetwork: true,
  build: true,
  localImage: true,
  moveImage: true,
  listImages: true,
  deleteImage: true,
  pruneBuildCache: true,
  resolveImage: true,
  start: true,
  runOnce: true,
  inspect: true,
  list: true,
  stop: true,
  remove: true,
  rename: true,
  exec: true,
  removeVolume: true,
  logs: true,
  followLogs: true,
};

describe('spreading a release over members', () => {
  const member = (id: string, o: Partial<{ ready: boolean; active: boolean }> = {}) => ({
    id,
    ready: o.ready ?? true,
    active: o.active ?? true,
    labels: id === 'c' ? { zone: 'b' } : { zone: 'a' },
  });
  const three = [member('b'), member('a'), member('c')];

  it('gives each replica its own member even when one member carries more tasks', () => {
    // Swarm alone would put all three on the least loaded member, a.
    const tasks = [
      ...Array.from({ length: 4 }, () => ({ nodeId: 'b' })),
      ...Array.from({ length: 2 }, () => ({ nodeId: 'c' })),
    ];
    const placed = [0, 1, 2].map((i) => spreadMember(three, tasks, 'rel_1', i));
    expect(placed).toEqual(['a', 'c', 'b']);
  });

  it("does not count the release's own tasks, so every replica of one start sees the same order", () => {
    const before = [{ nodeId: 'b' }, { nodeId: 'c' }, { nodeId: 'c' }];
    // Replicas 0 and 1 already run when replica 2 reads the tasks.
    const during = [
      ...before,
      { nodeId: 'a', release: 'rel_1' },
      { nodeId: 'b', release: 'rel_1' },
    ];
    expect([0, 1, 2].map((i) => spreadMember(three, before, 'rel_1', i))).toEqual(['a', 'b', 'c']);
    expect(spreadMember(three, during, 'rel_1', 2)).toBe('c');
  });

  it('takes only members that are ready, active and carry the placement labels; round robin past them', () => {
    const members = [member('a'), member('b', { active: false }), member('c'), member('d')];
    expect([0, 1, 2].map((i) => spreadMember(members, [], 'rel_1', i))).toEqual(['a', 'c', 'd']);
    const zoneA = [member('a'), member('b'), member('c'), member('d', { ready: false })];
    expect([0, 1, 2].map((i) => spreadMember(zoneA, [], 'rel_1', i, { zone: 'a' }))).toEqual([
      'a',
      'b',
      'a',
    ]);
  });

  it('pins nothing when fewer than two members may take the replica', () => {
    expect(spreadMember([member('a'), member('b', { ready: false })], [], 'rel_1', 1)).toBeNull();
    expect(spreadMember(three, [], 'rel_1', 0, { zone: 'b' })).toBeNull();
  });

  it("adds the chosen member to the service's constraints, beside the placement labels", () => {
    const placement = (pin?: string) =>
      (serviceSpec(spec, { pin }).TaskTemplate as { Placement: unknown }).Placement;
    expect(placement('m1')).toEqual({ Constraints: ['node.labels.zone==a', 'node.id==m1'] });
    expect(placement()).toEqual({ Constraints: ['node.labels.zone==a'] });
  });
});

describe('withSwarm', () => {
  it('offers every capability of the engine it wraps (a missing one silently turns a feature off: image moves, usage, pruning)', () => {
    const engine = new DockerRuntime() as unknown as Record<string, unknown>;
    const wrapped = withSwarm(new DockerRuntime(), new SwarmRuntime()) as unknown as Record<
      string,
      unknown
    >;
    const offered = Object.keys(portMethods).filter((m) => typeof engine[m] === 'function');
    expect(offered.length).toBeGreaterThan(20);
    expect(offered.filter((m) => typeof wrapped[m] !== 'function')).toEqual([]);
  });
});
