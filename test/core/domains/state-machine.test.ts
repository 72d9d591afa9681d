import { describe, expect, it } from 'vitest';
import { assertDomainMove, canMoveDomain } from '../../../core/domains/state-machine.ts';
import { IllegalTransition } from '../../../core/errors.ts';
import { domainStatuses } from '../../../core/models.ts';

describe('domain lifecycle', () => {
  it('walks the happy path pending_dns → dns_verified → cert_pending → active', () => {
    expect(canMoveDomain('pending_dns', 'dns_verified')).toBe(true);
    expect(canMoveDomain('dns_verified', 'cert_pending')).toBe(true);
    expect(canMoveDomain('cert_pending', 'active')).toBe(true);
  });

  it('lets every status fail except failed itself, and failed only restart at pending_dns', () => {
    for (const s of domainStatuses) expect(canMoveDomain(s, 'failed')).toBe(s !== 'failed');
    expect(domainStatuses.filter((to) => canMoveDomain('failed', to))).toEqual(['pending_dns']);
  });

  it.each([
    ['pending_dns', 'active'],
    ['pending_dns', 'cert_pending'],
    ['dns_verified', 'active'],
    ['active', 'pending_dns'],
    ['active', 'dns_verified'],
    ['failed', 'active'],
  ] as const)('rejects %s → %s with IllegalTransition', (from, to) => {
    expect(() => assertDomainMove(from, to)).toThrow(IllegalTransition);
    expect(() => assertDomainMove(from, to)).toThrow(`domain cannot move from ${from} to ${to}`);
  });
});
