import { execFile, spawn } from 'node:child_process';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  containerCreateOptions,
  DockerRuntime,
  fromDockerTarget,
} from '../../adapters/runtime/docker.ts';
import type { ContainerLogOptions, ContainerSpec } from '../../core/ports.ts';
import { runContainerRuntimeContract } from '../contracts/container-runtime.case.ts';
import {
  dockerTarget,
  ensureTestImages,
  httpGet,
  removeContainersByLabel,
  removeImagesByLabel,
  testImages,
  testRun,
  unreachableTargets,
  waitForStatus,
} from '../support/docker.ts';
import { available } from '../support/services.ts';

const hasDocker = await available('docker');
/** Every container's log rotation (core/releases/plan.ts `containerLogRotation`). */
const rotated = {
  Type: 'local',
  Config: { 'max-size': '10m', 'max-file': '3', compress: 'false' },
};

describe('dockerHost parsing', () => {
  it('reads a unix socket path', () => {
    expect(fromDockerTarget({ dockerHost: 'unix:///var/run/docker.sock' })).toEqual({
      socketPath: '/var/run/docker.sock',
    });
  });

  it('reads tcp without TLS as plain http on 2375 by default', () => {
    const o = fromDockerTarget({ dockerHost: 'tcp://10.0.0.5' });
    expect(o).toMatchObject({ host: '10.0.0.5', port: 2375, protocol: 'http' });
    expect(o).not.toHaveProperty('ca');
    expect(o.agent).toBeDefined();
  });

  it('reads tcp with TLS material as https on 2376 by default', () => {
    const tls = { ca: 'CA PEM', cert: 'CERT PEM', key: 'KEY PEM' };
    expect(fromDockerTarget({ dockerHost: 'tcp://node-1.internal', tls })).toMatchObject({
      host: 'node-1.internal',
      port: 2376,
      protocol: 'https',
      ...tls,
    });
    expect(fromDockerTarget({ dockerHost: 'tcp://[::1]:3376', tls })).toMatchObject({
      host: '::1',
      port: 3376,
    });
  });

  it('reads ssh with its user and port', () => {
    expect(
      fromDockerTarget(
        { dockerHost: 'ssh://deploy@node-2:2222' },
        { sshOptions: { privateKey: 'K' } },
      ),
    ).toMatchObject({
      protocol: 'ssh',
      host: 'node-2',
      port: 2222,
      username: 'deploy',
      sshOptions: { privateKey: 'K', readyTimeout: 5000 },
    });
    expect(fromDockerTarget({ dockerHost: 'ssh://node-3' })).toMatchObject({
      port: 22,
      username: 'root',
    });
  });

  it.each(['http://x:2375', 'docker.sock', 'unix://', 'tcp://', 'npipe:////./pipe/docker'])(
    'refuses %s, naming it',
    (dockerHost) => {
      expect(() => fromDockerTarget({ dockerHost })).toThrow(dockerHost);
    },
  );
});

