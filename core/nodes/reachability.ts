/**
 * What one check of a node's engine means for the node: pure, tested by equality. A few
 * misses in a row make a node lost (one slow answer is not an outage), one answer makes it
 * reachable again. The decision says what to write, so a healthy node costs no write per
 * check: only a change, a miss, or a `lastSeenAt` older than `lastSeenWriteMs`.
 */
import type { NodeRecord } from '../models.ts';
import type { NodeCheckRecord } from '../ports.ts';

export interface NodeCheckPolicy {
  /** Time between two rounds of checks. */
  intervalMs: number;
  /** How long one ping may take before it counts as a miss. */
  timeoutMs: number;
  /** Misses in a row that make a node lost. */
  missesToLose: number;
  /** How stale the stored `lastSeenAt` of an answering node may get before it is written. */
  lastSeenWriteMs: number;
}

/**
 * Every second, a second to answer, lost at the second miss in a row: a dead engine (its
 * socket or address refuses) is lost 1–2 s after its last answer, a hung one 2–3 s, so its
 * replicas leave the edge within the 3 s issue 14 asks. One slow answer is not a loss; an
 * install on a slow network raises NODE_CHECK_SECONDS / NODE_CHECK_MISSES.
 */
export const defaultNodeCheckPolicy: NodeCheckPolicy = {
  intervalMs: 1_000,
  timeoutMs: 1_000,
  missesToLose: 2,
  lastSeenWriteMs: 10_000,
};

export type NodeCheckOutcome = { answered: true } | { answered: false; error: string };

export interface NodeCheckDecision {
  /** What to write on the node; null when the stored row already says it. */
  record: NodeCheckRecord | null;
  /** `lost` and `recovered` are events; a first answer of an `unknown` node is not. */
  change: 'lost' | 'recovered' | null;
}

const stored = (n: NodeCheckRecord): NodeCheckRecord => ({
  reachability: n.reachability,
  reachabilitySince: n.reachabilitySince,
  lastSeenAt: n.lastSeenAt,
  missedChecks: n.missedChecks,
});

const same = (a: NodeCheckRecord, b: NodeCheckRecord) =>
  a.reachability === b.reachability &&
  a.reachabilitySince === b.reachabilitySince &&
  a.lastSeenAt === b.lastSeenAt &&
  a.missedChecks === b.missedChecks;

/** The node after one check at `now`, and whether that is a change worth an event. */
export function decideNodeCheck(
  node: Pick<NodeRecord, keyof NodeCheckRecord>,
  outcome: NodeCheckOutcome,
  now: Date,
  policy: NodeCheckPolicy,
): NodeCheckDecision {
  const before = stored(node);
  const at = now.toISOString();
  if (outcome.answered) {
    const moved = node.reachability !== 'reachable';
    const seenLongAgo =
      node.lastSeenAt === null ||
      now.getTime() - Date.parse(node.lastSeenAt) >= policy.lastSeenWriteMs;
    const next: NodeCheckRecord = {
      reachability: 'reachable',
      reachabilitySince: moved ? at : (node.reachabilitySince ?? at),
      lastSeenAt: moved || seenLongAgo || node.missedChecks > 0 ? at : node.lastSeenAt,
      missedChecks: 0,
    };
    return {
      record: same(before, next) ? null : next,
      change: node.reachability === 'lost' ? 'recovered' : null,
    };
  }
  // Capped, so a node that stays lost costs no write per check.
  const missed = Math.min(node.missedChecks + 1, policy.missesToLose);
  const loses = node.reachability !== 'lost' && missed >= policy.missesToLose;
  const next: NodeCheckRecord = {
    reachability: loses ? 'lost' : node.reachability,
    reachabilitySince: loses ? at : node.reachabilitySince,
    lastSeenAt: node.lastSeenAt,
    missedChecks: missed,
  };
  return { record: same(before, next) ? null : next, change: loses ? 'lost' : null };
}
