import type { ReleaseLogLine, ReleaseStatus } from '../models.ts';
import type { Clock } from '../ports.ts';
import { TooManyStreams } from './errors.ts';
import { isTerminal } from './state-machine.ts';

/** What a stream receives: lines, status changes, then `end` once the release is finished. */
export type FeedEvent =
  | { type: 'log'; line: ReleaseLogLine }
  | { type: 'status'; status: ReleaseStatus; error: string | null }
  | { type: 'end'; status: ReleaseStatus }
  | { type: 'error'; message: string };

/** One read of a release: its status and up to `limit` lines after `afterSeq`. */
export type ReadProgress = (
  afterSeq: number,
  limit: number,
) => Promise<{ status: ReleaseStatus; error: string | null; lines: ReleaseLogLine[] }>;

export interface LogFeedOptions {
  clock: Clock;
  /** How often a release with streams open is read; default 250 ms. */
  pollMs?: number;
  /** Live streams one caller (user or API key) may hold at once; default 20. */
  maxStreamsPerCaller?: number;
  /** Lines read at once; default 1000. */
  pageLines?: number;
}

interface Subscriber {
  push(e: FeedEvent): void;
  seq: number;
  lastStatus: ReleaseStatus | null;
}

/**
 * One poller per release however many streams follow it, so N streams of a release cost one
 * read per tick, not N. A stream that starts behind the poller catches up with reads of its
 * own, then joins. Streams are counted per caller and refused past the limit.
 */
export class ReleaseLogFeeds {
  private readonly pollers = new Map<string, Poller>();
  private readonly perCaller = new Map<string, number>();
  private readonly clock: Clock;
  private readonly pollMs: number;
  private readonly pageLines: number;
  readonly maxStreamsPerCaller: number;

  constructor(options: LogFeedOptions) {
    this.clock = options.clock;
    this.pollMs = options.pollMs ?? 250;
    this.maxStreamsPerCaller = options.maxStreamsPerCaller ?? 20;
    this.pageLines = options.pageLines ?? 1000;
  }

  /** Pollers running now (for tests and metrics). */
  get pollerCount(): number {
    return this.pollers.size;
  }

  /**
   * Opens a stream of release `key` (unique across orgs, e.g. `org:release`) for `caller`,
   * starting after line `after`. Throws TooManyStreams at once when the caller is at the
   * limit. The stream ends with the release, or when `signal` aborts.
   */
  open(
    caller: string,
    key: string,
    read: ReadProgress,
    after: number,
    signal: AbortSignal,
  ): AsyncIterable<FeedEvent> {
    const held = this.perCaller.get(caller) ?? 0;
    if (held >= this.maxStreamsPerCaller) throw new TooManyStreams(this.maxStreamsPerCaller);
    this.perCaller.set(caller, held + 1);
    const release = () => {
      const n = (this.perCaller.get(caller) ?? 1) - 1;
      if (n <= 0) this.perCaller.delete(caller);
      else this.perCaller.set(caller, n);
    };
    return this.stream(key, read, after, signal, release);
  }

  private async *stream(
    key: string,
    read: ReadProgress,
    after: number,
    signal: AbortSignal,
    release: () => void,
  ): AsyncGenerator<FeedEvent> {
    const queue: FeedEvent[] = [];
    let wake: (() => void) | null = null;
    const sub: Subscriber = {
      seq: after,
      lastStatus: null,
      push: (e) => {
        queue.push(e);
        wake?.();
      },
    };
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    let poller: Poller | undefined;
    try {
      // Catch up alone until the poller's window covers what this stream has not seen yet.
      for (;;) {
        poller = this.pollerFor(key, read, sub.seq);
        if (poller.covers(sub.seq)) break;
        const page = await read(sub.seq, this.pageLines);
        for (const line of page.lines) yield { type: 'log', line };
        sub.seq = page.lines.at(-1)?.seq ?? sub.seq;
        if (page.lines.length === 0) break;
        if (signal.aborted) return;
      }
      poller.join(sub, read);
      for (;;) {
        while (queue.length > 0) {
          const e = queue.shift()!;
          yield e;
          if (e.type === 'end' || e.type === 'error') return;
        }
        if (signal.aborted) return;
        await new Promise<void>((r) => (wake = r));
        wake = null;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      poller?.leave(sub);
      release();
    }
  }

  private pollerFor(key: string, read: ReadProgress, from: number): Poller {
    let p = this.pollers.get(key);
    if (!p || p.stopped) {
      p = new Poller(read, from, this.clock, this.pollMs, this.pageLines, () => {
        if (this.pollers.get(key) === p) this.pollers.delete(key);
      });
      this.pollers.set(key, p);
    }
    return p;
  }
}

/** Reads one release for all its streams while any is open; keeps a window of recent lines. */
class Poller {
  private readonly subs = new Set<Subscriber>();
  private recent: ReleaseLogLine[] = [];
  /** Every line after `floor` up to `head` is in `recent`. */
  private floor: number;
  private head: number;
  private status: { status: ReleaseStatus; error: string | null } | null = null;
  stopped = false;
  private running = false;
  private read: ReadProgress;
  private readonly clock: Clock;
  private readonly pollMs: number;
  private readonly pageLines: number;
  private readonly onStop: () => void;

  constructor(
    read: ReadProgress,
    from: number,
    clock: Clock,
    pollMs: number,
    pageLines: number,
    onStop: () => void,
  ) {
    this.read = read;
    this.clock = clock;
    this.pollMs = pollMs;
    this.pageLines = pageLines;
    this.onStop = onStop;
    this.floor = from;
    this.head = from;
  }

  covers(seq: number): boolean {
    return seq >= this.floor;
  }

  join(sub: Subscriber, read: ReadProgress): void {
    // The newest stream's read is used from now on: its caller was authorised a moment ago.
    this.read = read;
    for (const line of this.recent) if (line.seq > sub.seq) this.deliver(sub, line);
    if (this.status) this.sendStatus(sub);
    this.subs.add(sub);
    if (!this.running) void this.run();
  }

  leave(sub: Subscriber): void {
    this.subs.delete(sub);
  }

  private deliver(sub: Subscriber, line: ReleaseLogLine): void {
    sub.push({ type: 'log', line });
    sub.seq = line.seq;
  }

  private sendStatus(sub: Subscriber): void {
    const s = this.status!;
    if (sub.lastStatus === s.status) return;
    sub.lastStatus = s.status;
    sub.push({ type: 'status', status: s.status, error: s.error });
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.subs.size > 0) {
        const tick = await this.read(this.head, this.pageLines);
        this.status = { status: tick.status, error: tick.error };
        for (const line of tick.lines) {
          this.recent.push(line);
          for (const sub of this.subs) if (line.seq > sub.seq) this.deliver(sub, line);
        }
        this.head = tick.lines.at(-1)?.seq ?? this.head;
        const excess = this.recent.length - 2 * this.pageLines;
        if (excess > 0) this.floor = this.recent.splice(0, excess).at(-1)!.seq;
        for (const sub of this.subs) this.sendStatus(sub);
        if (isTerminal(tick.status) && tick.lines.length === 0) {
          for (const sub of this.subs) sub.push({ type: 'end', status: tick.status });
          break;
        }
        if (tick.lines.length < this.pageLines) await this.clock.sleep(this.pollMs);
      }
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      for (const sub of this.subs) sub.push({ type: 'error', message });
    } finally {
      this.running = false;
      this.stopped = true;
      this.onStop();
    }
  }
}
