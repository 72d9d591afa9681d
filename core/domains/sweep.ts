import { domainChecksQueue, type DomainCheckMessage, type DomainDeps } from './deps.ts';

/** The sweep's scheduled job (core/queues.ts), every minute. */
export const domainSweepSchedule = 'domain-sweep';
export const domainSweepCron = '* * * * *';

/** Domains re-armed per sweep at most: the stalest first, the rest on the next sweep. */
const perSweep = 500;

/**
 * Re-arms the checks of domains whose message chain stopped (a message lost, or given up
 * on while the database was down): one more check for each domain not checked for well
 * over its longest poll delay. A chain that is in fact alive and this extra check
 * converge to one, because each check re-stamps `checkedAt` and the other's next message
 * then finds it changed. Returns how many checks it sent.
 */
export async function sweepDomains(
  deps: Pick<DomainDeps, 'store' | 'queue' | 'clock' | 'config'>,
): Promise<number> {
  const now = deps.clock.now().getTime();
  const { config } = deps;
  const otherSeconds = 2 * Math.max(config.dnsMaxDelaySeconds, config.certMaxDelaySeconds) + 60;
  const before = {
    active: new Date(now - (2 * config.activeRecheckSeconds + 60) * 1000).toISOString(),
    other: new Date(now - otherSeconds * 1000).toISOString(),
  };
  const stale = await deps.store.domainLookup.domainsToCheck(before, perSweep);
  const since = new Date(now).toISOString();
  for (const d of stale) {
    const message: DomainCheckMessage = {
      orgId: d.orgId,
      domainId: d.id,
      n: 1,
      expect: d.checkedAt,
      since,
    };
    // Keyed by the stale stamp: sweeps finding the same stopped chain re-arm it once.
    await deps.queue.send(domainChecksQueue, message, {
      idempotencyKey: `${d.id}:sweep:${d.checkedAt ?? 'never'}`,
      maxAttempts: 5,
    });
  }
  return stale.length;
}
