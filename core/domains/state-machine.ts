import { IllegalTransition } from '../errors.ts';
import type { DomainStatus } from '../models.ts';

/**
 * Where a custom domain may go from each status. DNS is proven first, then the host joins
 * the service's route and Caddy obtains its certificate. Records that vanish before the
 * certificate send it back to `pending_dns`; `failed` (given up, with a reason) leaves only
 * through an explicit verify.
 */
const transitions: Readonly<Record<DomainStatus, readonly DomainStatus[]>> = {
  pending_dns: ['dns_verified', 'failed'],
  dns_verified: ['cert_pending', 'pending_dns', 'failed'],
  cert_pending: ['active', 'pending_dns', 'failed'],
  // An active domain whose records vanish keeps serving and is flagged (dnsStatus, lastError).
  active: ['failed'],
  failed: ['pending_dns'],
};

/** True when `from → to` is a legal move of the domain lifecycle. */
export function canMoveDomain(from: DomainStatus, to: DomainStatus): boolean {
  return transitions[from].includes(to);
}

/** Throws IllegalTransition unless `from → to` is legal. */
export function assertDomainMove(from: DomainStatus, to: DomainStatus): void {
  if (!canMoveDomain(from, to)) throw new IllegalTransition('domain', from, to);
}

/** Statuses in which Caddy may hold a certificate for the host (the on-demand `ask` says yes). */
export const certificateAllowedStatuses: readonly DomainStatus[] = [
  'dns_verified',
  'cert_pending',
  'active',
];

/**
 * Statuses in which a domain holds its hostname against every other org: its DNS proved
 * control. Claims still pending (or failed) hold nothing, so nobody squats a name unproven.
 */
export const hostnameHoldingStatuses: readonly DomainStatus[] = [
  'dns_verified',
  'cert_pending',
  'active',
];
