import * as z from 'zod';
import { InvalidInput, NotFound, Unavailable } from '../errors.ts';
import type { NodeRecord } from '../models.ts';
import { openNodeTarget } from '../nodes/credentials.ts';
import type {
  Clock,
  ContainerLogLine,
  ContainerRuntime,
  DockerTarget,
  KeyVault,
  LogLineFilter,
} from '../ports.ts';
import { requireOrg, type CoreDeps, type Principal } from '../deps.ts';
import { lineFilter, maxPatternLength } from './log-search.ts';

/**
 * App logs: every replica's stdout/stderr as the nodes' Docker engines keep them (each
 * container's log as its driver stores it, rotated, across its restarts), for the service
 * environment's current and previous containers still present, merged in time order and
 * streamed: at most one line per container and the asked `tail` are held at once, never the
 * whole range.
 */

/** The widest time range one read may cover; a wider one is a 400 naming this. */
export const maxLogRangeDays = 31;
/** `tail` at most: the newest N lines are the only thing a read holds in memory. */
export const maxLogTail = 5_000;
/** Lines a read without `since`, `tail` or `follow` answers: the newest. */
export const defaultLogTail = 200;
/**
 * Lines one read of a range (`since`, no `tail`) answers at most, oldest first; when more
 * remain it ends with a `more` event naming where the next page starts, so an answer is
 * bounded whatever a search matches, and the engines stop reading at once.
 */
export const maxLogLimit = 5_000;
/**
 * Events each replica's read may run ahead of the merge. The merge takes the earliest line,
 * so without a buffer only the replica holding it reads on and the others' engines wait
 * (their sockets full); with it, every engine decodes at once. Bounded: at most this many
 * lines (each ≤ 8 KiB) per replica are held.
 */
export const readAheadEvents = 256;
/** A node that does not answer its container list in this long is skipped (and said). */
const listTimeoutMs = 5_000;
/** While following, containers are listed again this often, so a new release's appear. */
export const followRescanMs = 5_000;

const flag = z
  .enum(['true', 'false', '1', '0', ''])
  .transform((v) => v === 'true' || v === '1' || v === '');

export const serviceLogsQuery = z.object({
  environment: z.string().min(1).max(100).default('production'),
  /** ISO 8601, or a duration back from now: `90s`, `15m`, `1h`, `7d`. */
  since: z.string().max(40).optional(),
  until: z.string().max(40).optional(),
  grep: z.string().min(1).max(maxPatternLength).optional(),
  /** `grep` is a regular expression (linear-time engine) instead of a plain substring. */
  regex: flag.optional(),
  ignoreCase: flag.optional(),
  tail: z.coerce.number().int().min(0).max(maxLogTail).optional(),
  /** A range read's page size (oldest first); `maxLogLimit` unless set. */
  limit: z.coerce.number().int().min(1).max(maxLogLimit).optional(),
  follow: flag.optional(),
});
export type ServiceLogsQuery = z.infer<typeof serviceLogsQuery>;

