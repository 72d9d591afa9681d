/**
 * Custom domains: the use cases the API calls and the worker's queue handler. Each lives in
 * its own sibling file; this is the one import for callers.
 *
 * @example
 * // API: POST /api/domains → 201 with the records to create
 * const domain = await createDomain(deps, principal, { serviceId, hostname: 'shop.example.com' }, ctx);
 * // worker
 * await queue.consume(domainChecksQueue, handleDomainCheck(deps));
 * // Caddy on-demand TLS: GET /api/domains/ask?domain=shop.example.com → 200 or 403
 * const allowed = await askDomain(deps, gate, 'shop.example.com');
 */
export { AskGate } from './ask-gate.ts';
export { checkDomain, handleDomainCheck, type CheckResult } from './check.ts';
export {
  backoffSeconds,
  defaultDomainConfig,
  domainChecksQueue,
  type DomainCheckMessage,
  type DomainConfig,
  type DomainDeps,
} from './deps.ts';
export { NegativeCachingResolver } from './dns-cache.ts';
export { assertHostname, challengeName, isApex } from './hostname.ts';
export { checkRecords, requiredRecords, type DnsRecord, type DnsVerdict } from './records.ts';
export { changeRouteHosts } from './route-hosts.ts';
export { assertDomainMove, canMoveDomain, certificateAllowedStatuses } from './state-machine.ts';
export { domainSweepCron, domainSweepSchedule, sweepDomains } from './sweep.ts';
export {
  askDomain,
  createDomain,
  createDomainInput,
  deleteDomain,
  getDomain,
  listDomains,
  verifyDomain,
  type CreateDomainInput,
  type DomainView,
} from './use-cases.ts';
