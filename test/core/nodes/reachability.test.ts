/** What one node check means for the node: pure, by equality. */
import { describe, expect, it } from 'vitest';
import { decideNodeCheck, type NodeCheckPolicy } from '../../../core/nodes/reachability.ts';
import type { NodeCheckRecord } from '../../../core/ports.ts';

const policy: NodeCheckPolicy = {
  intervalMs: 2_000,
  timeoutMs: 1_500,
  missesToLose: 3,
  lastSeenWriteMs: 10_000,
};
const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
const iso = (s: number) => t(s).toISOString();
const node = (o: Partial<NodeCheckRecord> = {}): NodeCheckRecord => ({
  reachability: 'reachable',
  reachabilitySince: iso(0),
  lastSeenAt: iso(0),
  missedChecks: 0,
  ...o,
});
const answered = { answered: true } as const;
const missed = { answered: false, error: 'connect ENOENT' } as const;

describe('node checks', () => {
  it('makes an unknown node reachable at its first answer, with no event', () => {
    const first = node({ reachability: 'unknown', reachabilitySince: null, lastSeenAt: null });
    expect(decideNodeCheck(first, answered, t(5), policy)).toEqual({
      record: {
        reachability: 'reachable',
        reachabilitySince: iso(5),
        lastSeenAt: iso(5),
        missedChecks: 0,
      },
      change: null,
    });
  });

  it('writes nothing for an answering node until its stored last-seen time is 10 s old', () => {
    expect(decideNodeCheck(node(), answered, t(9), policy)).toEqual({ record: null, change: null });
    expect(decideNodeCheck(node(), answered, t(10), policy)).toEqual({
      record: node({ lastSeenAt: iso(10) }),
      change: null,
    });
  });

  it('counts misses in a row and loses the node at the third, once', () => {
    const one = decideNodeCheck(node(), missed, t(2), policy);
    expect(one).toEqual({ record: node({ missedChecks: 1 }), change: null });
    const two = decideNodeCheck(one.record!, missed, t(4), policy);
    expect(two).toEqual({ record: node({ missedChecks: 2 }), change: null });
    const three = decideNodeCheck(two.record!, missed, t(6), policy);
    expect(three).toEqual({
      record: node({ reachability: 'lost', reachabilitySince: iso(6), missedChecks: 3 }),
      change: 'lost',
    });
    // Staying lost costs no write and no second event.
    expect(decideNodeCheck(three.record!, missed, t(8), policy)).toEqual({
      record: null,
      change: null,
    });
  });

  it('forgets misses at one answer, and a lost node that answers is recovered', () => {
    expect(decideNodeCheck(node({ missedChecks: 2 }), answered, t(3), policy)).toEqual({
      record: node({ lastSeenAt: iso(3) }),
      change: null,
    });
    const lost = node({ reachability: 'lost', reachabilitySince: iso(6), missedChecks: 3 });
    expect(decideNodeCheck(lost, answered, t(20), policy)).toEqual({
      record: {
        reachability: 'reachable',
        reachabilitySince: iso(20),
        lastSeenAt: iso(20),
        missedChecks: 0,
      },
      change: 'recovered',
    });
  });

  it('loses a never-seen node too (registered, then never answered)', () => {
    const fresh = node({ reachability: 'unknown', reachabilitySince: null, lastSeenAt: null });
    const d = decideNodeCheck({ ...fresh, missedChecks: 2 }, missed, t(6), policy);
    expect(d).toEqual({
      record: {
        reachability: 'lost',
        reachabilitySince: iso(6),
        lastSeenAt: null,
        missedChecks: 3,
      },
      change: 'lost',
    });
  });
});