/** One line of an app's output, named by the replica (container) and node that wrote it. */
export interface AppLogLine {
  /** The engine's timestamp, ISO 8601 with 9 fraction digits. */
  time: string;
  replica: string;
  node: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

/**
 * What a log read yields: lines, notices about what it could not read (a node down), and,
 * last, `more` when a range read stopped at its `limit`: the same query with `since` set
 * to `since` reads the next page.
 */
export type AppLogEvent =
  | { type: 'line'; line: AppLogLine }
  | { type: 'notice'; message: string }
  | { type: 'more'; since: string };

export interface LogReaders {
  runtime: ContainerRuntime;
  vault: KeyVault;
}

/** One container to read: where it runs and what to call it. */
interface Replica {
  target: DockerTarget;
  id: string;
  name: string;
  node: string;
  running: boolean;
}

/**
 * Validates the query and finds the service environment's containers before anything is
 * streamed (so a bad range is a 400 and an unknown service a 404), then answers the lines.
 */
export async function openServiceLogs(
  deps: CoreDeps & { release: LogReaders },
  principal: Principal,
  serviceId: string,
  query: ServiceLogsQuery,
  signal: AbortSignal,
  options: { rescanMs?: number } = {},
): Promise<AsyncIterable<AppLogEvent>> {
  const p = requireOrg(principal);
  const now = deps.clock.now();
  const range = logRange(query, now);
  const filter = query.grep
    ? lineFilter(query.grep, { regex: query.regex, ignoreCase: query.ignoreCase })
    : null;
  const runtime = deps.release.runtime;
  if (!runtime.logs)
    throw new Unavailable(
      'logs',
      'this process reaches no Docker engine to read app logs from (in the cloud edition app logs stay on the nodes)',
    );
  const { service, env, nodes } = await deps.store.withOrg(p.orgId, async (repos) => {
    const service = await repos.services.get(serviceId);
    if (!service) throw new NotFound('service', serviceId);
    const envs = await repos.environments.list({ limit: 200 }, { projectId: service.projectId });
    const env = envs.items.find((e) => e.name === query.environment);
    if (!env) throw new NotFound('environment', query.environment);
    const nodes = await repos.nodes.list({ limit: 200 });
    return { service, env, nodes: nodes.items };
  });
  const labels = { 'selfdevop.service': service.id, 'selfdevop.environment': env.id };
  const finder = replicaFinder(deps.release, nodes, labels);
  const tail = query.tail ?? (query.since ? undefined : defaultLogTail);
  const limit = query.limit ?? maxLogLimit;
  return readLogs(
    runtime,
    finder,
    { ...range, tail, limit, follow: query.follow ?? false },
    filter,
    {
      clock: deps.clock,
      signal,
      rescanMs: options.rescanMs,
    },
  );
}

/** `since`/`until` as ISO times with 9 fraction digits; 400 for a bad or too wide range. */
export function logRange(
  query: Pick<ServiceLogsQuery, 'since' | 'until' | 'follow'>,
  now: Date,
): { since: string; until: string } {
  const until = query.until ? parseTime('until', query.until, now) : now;
  const since = query.since
    ? parseTime('since', query.since, now)
    : new Date(until.getTime() - maxLogRangeDays * 86_400_000);
  if (query.follow && query.until)
    throw new InvalidInput('until: a followed log has no end; leave out until or follow');
  if (since.getTime() > until.getTime()) throw new InvalidInput('since: must be before until');
  if (until.getTime() - since.getTime() > maxLogRangeDays * 86_400_000)
    throw new InvalidInput(
      `since/until: a log read covers at most ${maxLogRangeDays} days; narrow the range`,
    );
  return {
    since: withNanos(query.since, since),
    until: query.until ? withNanos(query.until, until) : nanoTime(until),
  };
}

/**
 * The time as a log time, keeping the nanoseconds an ISO value gave (a Date holds only
 * milliseconds): a `more` marker's `since` is one nanosecond after the last line answered,
 * and reading on from it must neither repeat that line nor skip its neighbours.
 */
function withNanos(value: string | undefined, at: Date): string {
  const m = value ? /\.\d{3}(\d{1,6})(?:Z|[+-]\d\d:\d\d)$/.exec(value) : null;
  return m ? nanoTime(at, Number(m[1]!.padEnd(6, '0'))) : nanoTime(at);
}

function parseTime(name: string, value: string, now: Date): Date {
  const relative = /^(\d{1,9})(s|m|h|d)$/.exec(value);
  if (relative) {
    const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[relative[2] as 's'];
    return new Date(now.getTime() - Number(relative[1]) * unit);
  }
  const ms = /^\d{4}-\d\d-\d\dT/.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(ms))
    throw new InvalidInput(
      `${name}: an ISO 8601 time (2026-01-31T12:00:00Z) or a duration back from now (90s, 15m, 1h, 7d)`,
    );
  return new Date(ms);
}

/** A Date as a log time: ISO with 9 fraction digits (the engines' precision). */
export function nanoTime(d: Date, extraNanos = 0): string {
  return `${d.toISOString().slice(0, 23)}${String(extraNanos).padStart(6, '0')}Z`;
}

type ReplicaFinder = () => AsyncGenerator<Replica | { notice: string }>;

