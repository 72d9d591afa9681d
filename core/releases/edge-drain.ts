/**
 * A replica that left the edge is stopped only once the edge has finished the requests it
 * had already sent it: stopping it earlier cuts them (a 502 at the client), which is what
 * bench:scale saw on scale-down and drain. The edge's own count is asked (an EdgeRouter's
 * `inFlight`, read once no request can still pick the replica), bounded by the service's
 * `drainSeconds`, the same grace its container gets to stop.
 */
import type { Clock, EdgeRouter } from '../ports.ts';

/** Zero reads in a row before upstreams count as drained: a request picked just before a read may not be counted yet. */
export const drainZeroReads = 2;
/** How often the edge is asked while requests are in flight. */
export const drainPollMs = 100;

export type DrainDecision =
  | { action: 'stop' }
  | { action: 'wait'; zeroReads: number }
  | { action: 'give_up'; busy: Record<string, number> };

/**
 * What to do after one read of the edge's in-flight counts (pure): stop once every leaving
 * upstream read 0 `drainZeroReads` times in a row, give up at the bound (stopping anyway,
 * naming what was still busy), else wait.
 */
export function decideDrain(o: {
  counts: Record<string, number>;
  zeroReads: number;
  elapsedMs: number;
  boundMs: number;
}): DrainDecision {
  const busy = Object.fromEntries(Object.entries(o.counts).filter(([, n]) => n > 0));
  const idle = Object.keys(busy).length === 0;
  const zeroReads = idle ? o.zeroReads + 1 : 0;
  // At the bound an idle read is enough: there is no time left for a second one.
  if (zeroReads >= drainZeroReads || (idle && o.elapsedMs >= o.boundMs)) return { action: 'stop' };
  if (o.elapsedMs >= o.boundMs) return { action: 'give_up', busy };
  return { action: 'wait', zeroReads };
}

export interface EdgeDrained {
  /** True when the edge reported nothing in flight; false at the bound or without a count. */
  drained: boolean;
  waitedMs: number;
  /** Requests still in flight per upstream when the bound was reached. */
  busy: Record<string, number>;
  /** Why the edge could not be asked (no `inFlight`, or it failed); the bound was not waited. */
  unknown?: string;
}

/**
 * Waits until the edge has no request in flight to any of `upstreams`, which it no longer
 * routes to, for at most `drainSeconds`. An edge that cannot count (no `inFlight`, or its
 * admin API failing) is not waited for: the container's stop grace is all there is, as before.
 */
export async function awaitEdgeDrained(
  deps: { edge: EdgeRouter; clock: Clock },
  upstreams: readonly string[],
  drainSeconds: number,
): Promise<EdgeDrained> {
  const started = deps.clock.now().getTime();
  const elapsed = () => deps.clock.now().getTime() - started;
  if (upstreams.length === 0) return { drained: true, waitedMs: 0, busy: {} };
  const inFlight = deps.edge.inFlight?.bind(deps.edge);
  if (!inFlight)
    return { drained: false, waitedMs: 0, busy: {}, unknown: 'the edge does not count requests' };
  let zeroReads = 0;
  // Bounded by the reads too, so a clock that does not move cannot spin forever.
  const maxReads = Math.ceil((drainSeconds * 1000) / drainPollMs) + drainZeroReads + 1;
  for (let read = 0; ; read++) {
    let counts: Record<string, number>;
    try {
      counts = await inFlight(upstreams);
    } catch (e) {
      return {
        drained: false,
        waitedMs: elapsed(),
        busy: {},
        unknown: e instanceof Error ? e.message : String(e),
      };
    }
    const decision = decideDrain({
      counts,
      zeroReads,
      elapsedMs: read + 1 >= maxReads ? Infinity : elapsed(),
      boundMs: drainSeconds * 1000,
    });
    if (decision.action === 'stop') return { drained: true, waitedMs: elapsed(), busy: {} };
    if (decision.action === 'give_up')
      return { drained: false, waitedMs: elapsed(), busy: decision.busy };
    zeroReads = decision.zeroReads;
    // A second zero read only needs a short gap; a busy upstream is asked again each poll.
    await deps.clock.sleep(zeroReads > 0 ? 20 : drainPollMs);
  }
}

/** The release-log line for a drain: how long, and what was cut when the bound was reached. */
export function describeDrain(d: EdgeDrained, drainSeconds: number): string {
  if (d.unknown) return `edge in-flight count unknown (${d.unknown})`;
  if (d.drained) return `edge finished its requests in ${d.waitedMs} ms`;
  const busy = Object.entries(d.busy)
    .map(([u, n]) => `${n} at ${u}`)
    .join(', ');
  return `edge still had requests in flight after the ${drainSeconds} s drain (${busy})`;
}
