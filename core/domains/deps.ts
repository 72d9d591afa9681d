import type {
  Clock,
  DnsResolver,
  EdgeRouter,
  EventQueue,
  IdGenerator,
  Logger,
  Store,
} from '../ports.ts';
import type { EventPublisher } from '../webhooks/events.ts';

/** Queue of domain checks: one message per check of one domain, each scheduling the next. */
export const domainChecksQueue = 'domain-checks';

/**
 * Payload on `domain-checks`. `expect` is the domain's `checkedAt` when the check was
 * scheduled: a message finding another value belongs to an older chain and runs nothing,
 * so a "verify now" never doubles the polling. `now` messages run whatever they find.
 */
export interface DomainCheckMessage {
  orgId: string;
  domainId: string;
  /** Checks in the current phase so far; the backoff grows with it. */
  n: number;
  expect: string | null;
  /** When the domain entered its current status (for the give-up deadlines). */
  since: string;
  now?: boolean;
}

export interface DomainConfig {
  /** Default hosts live under it; custom hostnames may not. */
  edgeDomain: string;
  /** IPv4 addresses of the edge, for A records of apex domains (and accepted for any host). */
  edgeIpv4: string[];
  /** First delay between DNS checks; doubles per check up to dnsMaxDelaySeconds. */
  dnsBaseDelaySeconds: number;
  dnsMaxDelaySeconds: number;
  /** A domain whose DNS never verifies is given up on (`failed`) after this long. */
  dnsGiveUpSeconds: number;
  /** Same shape for certificate polling while `cert_pending`. */
  certBaseDelaySeconds: number;
  certMaxDelaySeconds: number;
  certGiveUpSeconds: number;
  /** How often an active domain's records are checked again. */
  activeRecheckSeconds: number;
  /** How long an empty DNS answer is believed before asking again (negative caching). */
  negativeCacheSeconds: number;
  /** On-demand TLS: asks allowed per host per hour while it has no certificate yet. */
  askPerHostPerHour: number;
  /** On-demand TLS: first wait between two asks for the same host; doubles per ask. */
  askBaseBackoffSeconds: number;
  /**
   * Custom domains an org may add or remove per hour. Each change rewrites the route's
   * hosts, which makes Caddy load its config, and a load resets a few connections of every
   * tenant on that edge (ARCHITECTURE.md, "What a reload costs"): one org must not be able
   * to churn domains into a stream of reloads for all the others.
   */
  changesPerOrgPerHour: number;
}

export const defaultDomainConfig: Omit<DomainConfig, 'edgeDomain' | 'edgeIpv4'> = {
  dnsBaseDelaySeconds: 5,
  dnsMaxDelaySeconds: 10 * 60,
  dnsGiveUpSeconds: 7 * 24 * 3600,
  certBaseDelaySeconds: 2,
  certMaxDelaySeconds: 5 * 60,
  certGiveUpSeconds: 6 * 3600,
  activeRecheckSeconds: 3600,
  // Below the first poll delay, so a poll after a miss really asks again; it absorbs bursts.
  negativeCacheSeconds: 4,
  askPerHostPerHour: 5,
  askBaseBackoffSeconds: 30,
  changesPerOrgPerHour: 30,
};

/** The ports the domain use cases and worker need, injected by a composition root. */
export interface DomainDeps {
  store: Store;
  /** The resolver the worker polls with (negative answers cached briefly). */
  dns: DnsResolver;
  /** Uncached, for "verify now": the person just changed their records. */
  dnsFresh: DnsResolver;
  edge: EdgeRouter;
  queue: EventQueue;
  clock: Clock;
  ids: IdGenerator;
  logger: Logger;
  config: DomainConfig;
  /** Where domain events go beyond the audit trail (webhooks); none in unit tests. */
  events?: EventPublisher;
}

/** The audit actor of everything the worker does on its own. */
export const domainWorkerActor = { actorType: 'system', actorId: 'domain-worker' } as const;

/** Seconds to wait before check number `n` (1-based) of a phase: base · 2^(n-1), capped. */
export function backoffSeconds(n: number, baseSeconds: number, maxSeconds: number): number {
  const exp = Math.min(Math.max(n - 1, 0), 30);
  return Math.max(1, Math.min(maxSeconds, Math.round(baseSeconds * 2 ** exp)));
}
