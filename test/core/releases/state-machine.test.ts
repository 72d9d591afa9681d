import { describe, expect, it } from 'vitest';
import { IllegalTransition } from '../../../core/errors.ts';
import { releaseStatuses, type ReleaseStatus } from '../../../core/models.ts';
import {
  assertTransition,
  canTransition,
  inFlightStatuses,
  isInFlight,
  isTerminal,
  nextStatus,
} from '../../../core/releases/state-machine.ts';

const legal: [ReleaseStatus, ReleaseStatus][] = [
  ['queued', 'building'],
  ['building', 'artifact_ready'],
  ['artifact_ready', 'candidate_started'],
  ['candidate_started', 'migrating'],
  ['migrating', 'health_validating'],
  ['health_validating', 'traffic_shifted'],
  ['traffic_shifted', 'completed'],
  ['queued', 'failed'],
  ['building', 'failed'],
  ['artifact_ready', 'failed'],
  ['candidate_started', 'failed'],
  ['migrating', 'failed'],
  ['health_validating', 'failed'],
  ['traffic_shifted', 'failed'],
  ['completed', 'rolled_back'],
];

const isLegal = (from: ReleaseStatus, to: ReleaseStatus) =>
  legal.some(([f, t]) => f === from && t === to);

const allPairs = releaseStatuses.flatMap((from) =>
  releaseStatuses.map((to) => [from, to] as [ReleaseStatus, ReleaseStatus]),
);

describe('release state machine', () => {
  it.each(legal)('allows %s → %s', (from, to) => {
    expect(canTransition(from, to)).toBe(true);
    expect(() => assertTransition(from, to)).not.toThrow();
  });

  it.each(allPairs.filter(([f, t]) => !isLegal(f, t)))('rejects %s → %s', (from, to) => {
    expect(canTransition(from, to)).toBe(false);
    expect(() => assertTransition(from, to)).toThrow(IllegalTransition);
    expect(() => assertTransition(from, to)).toThrow(`release cannot move from ${from} to ${to}`);
  });

  it('covers exactly the legal moves listed here', () => {
    expect(allPairs.filter(([f, t]) => canTransition(f, t))).toEqual(
      allPairs.filter(([f, t]) => isLegal(f, t)),
    );
  });

  it('names the in-flight and terminal statuses', () => {
    expect(inFlightStatuses).toEqual([
      'queued',
      'building',
      'artifact_ready',
      'candidate_started',
      'migrating',
      'health_validating',
      'traffic_shifted',
    ]);
    expect(releaseStatuses.filter(isTerminal)).toEqual(['completed', 'failed', 'rolled_back']);
    expect(releaseStatuses.filter(isInFlight)).toEqual(inFlightStatuses);
  });

  it('walks the happy path with nextStatus', () => {
    const path: ReleaseStatus[] = ['queued'];
    for (let s = nextStatus('queued'); s !== null; s = nextStatus(s)) path.push(s);
    expect(path).toEqual([
      'queued',
      'building',
      'artifact_ready',
      'candidate_started',
      'migrating',
      'health_validating',
      'traffic_shifted',
      'completed',
    ]);
    expect(nextStatus('failed')).toBeNull();
    expect(nextStatus('rolled_back')).toBeNull();
  });
});
