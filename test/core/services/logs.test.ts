/**
 * App logs with the in-memory ports: the merge across replicas and nodes, search, tail,
 * ranges, a node that does not answer, following (with a new release's container appearing),
 * and the cloud API's honest refusal. The same reads against a real Docker Engine are in
 * test/integration/service-logs.test.ts.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../adapters/clock/manual.ts';
import { SystemClock } from '../../../adapters/clock/system.ts';
import { MemoryRuntime } from '../../../adapters/runtime/memory.ts';
import { NoEngineRuntime } from '../../../adapters/runtime/none.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import { MemoryKeyVault } from '../../../adapters/vault/memory.ts';
import type { CoreDeps, OrgPrincipal } from '../../../core/deps.ts';
import { isCoreError } from '../../../core/errors.ts';
import type { Clock, ContainerRuntime, ContainerSpec } from '../../../core/ports.ts';
import {
  afterTime,
  mergeByTime,
  openServiceLogs,
  readAhead,
  serviceLogsQuery,
  type AppLogEvent,
} from '../../../core/services/logs.ts';
import { aNode, aProject, aService, anEnvironment, anOrg } from '../../contracts/store/builders.ts';

const orgId = 'org_l';
const viewer: OrgPrincipal = {
  actorType: 'user',
  actorId: 'usr_1',
  userId: 'usr_1',
  orgId,
  role: 'viewer',
};
const t = (s: number) => `2026-01-01T00:00:${String(s).padStart(2, '0')}.000000000Z`;

describe('app logs', () => {
  let store: MemoryStore;
  let runtime: MemoryRuntime;
  let serviceId: string;
  let envId: string;
  const hostA = 'tcp://node-a:2375';
  const hostB = 'tcp://node-b:2375';

  const deps = (
    rt: ContainerRuntime = runtime,
    clock: Clock = new ManualClock('2026-01-01T00:01:00Z'),
  ) =>
    ({
      store,
      clock,
      release: { runtime: rt, vault: new MemoryKeyVault() },
    }) as unknown as CoreDeps & {
      release: { runtime: ContainerRuntime; vault: MemoryKeyVault };
    };

  const spec = (
    name: string,
    labels = { 'selfdevop.service': serviceId, 'selfdevop.environment': envId },
  ): ContainerSpec => ({
    name,
    image: 'acme/web:1',
    env: {},
    labels,
    restartPolicy: 'unless-stopped',
  });

  const read = async (query: Record<string, string>, d = deps()) => {
    const events: AppLogEvent[] = [];
    const signal = new AbortController().signal;
    for await (const e of await openServiceLogs(
      d,
      viewer,
      serviceId,
      serviceLogsQuery.parse(query),
      signal,
    ))
      events.push(e);
    return events;
  };
  const texts = (events: AppLogEvent[]) =>
    events.map((e) =>
      e.type === 'line'
        ? `${e.line.replica}@${e.line.node} ${e.line.text}`
        : e.type === 'more'
          ? `more since ${e.since}`
          : `! ${e.message}`,
    );

  const errorOf = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (e) {
      if (isCoreError(e)) return { code: e.code, message: e.message };
      throw e;
    }
    throw new Error('expected a refusal');
  };

  beforeEach(async () => {
    store = new MemoryStore();
    runtime = new MemoryRuntime();
    runtime.addImage('acme/web:1');
    await store.withOrg(orgId, async (r) => {
      await r.orgs.insert(anOrg({ id: orgId }));
      const p = aProject(orgId);
      await r.projects.insert(p);
      const env = anEnvironment(orgId, p.id);
      await r.environments.insert(env);
      envId = env.id;
      const svc = aService(orgId, p.id);
      await r.services.insert(svc);
      serviceId = svc.id;
      await r.nodes.insert(aNode(orgId, { name: 'a', dockerHost: hostA }));
      await r.nodes.insert(aNode(orgId, { name: 'b', dockerHost: hostB }));
    });
    // Replicas 1 and 2 of the current release on two nodes, the previous release's container
    // still on node a (stopped), and another service's container that must not show.
    await runtime.start({ dockerHost: hostA }, spec('web-r2-1'));
    await runtime.start({ dockerHost: hostB }, spec('web-r2-2'));
    await runtime.start({ dockerHost: hostA }, spec('web-r1-1'));
    await runtime.start(
      { dockerHost: hostA },
      spec('other', { 'selfdevop.service': 'svc_other', 'selfdevop.environment': envId }),
    );
    runtime.emitLog(hostA, 'web-r1-1', 'old: booted', 'stdout', t(1));
    runtime.emitLog(hostA, 'web-r1-1', 'old: GET /a 500', 'stderr', t(4));
    runtime.emitLog(hostA, 'web-r2-1', 'new1: booted', 'stdout', t(5));
    runtime.emitLog(hostB, 'web-r2-2', 'new2: booted', 'stdout', t(6));
    runtime.emitLog(hostA, 'web-r2-1', 'new1: GET /b 200', 'stdout', t(7));
    runtime.emitLog(hostB, 'web-r2-2', 'new2: GET /c 503', 'stderr', t(8));
    runtime.emitLog(hostA, 'other', 'other: secret', 'stdout', t(8));
    await runtime.stop({ dockerHost: hostA }, 'web-r1-1', 0);
  });

  it('merges every replica of the service environment in time order, each line named', async () => {
    const events = await read({ since: '2026-01-01T00:00:00Z' });
    expect(texts(events)).toEqual([
      'web-r1-1@a old: booted',
      'web-r1-1@a old: GET /a 500',
      'web-r2-1@a new1: booted',
      'web-r2-2@b new2: booted',
      'web-r2-1@a new1: GET /b 200',
      'web-r2-2@b new2: GET /c 503',
    ]);
    expect(events[1]).toEqual({
      type: 'line',
      line: {
        time: t(4),
        replica: 'web-r1-1',
        node: 'a',
        stream: 'stderr',
        text: 'old: GET /a 500',
      },
    });
  });

  it('searches by substring, by a regular expression, ignoring case, within a time range', async () => {
    expect(texts(await read({ grep: 'GET /', since: '1h' }))).toEqual([
      'web-r1-1@a old: GET /a 500',
      'web-r2-1@a new1: GET /b 200',
      'web-r2-2@b new2: GET /c 503',
    ]);
    expect(texts(await read({ grep: 'GET /. 5\\d\\d$', regex: 'true', since: '1h' }))).toEqual([
      'web-r1-1@a old: GET /a 500',
      'web-r2-2@b new2: GET /c 503',
    ]);
    expect(
      texts(await read({ grep: 'BOOTED', ignoreCase: 'true', since: t(3), until: t(5) })),
    ).toEqual(['web-r2-1@a new1: booted']);
  });

  it('pages a range read at its limit with a more marker whose since reads the rest', async () => {
    const first = await read({ since: '1h', grep: 'GET', limit: '2' });
    expect(texts(first)).toEqual([
      'web-r1-1@a old: GET /a 500',
      'web-r2-1@a new1: GET /b 200',
      `more since ${afterTime(t(7))}`,
    ]);
    const more = first.at(-1) as { type: 'more'; since: string };
    // The next page starts after the last line answered, with no repeat and no gap.
    expect(texts(await read({ since: more.since, grep: 'GET', limit: '2' }))).toEqual([
      'web-r2-2@b new2: GET /c 503',
    ]);
    // Exactly the limit left: no marker, since nothing more is there.
    expect(texts(await read({ since: '1h', grep: 'GET', limit: '3' }))).toHaveLength(3);
    expect(serviceLogsQuery.safeParse({ limit: '0' }).success).toBe(false);
    expect(serviceLogsQuery.safeParse({ limit: '5001' }).success).toBe(false);
  });

  it('answers the newest lines of all replicas with tail (of the matches, with a search)', async () => {
    expect(texts(await read({ tail: '2' }))).toEqual([
      'web-r2-1@a new1: GET /b 200',
      'web-r2-2@b new2: GET /c 503',
    ]);
    expect(texts(await read({ tail: '2', grep: 'booted' }))).toEqual([
      'web-r2-1@a new1: booted',
      'web-r2-2@b new2: booted',
    ]);
  });

  it('says which node could not be read and reads the others', async () => {
    runtime.setReachable(hostB, false, 'connection refused');
    const events = await read({ since: '1h', grep: 'booted' });
    expect(texts(events)).toEqual([
      expect.stringMatching(/^! node b: its logs could not be read \(.*connection refused\)$/),
      'web-r1-1@a old: booted',
      'web-r2-1@a new1: booted',
    ]);
  });

  it('refuses a bad range or search with a 400 naming the limit, and an unknown service with a 404', async () => {
    const signal = new AbortController().signal;
    const open = (q: Record<string, string>, id = serviceId) =>
      openServiceLogs(deps(), viewer, id, serviceLogsQuery.parse(q), signal);
    expect(await errorOf(open({ since: '3660d' }))).toEqual({
      code: 'invalid_input',
      message: expect.stringContaining('at most 31 days'),
    });
    expect(
      await errorOf(open({ since: '2016-01-01T00:00:00Z', until: '2026-01-01T00:00:00Z' })),
    ).toMatchObject({
      message: expect.stringContaining('at most 31 days'),
    });
    expect((await errorOf(open({ since: 'yesterday' }))).message).toContain(
      'since: an ISO 8601 time',
    );
    expect((await errorOf(open({ since: t(9), until: t(2) }))).message).toContain(
      'since: must be before until',
    );
    expect((await errorOf(open({ follow: 'true', until: t(2) }))).message).toContain(
      'a followed log has no end',
    );
    expect((await errorOf(open({ grep: '(a)\\1', regex: 'true' }))).message).toContain(
      'backreferences',
    );
    expect(await errorOf(open({}, 'svc_nope'))).toMatchObject({
      code: expect.stringMatching(/not_found$/),
    });
    expect(await errorOf(open({ environment: 'staging' }))).toMatchObject({
      code: expect.stringMatching(/not_found$/),
    });
    expect(serviceLogsQuery.safeParse({ tail: '100000' }).success).toBe(false);
  });

  it('is unavailable, saying why, where the process reaches no engine (the cloud API)', async () => {
    const e = await errorOf(
      openServiceLogs(
        deps(new NoEngineRuntime()),
        viewer,
        serviceId,
        serviceLogsQuery.parse({}),
        new AbortController().signal,
      ),
    );
    expect(e.code).toBe('logs_unavailable');
    expect(e.message).toContain('app logs stay on the nodes');
  });

  it('follows: the past in order, then live lines of every running replica and of a new one', async () => {
    // The lines above are from January; this one is from now (the memory engine's real clock).
    runtime.emitLog(hostB, 'web-r2-2', 'new2: recent');
    const controller = new AbortController();
    const events = await openServiceLogs(
      deps(runtime, new SystemClock()),
      viewer,
      serviceId,
      serviceLogsQuery.parse({ follow: 'true', tail: '1' }),
      controller.signal,
      { rescanMs: 20 },
    );
    const it = events[Symbol.asyncIterator]();
    const next = async () => {
      const r = await it.next();
      if (r.done) throw new Error('the follow ended');
      return texts([r.value])[0];
    };
    expect(await next()).toBe('web-r2-2@b new2: recent');
    runtime.emitLog(hostB, 'web-r2-2', 'new2: live');
    expect(await next()).toBe('web-r2-2@b new2: live');
    runtime.emitLog(hostA, 'web-r2-1', 'new1: live');
    expect(await next()).toBe('web-r2-1@a new1: live');
    // A new release's container appears: the next rescan reads it from its first line.
    await runtime.start({ dockerHost: hostB }, spec('web-r3-1'));
    runtime.emitLog(hostB, 'web-r3-1', 'new3: booted');
    expect(await next()).toBe('web-r3-1@b new3: booted');
    controller.abort();
    expect((await it.next()).done).toBe(true);
  });

  it('counts one nanosecond on, across a second', () => {
    expect(afterTime('2026-01-01T00:00:01.000000009Z')).toBe('2026-01-01T00:00:01.000000010Z');
    expect(afterTime('2026-01-01T00:00:01.999999999Z')).toBe('2026-01-01T00:00:02.000000000Z');
  });
});

describe('readAhead (each replica read on while the merge holds another one’s line)', () => {
  /** A source that counts what was pulled from it and can fail after `failAt` items. */
  const counting = (n: number, failAt = Infinity) => {
    const seen = { pulled: 0, closed: false };
    async function* gen() {
      try {
        for (let k = 0; k < n; k++) {
          if (k === failAt) throw new Error('engine went away');
          seen.pulled++;
          yield k;
        }
      } finally {
        seen.closed = true;
      }
    }
    return { seen, source: gen() };
  };
  const settle = () => new Promise((r) => setTimeout(r, 20));

  it('pulls up to its bound before anyone asks, and on as the consumer takes', async () => {
    const { seen, source } = counting(100);
    const it = readAhead(source, 8, new AbortController())[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value).toBe(0);
    await settle();
    // Bounded: the item given out, the buffer full, one pull that waits for room.
    expect(seen.pulled).toBeGreaterThanOrEqual(8);
    expect(seen.pulled).toBeLessThanOrEqual(10);
    const rest: number[] = [];
    for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value);
    expect(rest).toEqual(Array.from({ length: 99 }, (_, k) => k + 1));
    expect(seen.closed).toBe(true);
  });

  it('gives the items before a failure, then the failure', async () => {
    const { source } = counting(10, 3);
    const got: number[] = [];
    await expect(
      (async () => {
        for await (const v of readAhead(source, 4, new AbortController())) got.push(v);
      })(),
    ).rejects.toThrow('engine went away');
    expect(got).toEqual([0, 1, 2]);
  });

  it('aborts the read still waiting and closes the source when the consumer leaves early', async () => {
    const stop = new AbortController();
    let closed = false;
    async function* slow() {
      try {
        yield 1;
        // An engine with nothing more to say yet: only the abort ends this wait.
        await new Promise<void>((r) => stop.signal.addEventListener('abort', () => r()));
        yield 2;
      } finally {
        closed = true;
      }
    }
    for await (const v of readAhead(slow(), 4, stop)) {
      expect(v).toBe(1);
      break;
    }
    expect(stop.signal.aborted).toBe(true);
    expect(closed).toBe(true);
  });

  it('lets every replica’s engine read on while the merge holds one line of each', async () => {
    const pulled = [0, 0, 0];
    const engine = (offset: number) =>
      (async function* () {
        for (let k = 0; k < 40; k++) {
          pulled[offset]!++;
          yield {
            type: 'line' as const,
            line: {
              time: `2026-01-01T00:00:00.${String(k * 3 + offset).padStart(9, '0')}Z`,
              replica: `r${offset}`,
              node: 'n',
              stream: 'stdout' as const,
              text: String(k),
            },
          };
        }
      })();
    const merged = (ahead: boolean) =>
      mergeByTime(
        [0, 1, 2].map((o) => (ahead ? readAhead(engine(o), 16, new AbortController()) : engine(o))),
      )[Symbol.asyncIterator]();
    // Without read-ahead, the merge pulls a source only when its held line is taken.
    let m = merged(false);
    await m.next();
    await settle();
    expect(pulled).toEqual([1, 1, 1]);
    await m.return(undefined);
    pulled.fill(0);
    m = merged(true);
    expect(((await m.next()).value as AppLogEvent & { type: 'line' }).line.text).toBe('0');
    await settle();
    for (const n of pulled) expect(n).toBeGreaterThanOrEqual(16);
    const texts: string[] = [];
    for (let r = await m.next(); !r.done; r = await m.next())
      if (r.value.type === 'line') texts.push(`${r.value.line.replica}:${r.value.line.text}`);
    expect(texts).toHaveLength(119);
    expect(texts.slice(0, 4)).toEqual(['r1:0', 'r2:0', 'r0:1', 'r1:1']);
  });
});