/** Lists the service environment's containers on every node, one node after another. */
function replicaFinder(
  readers: LogReaders,
  nodes: NodeRecord[],
  labels: Record<string, string>,
): ReplicaFinder {
  return async function* () {
    for (const node of nodes) {
      let found;
      try {
        const target = await openNodeTarget(readers.vault, node);
        const listing = readers.runtime.list(target, labels);
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${listTimeoutMs} ms`)),
            listTimeoutMs,
          );
        });
        try {
          found = { target, containers: await Promise.race([listing, timeout]) };
        } finally {
          clearTimeout(timer);
        }
      } catch (e) {
        yield {
          notice: `node ${node.name}: its logs could not be read (${e instanceof Error ? e.message : String(e)})`,
        };
        continue;
      }
      for (const c of found.containers)
        yield {
          target: found.target,
          id: c.id,
          name: c.name,
          node: node.name,
          running: c.state === 'running' || c.state === 'restarting',
        };
    }
  };
}

interface ReadOptions {
  since: string;
  until: string;
  tail: number | undefined;
  /** Lines a read without `tail` answers before it stops with `more`; unbounded unless set. */
  limit?: number;
  follow: boolean;
}

/** The lines of every replica, merged by time; with `follow`, then live lines as they come. */
export async function* readLogs(
  runtime: ContainerRuntime,
  findReplicas: ReplicaFinder,
  options: ReadOptions,
  filter: LogLineFilter | null,
  { clock, signal, rescanMs }: { clock: Clock; signal: AbortSignal; rescanMs?: number },
): AsyncGenerator<AppLogEvent> {
  const matcher = filter ? (text: string) => filter.test(text) : null;
  const replicas: Replica[] = [];
  for await (const r of findReplicas()) {
    if ('notice' in r) yield { type: 'notice', message: r.notice };
    else replicas.push(r);
  }
  if (replicas.length === 0)
    yield {
      type: 'notice',
      message:
        'no container of this service environment is on any node (never deployed, or removed)',
    };
  // Follow: the past up to "now" in time order, then live lines from just after it.
  const cut = clock.now();
  const until = options.follow ? nanoTime(cut) : options.until;
  // Without a search the engine keeps only the newest `tail` of each replica; with one,
  // every line of the range is read and tested, and the newest `tail` matches are kept.
  // The search goes to the engines' adapters, which skip a line that cannot match while it
  // is still bytes; the lines they answer are tested again here (one test per match).
  const engineTail = matcher ? undefined : options.tail;
  // Every replica is read at once, each running ahead of the merge into a bounded buffer, so
  // the engines decode their logs in parallel while the merge takes the earliest line. The
  // history's own signal ends the engines' reads as soon as the page is full.
  const reading = new AbortController();
  const stop = () => reading.abort();
  signal.addEventListener('abort', stop, { once: true });
  const history = mergeByTime(
    replicas.map((r) =>
      readAhead(
        tagged(
          r,
          runtime.logs!(r.target, r.id, {
            since: options.since,
            until,
            tail: engineTail,
            ...(filter ? { filter } : {}),
            follow: false,
            signal: reading.signal,
          }),
        ),
        readAheadEvents,
        reading,
      ),
    ),
  );
  try {
    yield* pastLines(history, options, matcher);
  } finally {
    signal.removeEventListener('abort', stop);
    reading.abort();
    // Ends the merge (and the read-aheads) when the caller left early.
    await history.return(undefined);
  }
  if (!options.follow || signal.aborted) return;
  yield* followLive(runtime, findReplicas, replicas, nanoTime(cut, 1), filter, {
    clock,
    signal,
    rescanMs: rescanMs ?? followRescanMs,
  });
}

/** The past of a read: a page of a range, or the newest `tail` lines. */
async function* pastLines(
  history: AsyncGenerator<AppLogEvent>,
  options: ReadOptions,
  matcher: ((text: string) => boolean) | null,
): AsyncGenerator<AppLogEvent> {
  if (options.tail === undefined) {
    let left = options.limit ?? Infinity;
    let last: AppLogLine | null = null;
    for await (const e of history) {
      if (e.type !== 'line') yield e;
      else if (!matcher || matcher(e.line.text)) {
        if (left === 0) {
          // One line beyond the page says there is more; leaving the loop ends the engines' reads.
          yield { type: 'more', since: afterTime(last!.time) };
          return;
        }
        left--;
        last = e.line;
        yield e;
      }
    }
  } else if (options.tail > 0) {
    const kept = new Ring<AppLogEvent>(options.tail);
    for await (const e of history) {
      if (e.type !== 'line') yield e;
      else if (!matcher || matcher(e.line.text)) kept.push(e);
    }
    yield* kept.drain();
  } else for await (const e of history) void e; // tail=0: nothing of the past
}

/**
 * Pulls `source` ahead of its consumer into a buffer of at most `max` items, so a slow
 * consumer of one source does not stall the others' producers. When the consumer leaves
 * early, `stop` is aborted (it ends a pull still waiting on an engine) before the source is
 * closed. A failure of the source is thrown to the consumer after what came before it.
 */
export async function* readAhead<T>(
  source: AsyncIterable<T>,
  max: number,
  stop: AbortController,
): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  const buffer: T[] = [];
  let ended = false;
  let failure: { error: unknown } | null = null;
  let leaving = false;
  let wakeConsumer: (() => void) | null = null;
  let wakeProducer: (() => void) | null = null;
  const wake = (w: (() => void) | null) => w?.();
  const pump = (async () => {
    try {
      while (!leaving) {
        if (buffer.length >= max) {
          await new Promise<void>((r) => (wakeProducer = r));
          continue;
        }
        const r = await it.next();
        if (r.done) break;
        buffer.push(r.value);
        wake(wakeConsumer);
      }
    } catch (error) {
      failure = { error };
    } finally {
      ended = true;
      wake(wakeConsumer);
    }
  })();
  try {
    for (;;) {
      if (buffer.length > 0) {
        const item = buffer.shift()!;
        wake(wakeProducer);
        yield item;
        continue;
      }
      if (ended) {
        if (failure) throw (failure as { error: unknown }).error;
        return;
      }
      await new Promise<void>((r) => (wakeConsumer = r));
    }
  } finally {
    leaving = true;
    wake(wakeProducer);
    if (!ended) stop.abort();
    await pump;
    await it.return?.(undefined);
  }
}

/** A replica's lines as events, its failures as a notice (one replica gone is not the read's end). */
async function* tagged(
  r: Replica,
  lines: AsyncIterable<ContainerLogLine>,
): AsyncGenerator<AppLogEvent> {
  try {
    for await (const l of lines)
      yield {
        type: 'line',
        line: { time: l.time, replica: r.name, node: r.node, stream: l.stream, text: l.text },
      };
  } catch (e) {
    yield {
      type: 'notice',
      message: `${r.name} on ${r.node}: ${e instanceof Error ? e.message : String(e)}`,
    };
  }
}

/**
 * k-way merge: holds each source's next event and yields the earliest line; notices go
 * out as they come. Memory is one event per source, whatever the sources hold.
 */
export async function* mergeByTime(
  sources: AsyncIterable<AppLogEvent>[],
): AsyncGenerator<AppLogEvent> {
  const its = sources.map((s) => s[Symbol.asyncIterator]());
  const heads: (AppLogEvent & { type: 'line' })[] = [];
  const owners: number[] = [];
  const pull = async (k: number): Promise<void> => {
    for (;;) {
      const r = await its[k]!.next();
      if (r.done) return;
      if (r.value.type !== 'line') {
        notices.push(r.value);
        continue;
      }
      heads.push(r.value);
      owners.push(k);
      return;
    }
  };
  const notices: AppLogEvent[] = [];
  try {
    await Promise.all(its.map((_, k) => pull(k)));
    for (;;) {
      while (notices.length) yield notices.shift()!;
      if (heads.length === 0) return;
      let best = 0;
      for (let k = 1; k < heads.length; k++)
        if (before(heads[k]!.line, heads[best]!.line)) best = k;
      const [event] = heads.splice(best, 1);
      const [owner] = owners.splice(best, 1);
      yield event!;
      await pull(owner!);
    }
  } finally {
    await Promise.all(its.map((it) => it.return?.()));
  }
}

function before(a: AppLogLine, b: AppLogLine): boolean {
  return a.time < b.time || (a.time === b.time && a.replica < b.replica);
}

/**
 * Live lines from every replica as they arrive (across replicas that is time order within
 * the engines' delivery), and the containers of a new release as they appear.
 */
async function* followLive(
  runtime: ContainerRuntime,
  findReplicas: ReplicaFinder,
  known: Replica[],
  since: string,
  filter: LogLineFilter | null,
  { clock, signal, rescanMs }: { clock: Clock; signal: AbortSignal; rescanMs: number },
): AsyncGenerator<AppLogEvent> {
  const matcher = filter ? (text: string) => filter.test(text) : null;
  const following = new Map<string, AsyncIterator<AppLogEvent>>();
  const pending = new Map<string, Promise<{ key: string; r: IteratorResult<AppLogEvent> }>>();
  // Where a replica's stream that ended would resume: just after its last line (a restart).
  const resumeAt = new Map<string, string>();
  const open = (r: Replica, from: string) => {
    const key = `${r.node}/${r.id}`;
    if (following.has(key)) return;
    const it = tagged(
      r,
      runtime.logs!(r.target, r.id, {
        since: from,
        ...(filter ? { filter } : {}),
        follow: true,
        signal,
      }),
    )[Symbol.asyncIterator]();
    following.set(key, it);
    pending.set(
      key,
      it.next().then((res) => ({ key, r: res })),
    );
  };
  for (const r of known) if (r.running) open(r, since);
  const rescan = async (): Promise<{ key: 'rescan' }> => {
    await clock.sleep(rescanMs, signal).catch(() => undefined);
    return { key: 'rescan' };
  };
  let scanning = rescan();
  try {
    while (!signal.aborted) {
      // The rescan last: when lines are waiting they go first.
      const next = await Promise.race([...pending.values(), scanning]);
      if (signal.aborted) return;
      if (next.key === 'rescan') {
        // A container that appeared since (a new release) is read from its first line.
        for await (const r of findReplicas())
          if (!('notice' in r) && r.running) open(r, resumeAt.get(`${r.node}/${r.id}`) ?? since);
        scanning = rescan();
        continue;
      }
      const { key, r } = next as { key: string; r: IteratorResult<AppLogEvent> };
      if (r.done) {
        // The container stopped; a rescan reopens it if it runs again, after its last line.
        pending.delete(key);
        following.delete(key);
        continue;
      }
      if (r.value.type === 'line') resumeAt.set(key, afterTime(r.value.line.time));
      pending.set(
        key,
        following
          .get(key)!
          .next()
          .then((res) => ({ key, r: res })),
      );
      if (r.value.type !== 'line' || !matcher || matcher(r.value.line.text)) yield r.value;
    }
  } finally {
    // An iterator with a read pending finishes that read first: the caller's abort of
    // `signal` is what ends the engines' streams, so these are not awaited.
    for (const it of following.values()) void it.return?.()?.catch(() => undefined);
  }
}

/** One nanosecond after a log time (9 fraction digits), for a read that must not repeat it. */
export function afterTime(time: string): string {
  const m = /^(.*T\d\d:\d\d:\d\d)\.(\d{9})Z$/.exec(time);
  if (!m) return time;
  const nanos = Number(m[2]) + 1;
  if (nanos < 1e9) return `${m[1]}.${String(nanos).padStart(9, '0')}Z`;
  return nanoTime(new Date(Date.parse(`${m[1]}Z`) + 1000));
}

/** The newest `size` items pushed, oldest first. */
class Ring<T> {
  private readonly items: T[] = [];
  private start = 0;
  private readonly size: number;
  constructor(size: number) {
    this.size = size;
  }
  push(item: T): void {
    if (this.items.length < this.size) this.items.push(item);
    else {
      this.items[this.start] = item;
      this.start = (this.start + 1) % this.size;
    }
  }
  *drain(): Generator<T> {
    for (let k = 0; k < this.items.length; k++)
      yield this.items[(this.start + k) % this.items.length]!;
  }
}
