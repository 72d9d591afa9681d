import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCoreError } from '../../core/errors.ts';
import type {
  ContainerRuntime,
  ContainerSpec,
  DockerTarget,
  LogLineFilter,
} from '../../core/ports.ts';
import type { TestImages } from '../support/docker.ts';
import { tarOf } from '../support/tar.ts';

/** What one implementation gives the contract. */
export interface ContainerRuntimeHarness {
  runtime: ContainerRuntime;
  target: DockerTarget;
  /** Targets whose engine does not answer; every call there must be Unavailable naming the host. */
  unreachable: DockerTarget[];
  /** An HTTP GET to a published host:port as the edge would send it; null when nothing answers. */
  httpGet(published: string, path: string): Promise<{ status: number; body: string } | null>;
  /** Labels on every container the suite makes (cleanup finds them by these). */
  labels: Record<string, string>;
  /** Unique container names for this run. */
  name(what: string): string;
  cleanup(): Promise<void>;
  /**
   * Where a started container's port is published (a regexp source): the requested
   * `publishIp` on an engine (default `127.0.0.1`); a Swarm publishes on the address
   * of the member running the task.
   */
  publishedHost?: string;
  /** What a container id looks like; default hex (an engine's), a Swarm's is base 36. */
  idPattern?: RegExp;
  /** Merged into every spec the suite starts (a Swarm pins its tasks to a member). */
  specDefaults?: Partial<ContainerSpec>;
}

export interface ContainerRuntimeContractOptions {
  make: () => Promise<ContainerRuntimeHarness>;
  images: TestImages;
  /** How long an app may take from start to its first 200; generous for shared machines. */
  healthDeadlineMs?: number;
}