describe('container create plans', () => {
  const spec: ContainerSpec = {
    name: 'svc-web-rel1',
    image: 'sha256:abc',
    env: { A: '1', B: 'x=y' },
    labels: { 'selfdevop.release': 'rel1' },
    cmd: ['/bin/app', '--flag'],
    containerPort: 3000,
    publishIp: '10.0.0.5',
    memoryMb: 256,
    cpus: 0.5,
    restartPolicy: 'unless-stopped',
  };

  it('publishes the port on publishIp at an ephemeral host port, with limits and restart policy', () => {
    expect(containerCreateOptions(spec)).toEqual({
      name: 'svc-web-rel1',
      Image: 'sha256:abc',
      Env: ['A=1', 'B=x=y'],
      Labels: { 'selfdevop.release': 'rel1' },
      Cmd: ['/bin/app', '--flag'],
      ExposedPorts: { '3000/tcp': {} },
      HostConfig: {
        PortBindings: { '3000/tcp': [{ HostIp: '10.0.0.5', HostPort: '' }] },
        Memory: 256 * 1024 * 1024,
        NanoCpus: 500_000_000,
        RestartPolicy: { Name: 'unless-stopped' },
        LogConfig: rotated,
      },
    });
  });

  it('publishes on loopback when no publishIp is given, and leaves unset limits out', () => {
    const plan = containerCreateOptions({
      ...spec,
      publishIp: undefined,
      memoryMb: null,
      cpus: null,
      cmd: undefined,
    });
    expect(plan.HostConfig).toEqual({
      PortBindings: { '3000/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
      RestartPolicy: { Name: 'unless-stopped' },
      LogConfig: rotated,
    });
    expect(plan).not.toHaveProperty('Cmd');
  });

  it('plans a one-off with no port, no restart and attached output', () => {
    const plan = containerCreateOptions(spec, true);
    expect(plan).not.toHaveProperty('ExposedPorts');
    expect(plan.HostConfig).toEqual({
      Memory: 256 * 1024 * 1024,
      NanoCpus: 500_000_000,
      RestartPolicy: { Name: 'no' },
      LogConfig: rotated,
    });
    expect(plan).toMatchObject({ AttachStdout: true, AttachStderr: true, Tty: false });
  });

  it('plans the host network, bind mounts and a user for the edge npm start runs', () => {
    const plan = containerCreateOptions({
      name: 'selfdevop-caddy-1',
      image: 'selfdevop/caddy:2.11',
      env: {},
      labels: {},
      restartPolicy: 'no',
      hostNetwork: true,
      binds: ['/srv/sdo/caddy/data:/data'],
      user: '1000:1000',
    });
    expect(plan).toEqual({
      name: 'selfdevop-caddy-1',
      Image: 'selfdevop/caddy:2.11',
      Env: [],
      Labels: {},
      User: '1000:1000',
      HostConfig: {
        RestartPolicy: { Name: 'no' },
        LogConfig: rotated,
        NetworkMode: 'host',
        Binds: ['/srv/sdo/caddy/data:/data'],
      },
    });
  });
});

describe.skipIf(!hasDocker)('DockerRuntime contract', () => {
  runContainerRuntimeContract({
    images: testImages,
    make: async () => {
      await ensureTestImages();
      const run = testRun(import.meta.url);
      return {
        runtime: new DockerRuntime(),
        target: dockerTarget,
        unreachable: unreachableTargets,
        httpGet: (published, path) => httpGet(published, path),
        labels: run.labels,
        name: run.name,
        cleanup: async () => {
          await removeContainersByLabel(run.labels);
          await removeImagesByLabel(run.labels);
        },
      };
    },
  });
});

describe.skipIf(!hasDocker)('DockerRuntime on a real engine', () => {
  const run = testRun(import.meta.url);
  const runtime = new DockerRuntime();
  const spec = (what: string, patch: Partial<ContainerSpec> = {}): ContainerSpec => ({
    name: run.name(what),
    image: testImages.app,
    env: {},
    labels: run.labels,
    containerPort: 8080,
    restartPolicy: 'no',
    ...patch,
  });
  const dockerInspect = async (name: string, format: string) =>
    (await promisify(execFile)('docker', ['inspect', '--format', format, name])).stdout.trim();

  beforeAll(ensureTestImages);
  afterAll(() => removeContainersByLabel(run.labels));

  it('applies memory, cpus and restart policy', async () => {
    const s = spec('limits', { memoryMb: 64, cpus: 0.25, restartPolicy: 'unless-stopped' });
    await runtime.start(dockerTarget, s);
    expect(
      await dockerInspect(
        s.name,
        '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.RestartPolicy.Name}}',
      ),
    ).toBe(`${64 * 1024 * 1024} 250000000 unless-stopped`);
  });

  it('rotates the log of every container it starts but piped one-offs (local driver, max-size and max-file)', async () => {
    const s = spec('rotated');
    await runtime.start(dockerTarget, s);
    expect(await dockerInspect(s.name, '{{json .HostConfig.LogConfig}}')).toBe(
      JSON.stringify({
        Type: 'local',
        Config: { compress: 'false', 'max-file': '3', 'max-size': '10m' },
      }),
    );
    const custom = spec('rotated-custom', { logRotation: { maxSizeMb: 1, maxFiles: 2 } });
    await runtime.start(dockerTarget, custom);
    expect(await dockerInspect(custom.name, '{{json .HostConfig.LogConfig.Config}}')).toBe(
      JSON.stringify({ compress: 'false', 'max-file': '2', 'max-size': '1m' }),
    );
  });

  describe('logs', () => {
    const read = async (name: string, options: Partial<ContainerLogOptions> = {}) => {
      const lines = [];
      for await (const l of runtime.logs(dockerTarget, name, {
        follow: false,
        signal: new AbortController().signal,
        ...options,
      }))
        lines.push(l);
      return lines;
    };
    const exited = async (name: string) => {
      for (let k = 0; k < 200; k++) {
        if ((await runtime.inspect(dockerTarget, name))?.state === 'exited') return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`${name} did not exit`);
    };

    it("reads stdout and stderr with the engine's times, across a restart, by range and tail", async () => {
      const s = spec('logs-restart', {
        containerPort: undefined,
        cmd: [
          '/bin/sh',
          '-c',
          `echo "out $(cat /proc/sys/kernel/random/uuid)"; echo err >&2; printf 'no newline'`,
        ],
      });
      await runtime.start(dockerTarget, s);
      await exited(s.name);
      await promisify(execFile)('docker', ['start', s.name]);
      await exited(s.name);
      const lines = await read(s.name);
      // The engine copies stdout and stderr in two goroutines, so which of "out" and "err"
      // is logged first within one run is a race; each stream's own order, the split into
      // runs, and the engine's times in the order the lines come are not.
      const shown = lines.map((l) => [l.stream, l.text.replace(/ [0-9a-f-]{36}$/, ' <uuid>')]);
      const run = [
        ['stdout', 'out <uuid>'],
        ['stderr', 'err'],
        ['stdout', 'no newline'],
      ];
      const sorted = (xs: string[][]) => [...xs].sort((a, b) => a.join().localeCompare(b.join()));
      expect(sorted(shown.slice(0, 3))).toEqual(sorted(run));
      expect(sorted(shown.slice(3))).toEqual(sorted(run));
      for (const stream of ['stdout', 'stderr'])
        expect(shown.filter(([s]) => s === stream)).toEqual(
          [...run, ...run].filter(([s]) => s === stream),
        );
      for (const l of lines) expect(l.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
      // Two runs: two different uuids, so the second read is the restart's, not a repeat.
      expect(new Set(lines.filter((l) => l.text.startsWith('out')).map((l) => l.text)).size).toBe(
        2,
      );
      expect(await read(s.name, { tail: 1 })).toHaveLength(1);
      // Within a run the two streams' times may interleave either way (see above).
      const times = lines.map((l) => l.time);
      const second = [...times.slice(3)].sort()[0]!;
      const firstEnd = [...times.slice(0, 3)].sort()[2]!;
      expect(firstEnd < second).toBe(true);
      expect((await read(s.name, { since: second })).map((l) => l.text)).toEqual(
        lines.slice(3).map((l) => l.text),
      );
      expect((await read(s.name, { until: firstEnd })).length).toBeGreaterThanOrEqual(3);
      expect((await read(s.name, { until: firstEnd })).length).toBeLessThan(6);
    });

    it('cuts a line longer than 8 KiB and streams 20,000 lines without holding them', async () => {
      const s = spec('logs-many', {
        containerPort: undefined,
        cmd: [
          '/bin/sh',
          '-c',
          'i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done; head -c 20000 /dev/zero | tr "\\0" x; echo',
        ],
      });
      await runtime.start(dockerTarget, s);
      await exited(s.name);
      let count = 0;
      let last = '';
      let previous = '';
      let long = '';
      for await (const l of runtime.logs(dockerTarget, s.name, {
        follow: false,
        signal: new AbortController().signal,
      })) {
        expect(l.time >= previous).toBe(true);
        previous = l.time;
        if (l.text.startsWith('x')) long = l.text;
        else last = l.text;
        count++;
      }
      expect(count).toBe(20_001);
      expect(last).toBe('line 19999');
      expect(long.length).toBeLessThanOrEqual(8 * 1024 + 2);
      expect(long.endsWith('…')).toBe(true);
    });

    it('follows a running container until the signal aborts', async () => {
      const s = spec('logs-follow', {
        containerPort: undefined,
        cmd: ['/bin/sh', '-c', 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done'],
      });
      await runtime.start(dockerTarget, s);
      const controller = new AbortController();
      const seen: string[] = [];
      const timer = setTimeout(() => controller.abort(), 20_000);
      for await (const l of runtime.logs(dockerTarget, s.name, {
        follow: true,
        signal: controller.signal,
      })) {
        seen.push(l.text);
        if (seen.length === 3) controller.abort();
      }
      clearTimeout(timer);
      expect(seen).toEqual(['tick 0', 'tick 1', 'tick 2']);
    });

    it('refuses a container that does not exist', async () => {
      await expect(read(run.name('ghost'))).rejects.toMatchObject({ code: 'container_not_found' });
    });
  });

  it('publishes whichever container port the spec names', async () => {
    const info = await runtime.start(
      dockerTarget,
      spec('port', { containerPort: 9090, env: { PORT: '9090' } }),
    );
    const res = await waitForStatus(() => httpGet(info.published!, '/health'), 200);
    expect(res?.status).toBe(200);
  });

  it('kills a container that ignores SIGTERM once the grace is over', async () => {
    const s = spec('stubborn', { cmd: ['/bin/sleep', '3600'], containerPort: undefined });
    await runtime.start(dockerTarget, s);
    const started = Date.now();
    await runtime.stop(dockerTarget, s.name, 1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect((await runtime.inspect(dockerTarget, s.name))?.state).toBe('exited');
  });

  it('gives a one-off its env and keeps only the tail of long output', async () => {
    const small = new DockerRuntime({ maxOutputBytes: 1024 });
    const s = spec('chatty', {
      cmd: ['/bin/sh', '-c', 'echo "greeting=$GREETING"; seq 1 3000'],
      env: { GREETING: 'hi' },
    });
    const lines: string[] = [];
    const result = await small.runOnce(dockerTarget, s, 20_000, (l) => void lines.push(l));
    expect(result.exitCode).toBe(0);
    expect(lines[0]).toBe('greeting=hi');
    expect(lines).toHaveLength(3001);
    expect(result.output.startsWith('[earlier output truncated]\n')).toBe(true);
    expect(result.output.endsWith('\n2999\n3000')).toBe(true);
    expect(Buffer.byteLength(result.output)).toBeLessThan(1100);
  });

  it('names the command that cannot be executed', async () => {
    const missing = await runtime.runOnce(
      dockerTarget,
      spec('no-cmd', { cmd: ['/bin/no-such-migrate'] }),
      20_000,
    );
    expect(missing.exitCode).toBe(127);
    expect(missing.output).toContain('"/bin/no-such-migrate"');
    const notExecutable = await runtime.runOnce(
      dockerTarget,
      spec('not-exec', { cmd: ['/etc/passwd'] }),
      20_000,
    );
    expect(notExecutable.exitCode).toBe(126);
    expect(notExecutable.output).toContain('permission denied');
  });

  it('finishes a one-off even when the line callback throws', async () => {
    const s = spec('bad-sink', { image: testImages.migrateOk, cmd: ['/bin/migrate'] });
    const result = await runtime.runOnce(dockerTarget, s, 20_000, () => {
      throw new Error('sink broke');
    });
    expect(result.exitCode).toBe(0);
    expect(result.output).toContain('migrate migrate-ok: done');
  });

  it('kills a piped one-off whose stdin fails, never closing it as if the input were whole', async () => {
    async function* input(): AsyncGenerator<Uint8Array> {
      yield new TextEncoder().encode('first\n');
      await new Promise((r) => setTimeout(r, 300));
      throw new Error('the backup does not verify');
    }
    const started = Date.now();
    const piped = await runtime.runPiped(
      dockerTarget,
      spec('bad-stdin', {
        containerPort: undefined,
        entrypoint: ['/bin/sh', '-c', 'cat; echo "saw the end of stdin"'],
      }),
      { timeoutMs: 60_000, stdin: input() },
    );
    const chunks: Uint8Array[] = [];
    for await (const c of piped.stdout) chunks.push(c);
    await expect(piped.result).rejects.toThrow('the backup does not verify');
    const out = Buffer.concat(chunks).toString();
    expect(out).toContain('first');
    expect(out).not.toContain('saw the end of stdin');
    // Killed at once, not left waiting on an open stdin until its timeout.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await runtime.inspect(dockerTarget, run.name('bad-stdin'))).toBeNull();
  });

  it("gives a piped one-off's output to its reader only, never to the engine's log", async () => {
    const s = spec('piped-unlogged', {
      containerPort: undefined,
      entrypoint: ['/bin/sh', '-c', 'echo "a row of the dump"; echo "why" >&2; sleep 2'],
    });
    const piped = await runtime.runPiped(dockerTarget, s, { timeoutMs: 60_000 });
    // While it runs: no log driver, so no copy of what it streams on the node's disk.
    expect(await dockerInspect(s.name, '{{.HostConfig.LogConfig.Type}}')).toBe('none');
    const chunks: Uint8Array[] = [];
    for await (const c of piped.stdout) chunks.push(c);
    const result = await piped.result;
    expect(Buffer.concat(chunks).toString()).toBe('a row of the dump\n');
    expect(result).toMatchObject({ exitCode: 0, output: 'why' });
  });

  it("keeps a piped one-off's stderr lines whole when the process writes them in pieces", async () => {
    // Each write is a frame of the engine's stream; a frame's end is no line's end.
    const piped = await runtime.runPiped(
      dockerTarget,
      spec('stderr-pieces', {
        containerPort: undefined,
        entrypoint: [
          '/bin/sh',
          '-c',
          'printf "the d" >&2; sleep 0.2; printf "ump is\\nwhole" >&2; sleep 0.2; printf "; ok" >&2; echo out',
        ],
      }),
      { timeoutMs: 60_000 },
    );
    const chunks: Uint8Array[] = [];
    for await (const c of piped.stdout) chunks.push(c);
    const result = await piped.result;
    expect(result.exitCode).toBe(0);
    expect(result.output).toBe('the dump is\nwhole; ok');
    expect(Buffer.concat(chunks).toString()).toBe('out\n');
  });

  it('reports a slow app unhealthy first and healthy after about 3 s', async () => {
    const info = await runtime.start(dockerTarget, spec('slow', { image: testImages.slow }));
    const started = Date.now();
    await waitForStatus(() => httpGet(info.published!, '/'), 200);
    expect((await httpGet(info.published!, '/health'))?.status).toBe(404);
    expect(
      (await waitForStatus(() => httpGet(info.published!, '/health'), 200, 10_000))?.status,
    ).toBe(200);
    expect(Date.now() - started).toBeGreaterThan(1500);
  });

  it('serves a WebSocket echo that names its version', async () => {
    const info = await runtime.start(dockerTarget, spec('ws', { image: testImages.wsV2 }));
    await waitForStatus(() => httpGet(info.published!, '/health'), 200);
    const reply = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`ws://${info.published}/socket`);
      ws.onopen = () => ws.send('hello');
      ws.onmessage = (e) => {
        resolve(String(e.data));
        ws.close();
      };
      ws.onerror = () => reject(new Error('websocket failed'));
    });
    expect(reply).toBe('v2:hello');
  });

  it('gives up on an engine whose TCP connect gets no answer', async () => {
    // A listener whose process never accepts: once its backlog is full, SYNs go unanswered.
    const child = spawn(
      process.execPath,
      [
        '-e',
        "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>{process.stdout.write(s.address().port+'\\n');Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0)})",
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      const port = await new Promise<number>((resolve) =>
        child.stdout.once('data', (d) => resolve(Number(String(d).trim()))),
      );
      const fillers = [1, 2, 3, 4].map(() =>
        net.connect({ port, host: '127.0.0.1' }).on('error', () => undefined),
      );
      await new Promise((r) => setTimeout(r, 200));
      const started = Date.now();
      const dockerHost = `tcp://127.0.0.1:${port}`;
      await expect(
        new DockerRuntime({ connectTimeoutMs: 300 }).ping({ dockerHost }),
      ).rejects.toThrow(`docker is unavailable: ${dockerHost}: connect ETIMEDOUT`);
      expect(Date.now() - started).toBeLessThan(5000);
      for (const f of fillers) f.destroy();
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('gives up on an engine that accepts but never answers', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const dockerHost = `tcp://127.0.0.1:${port}`;
      await expect(
        new DockerRuntime({ requestTimeoutMs: 300 }).inspect({ dockerHost }, 'x'),
      ).rejects.toThrow(
        `docker is unavailable: ${dockerHost}: no answer to inspect x within 300 ms`,
      );
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});