/** Polls until check returns a value (not undefined) or the deadline passes. */
async function eventually<T>(
  check: () => Promise<T | undefined>,
  deadlineMs: number,
  what: string,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`${what} did not happen within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The behaviour every ContainerRuntime shares; each implementation's test calls this once. */
export function runContainerRuntimeContract({
  make,
  images,
  healthDeadlineMs = 10_000,
}: ContainerRuntimeContractOptions): void {
  let h: ContainerRuntimeHarness;
  const spec = (what: string, patch: Partial<ContainerSpec> = {}): ContainerSpec => ({
    name: h.name(what),
    image: images.app,
    env: {},
    labels: { ...h.labels },
    containerPort: 8080,
    publishIp: '127.0.0.1',
    restartPolicy: 'no',
    ...h.specDefaults,
    ...patch,
  });
  const hostRe = () => h.publishedHost ?? '127\\.0\\.0\\.1';
  const publishedRe = () => new RegExp(`^${hostRe()}:\\d+$`);
  const bindingOf = (published: string) => ({
    containerPort: 8080,
    hostIp: published.split(':')[0],
    hostPort: published.split(':')[1],
  });
  const answer = (published: string, path: string, status = 200) =>
    eventually(
      async () => {
        const res = await h.httpGet(published, path);
        return res?.status === status ? res : undefined;
      },
      healthDeadlineMs,
      `GET ${path} answering ${status}`,
    );
  const errorOf = async (p: Promise<unknown>): Promise<Error & { code?: string }> => {
    try {
      await p;
    } catch (e) {
      return e as Error & { code?: string };
    }
    throw new Error('expected a rejection');
  };

  beforeAll(async () => {
    h = await make();
  });
  afterAll(async () => {
    await h?.cleanup();
  });

  describe('images', () => {
    it('resolves an image to its sha256 content digest, the same each time', async () => {
      const digest = await h.runtime.resolveImage(h.target, images.app);
      expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(await h.runtime.resolveImage(h.target, images.app)).toBe(digest);
      expect(await h.runtime.resolveImage(h.target, images.appV2)).not.toBe(digest);
    });

    it('accepts the digest it returned as an image reference', async () => {
      const digest = await h.runtime.resolveImage(h.target, images.app);
      expect(await h.runtime.resolveImage(h.target, digest)).toBe(digest);
    });

    it('rejects an unknown image with an error naming it', async () => {
      const e = await errorOf(h.runtime.resolveImage(h.target, images.missing));
      expect(isCoreError(e)).toBe(true);
      expect(e.code).toBe('image_not_found');
      expect(e.message).toContain(
        `image ${images.missing} not found on node and could not be pulled`,
      );
    });

    it('refuses to start a container of an unknown image', async () => {
      const s = spec('missing-image', { image: images.missing });
      const e = await errorOf(h.runtime.start(h.target, s));
      expect(e.code).toBe('image_not_found');
      expect(await h.runtime.inspect(h.target, s.name)).toBeNull();
    });
  });

  describe('builds', () => {
    it('builds a tagged image from a streamed context, each output line as it comes, and knows the image after', async () => {
      const runtime = h.runtime;
      if (!runtime.build || !runtime.localImage) throw new Error('a runtime here must build');
      const nonce = `${process.pid}-${Date.now()}`;
      const tag = `${h.name('built')}:${nonce}`;
      async function* context() {
        yield tarOf({
          'build/Dockerfile': `FROM ${images.app}\nENV NONCE=${nonce}\nRUN echo contract-build-${nonce}\n`,
        });
      }
      expect(await runtime.localImage(h.target, tag)).toBeNull();
      const lines: string[] = [];
      const result = await runtime.build(
        h.target,
        {
          tag,
          context: context(),
          dockerfile: 'build/Dockerfile',
          buildArgs: {},
          labels: { ...h.labels },
          memoryMb: 256,
          cpus: 1,
          timeoutMs: 60_000,
        },
        (line) => void lines.push(line),
      );
      expect(result).toEqual({
        imageId: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
        error: null,
        timedOut: false,
      });
      expect(lines.length).toBeGreaterThan(0);
      expect(await runtime.localImage(h.target, tag)).toBe(result.imageId);
      // Usable wherever an image is: started, it serves like the image it was built from.
      const info = await runtime.start(h.target, spec('from-build', { image: tag }));
      expect(info.state).toBe('running');
      await answer(info.published!, '/health');
    });

    it('says a build target that does not answer is unavailable', async () => {
      const runtime = h.runtime;
      for (const target of h.unreachable) {
        const e = await errorOf(runtime.localImage!(target, 'any:1'));
        expect(isCoreError(e) && (e as { kind?: string }).kind).toBe('unavailable');
      }
    });
  });

  describe('long-running containers', () => {
    it('starts a container whose app answers on the published loopback port', async () => {
      const s = spec('serve');
      const info = await h.runtime.start(h.target, s);
      expect(info).toMatchObject({ name: s.name, state: 'running' });
      expect(info.id).toMatch(h.idPattern ?? /^[0-9a-f]{12,64}$/);
      expect(info.published).toMatch(publishedRe());
      // Every binding as the engine reports it, for the core to judge: the requested port on
      // the requested address, at the same host port as `published`.
      expect(info.ports).toContainEqual(bindingOf(info.published!));
      expect(info.ports!.every((p) => p.containerPort === 8080)).toBe(true);
      const again = await h.runtime.inspect(h.target, s.name);
      expect(again?.ports).toEqual(info.ports);
      const home = await answer(info.published!, '/');
      expect(home.body).toContain('v1');
      expect((await answer(info.published!, '/health')).status).toBe(200);
    });

    it('applies env and labels', async () => {
      const s = spec('env', {
        env: { GREETING: 'hello from selfdevop', SECRET_TOKEN: 's3cr=t' },
        labels: { ...h.labels, 'selfdevop.release': 'rel_1', 'selfdevop.role': 'green' },
      });
      const info = await h.runtime.start(h.target, s);
      expect(info.labels).toMatchObject(s.labels);
      expect((await answer(info.published!, '/env/GREETING')).body).toBe('hello from selfdevop');
      expect((await answer(info.published!, '/env/SECRET_TOKEN')).body).toBe('s3cr=t');
      expect((await h.runtime.inspect(h.target, s.name))?.labels).toMatchObject(s.labels);
    });

    it('returns the existing container when started twice with the same name', async () => {
      const s = spec('twice');
      const first = await h.runtime.start(h.target, s);
      const second = await h.runtime.start(h.target, { ...s, env: { OTHER: '1' } });
      expect(second.id).toBe(first.id);
      expect(second.published).toBe(first.published);
      expect(await h.runtime.list(h.target, { ...h.labels, 'selfdevop.case': 'twice' })).toEqual(
        [],
      );
      const all = await h.runtime.list(h.target, h.labels);
      expect(all.filter((c) => c.name === s.name)).toHaveLength(1);
    });

    it('starts a stopped container again when started with its name', async () => {
      const s = spec('restart');
      const first = await h.runtime.start(h.target, s);
      await h.runtime.stop(h.target, s.name, 5);
      const again = await h.runtime.start(h.target, s);
      expect(again).toMatchObject({ id: first.id, state: 'running' });
      expect(again.published).toMatch(publishedRe());
      await answer(again.published!, '/health');
    });

    it('lists containers by labels, sorted by name, stopped ones too', async () => {
      const a = spec('list-a', {
        labels: { ...h.labels, 'selfdevop.case': 'list', 'selfdevop.role': 'list-blue' },
      });
      const b = spec('list-b', {
        labels: { ...h.labels, 'selfdevop.case': 'list', 'selfdevop.role': 'list-green' },
      });
      await h.runtime.start(h.target, b);
      await h.runtime.start(h.target, a);
      await h.runtime.stop(h.target, b.name, 5);
      const both = await h.runtime.list(h.target, { ...h.labels, 'selfdevop.case': 'list' });
      expect(both.map((c) => [c.name, c.state])).toEqual([
        [a.name, 'running'],
        [b.name, 'exited'],
      ]);
      const green = await h.runtime.list(h.target, { ...h.labels, 'selfdevop.role': 'list-green' });
      expect(green.map((c) => c.name)).toEqual([b.name]);
      expect(green[0]?.published).toBeNull();
      expect(green[0]?.ports).toEqual([]);
      const blue = await h.runtime.list(h.target, { ...h.labels, 'selfdevop.role': 'list-blue' });
      expect(blue[0]?.published).toMatch(publishedRe());
      expect(blue[0]?.ports).toContainEqual(bindingOf(blue[0]!.published!));
    });

    it('stops a container: it shows exited, unpublished, and stopping again is fine', async () => {
      const s = spec('stop');
      const info = await h.runtime.start(h.target, s);
      await answer(info.published!, '/health');
      await h.runtime.stop(h.target, info.id, 10);
      expect(await h.runtime.inspect(h.target, s.name)).toMatchObject({
        id: info.id,
        state: 'exited',
        published: null,
      });
      expect(await h.httpGet(info.published!, '/health')).toBeNull();
      await h.runtime.stop(h.target, s.name, 10);
    });

    it('removes a container, running or not; removing or stopping a missing one is fine', async () => {
      const s = spec('remove');
      const info = await h.runtime.start(h.target, s);
      await h.runtime.remove(h.target, s.name);
      expect(await h.runtime.inspect(h.target, s.name)).toBeNull();
      expect(await h.runtime.inspect(h.target, info.id)).toBeNull();
      await h.runtime.remove(h.target, s.name);
      await h.runtime.stop(h.target, s.name, 1);
    });

    it('renames a running container: it keeps running and answering under the new name only; a taken name or a missing container is refused', async () => {
      const s = spec('rename');
      if (h.target.swarm) {
        // A Swarm service keeps the name it was made with: refused, so a warm reuse starts fresh.
        await expect(h.runtime.rename!(h.target, s.name, h.name('renamed'))).rejects.toThrow(
          'renaming a service is not supported on a Swarm target',
        );
        return;
      }
      const info = await h.runtime.start(h.target, s);
      await answer(info.published!, '/health');
      const renamed = h.name('renamed');
      await h.runtime.rename!(h.target, s.name, renamed);
      expect(await h.runtime.inspect(h.target, s.name)).toBeNull();
      expect(await h.runtime.inspect(h.target, renamed)).toMatchObject({
        id: info.id,
        name: renamed,
        state: 'running',
        labels: expect.objectContaining(s.labels),
      });
      expect((await h.httpGet(info.published!, '/health'))?.status).toBe(200);
      const other = await h.runtime.start(h.target, spec('rename-other'));
      await expect(h.runtime.rename!(h.target, other.id, renamed)).rejects.toThrow();
      await expect(h.runtime.rename!(h.target, h.name('ghost'), h.name('x'))).rejects.toThrow();
      expect((await h.runtime.inspect(h.target, other.id))?.name).toBe(other.name);
      await h.runtime.remove(h.target, renamed);
    });

    it('inspects a container that never existed as null', async () => {
      expect(await h.runtime.inspect(h.target, h.name('never'))).toBeNull();
    });

    it('reports a crashing app as exited', async () => {
      const s = spec('crash', { image: images.crash });
      await h.runtime.start(h.target, s);
      const info = await eventually(
        async () => {
          const i = await h.runtime.inspect(h.target, s.name);
          return i?.state === 'exited' ? i : undefined;
        },
        healthDeadlineMs,
        'the crash container exiting',
      );
      expect(info.published).toBeNull();
    });

    it('serves an unhealthy app whose health path never answers 200', async () => {
      const info = await h.runtime.start(h.target, spec('unhealthy', { image: images.unhealthy }));
      await answer(info.published!, '/');
      expect((await h.httpGet(info.published!, '/health'))?.status).toBe(404);
    });
  });

  describe('one-off containers', () => {
    it('runs to exit 0, streams each line and returns the output', async () => {
      const lines: string[] = [];
      const s = spec('migrate-ok', {
        image: images.migrateOk,
        cmd: ['/bin/migrate'],
        containerPort: undefined,
      });
      const result = await h.runtime.runOnce(h.target, s, 20_000, (l) => void lines.push(l));
      expect(result).toMatchObject({ exitCode: 0, timedOut: false });
      expect(result.output).toContain('applying 001_init');
      expect(lines).toEqual(result.output.split('\n'));
      expect(await h.runtime.inspect(h.target, s.name)).toBeNull();
    });

    it('returns a failing exit code with the error output', async () => {
      const s = spec('migrate-fail', { image: images.migrateFail, cmd: ['/bin/migrate'] });
      const result = await h.runtime.runOnce(h.target, s, 20_000);
      expect(result).toMatchObject({ exitCode: 3, timedOut: false });
      expect(result.output).toContain('error: 002_users failed');
      expect(result.output).toContain('applying 001_init');
      expect(await h.runtime.inspect(h.target, s.name)).toBeNull();
    });

    it('kills a one-off at its timeout, reports timedOut and removes it', async () => {
      const s = spec('migrate-hang', { image: images.app, cmd: ['/bin/migrate-hang'] });
      const started = Date.now();
      const result = await h.runtime.runOnce(h.target, s, 1500);
      expect(result).toMatchObject({ exitCode: null, timedOut: true });
      expect(result.output).toContain('never finishes');
      expect(Date.now() - started).toBeLessThan(15_000);
      expect(await h.runtime.inspect(h.target, s.name)).toBeNull();
    });

    it('runs again under a name a crashed attempt left behind', async () => {
      const s = spec('retry', { image: images.migrateOk, cmd: ['/bin/migrate'] });
      expect((await h.runtime.runOnce(h.target, s, 20_000)).exitCode).toBe(0);
      expect((await h.runtime.runOnce(h.target, s, 20_000)).exitCode).toBe(0);
    });

    it('reports a command the image does not have as exit 127, not as an engine failure', async () => {
      const s = spec('no-such-cmd', { image: images.migrateOk, cmd: ['/bin/no-such-migrate'] });
      const result = await h.runtime.runOnce(h.target, s, 20_000);
      expect(result).toMatchObject({ exitCode: 127, timedOut: false });
      expect(result.output).toContain('no such file or directory');
      expect(await h.runtime.inspect(h.target, s.name)).toBeNull();
    });

    it('refuses an unknown image', async () => {
      const s = spec('migrate-missing', { image: images.missing, cmd: ['/bin/migrate'] });
      expect((await errorOf(h.runtime.runOnce(h.target, s, 5000))).code).toBe('image_not_found');
      expect(await h.runtime.inspect(h.target, s.name)).toBeNull();
    });
  });

  describe('logs', () => {
    it('follows a container from its first line until the signal aborts', async () => {
      if (!h.runtime.followLogs) throw new Error('followLogs is part of this runtime');
      const s = spec('logs');
      await h.runtime.start(h.target, s);
      const seen: [string, string][] = [];
      const controller = new AbortController();
      const following = h.runtime.followLogs(
        h.target,
        s.name,
        (line, stream) => {
          seen.push([line, stream]);
          if (line.includes('listening')) controller.abort();
        },
        controller.signal,
      );
      const timer = setTimeout(() => controller.abort(), healthDeadlineMs);
      await following;
      clearTimeout(timer);
      expect(seen).toContainEqual(['app v1 listening on :8080 (mode normal)', 'stdout']);
    });

    it('answers only the lines a search keeps, the same as testing every line read', async () => {
      if (!h.runtime.logs) throw new Error('logs is part of this runtime');
      const s = spec('logs-filter');
      await h.runtime.start(h.target, s);
      const read = async (filter?: LogLineFilter) => {
        const lines = [];
        for await (const l of h.runtime.logs!(h.target, s.name, {
          follow: false,
          signal: new AbortController().signal,
          ...(filter ? { filter } : {}),
        }))
          lines.push(l);
        return lines;
      };
      const all = await eventually(
        async () => {
          const lines = await read();
          return lines.some((l) => l.text.includes('listening')) ? lines : undefined;
        },
        healthDeadlineMs,
        'the listening line',
      );
      // The literal is what every kept line holds: the adapter may skip by it, never keep
      // a line the test refuses, and never drop one the test keeps.
      const listening = {
        literal: 'listening on',
        test: (t: string) => t.includes('listening on'),
      };
      const kept = await read(listening);
      expect(kept).toEqual(all.filter((l) => l.text.includes('listening on')));
      expect(kept.map((l) => l.text)).toContain('app v1 listening on :8080 (mode normal)');
      expect(
        await read({ literal: 'no such text', test: (t) => t.includes('no such text') }),
      ).toEqual([]);
      await h.runtime.stop(h.target, s.name, 5);
    });

    it('stops following when the container ends', async () => {
      const s = spec('logs-end');
      await h.runtime.start(h.target, s);
      const controller = new AbortController();
      const timer = setTimeout(
        () => controller.abort(new Error('follow did not end')),
        healthDeadlineMs,
      );
      const following = h.runtime.followLogs!(h.target, s.name, () => undefined, controller.signal);
      await new Promise((r) => setTimeout(r, 100));
      await h.runtime.stop(h.target, s.name, 5);
      await following;
      clearTimeout(timer);
      expect(controller.signal.aborted).toBe(false);
    });

    it('rejects following a container that does not exist', async () => {
      const e = await errorOf(
        h.runtime.followLogs!(
          h.target,
          h.name('ghost'),
          () => undefined,
          new AbortController().signal,
        ),
      );
      expect(e.code).toBe('container_not_found');
    });
  });

  describe('unreachable engines', () => {
    it('answers every call with Unavailable naming the host', async () => {
      for (const target of h.unreachable) {
        for (const call of [
          () => h.runtime.ping(target),
          () => h.runtime.resolveImage(target, images.app),
          () => h.runtime.start(target, spec('unreachable')),
          () => h.runtime.runOnce(target, spec('unreachable-once'), 1000),
          () => h.runtime.inspect(target, 'x'),
          () => h.runtime.list(target, h.labels),
          () => h.runtime.stop(target, 'x', 1),
          () => h.runtime.remove(target, 'x'),
        ]) {
          const e = await errorOf(call());
          expect(e.code).toBe('docker_unavailable');
          expect(e.message).toContain(`docker is unavailable: ${target.dockerHost}: `);
        }
      }
    });

    it('pings a reachable engine', async () => {
      await h.runtime.ping(h.target);
    });
  });
}
