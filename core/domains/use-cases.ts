import * as z from 'zod';
import { HostnameTaken, InvalidInput, NotFound, TooManyAttempts } from '../errors.ts';
import type { Domain, Environment, Page, PageRequest, Service } from '../models.ts';
import type { OrgRepos } from '../ports.ts';
import { defaultHosts, routeId } from '../releases/plan.ts';
import { assertCan } from '../roles.ts';
import { id, slugName } from '../schemas.ts';
import { recordAudit, requireOrg, type Principal, type RequestContext } from '../deps.ts';
import type { AskGate } from './ask-gate.ts';
import { domainChecksQueue, type DomainCheckMessage, type DomainDeps } from './deps.ts';
import { assertHostname } from './hostname.ts';
import { requiredRecords, type DnsRecord } from './records.ts';
import { changeRouteHosts } from './route-hosts.ts';
import {
  assertDomainMove,
  certificateAllowedStatuses,
  hostnameHoldingStatuses,
} from './state-machine.ts';

/** Body of `POST /api/domains`; the hostname is checked by assertHostname (400 naming it). */
export const createDomainInput = z.strictObject({
  serviceId: id,
  environment: slugName.optional(),
  hostname: z.string().max(300),
});
export type CreateDomainInput = z.input<typeof createDomainInput>;

/** A domain as the API shows it: its progress and the records its owner must create. */
export interface DomainView {
  id: string;
  hostname: string;
  serviceId: string;
  environmentId: string;
  status: Domain['status'];
  dnsStatus: Domain['dnsStatus'];
  tlsStatus: Domain['tlsStatus'];
  lastError: string | null;
  checkedAt: string | null;
  createdAt: string;
  /** The served certificate's expiry and issuer as last read (null before the first one). */
  certNotAfter: string | null;
  certIssuer: string | null;
  /** Whole days until certNotAfter (negative once expired); null without a certificate. */
  certDaysLeft: number | null;
  records: DnsRecord[];
}

/** Whole days from `now` until `notAfter`, rounded down (the `cert_expiring` rule's unit). */
export function certDaysLeft(notAfter: string | null, now: Date): number | null {
  if (notAfter === null) return null;
  return Math.floor((Date.parse(notAfter) - now.getTime()) / 86_400_000);
}

/** The default host of the domain's service environment: the CNAME target. */
export function targetOf(
  deps: Pick<DomainDeps, 'config'>,
  service: Service,
  environment: Environment,
) {
  return {
    defaultHost: defaultHosts({ service, environment, edgeDomain: deps.config.edgeDomain })[0]!,
    edgeIpv4: deps.config.edgeIpv4,
  };
}

/** The route a domain's host joins: its service environment's one route. */
export const domainRouteId = (d: Pick<Domain, 'serviceId' | 'environmentId'>): string =>
  routeId(d.serviceId, d.environmentId);

async function loadTarget(
  deps: Pick<DomainDeps, 'config'>,
  repos: OrgRepos,
  d: Pick<Domain, 'serviceId' | 'environmentId'>,
) {
  const service = await repos.services.get(d.serviceId);
  if (!service) throw new NotFound('service', d.serviceId);
  const environment = await repos.environments.get(d.environmentId);
  if (!environment) throw new NotFound('environment', d.environmentId);
  return targetOf(deps, service, environment);
}

function view(d: Domain, records: DnsRecord[], now: Date): DomainView {
  return {
    id: d.id,
    hostname: d.hostname,
    serviceId: d.serviceId,
    environmentId: d.environmentId,
    status: d.status,
    dnsStatus: d.dnsStatus,
    tlsStatus: d.tlsStatus,
    lastError: d.lastError,
    checkedAt: d.checkedAt,
    createdAt: d.createdAt,
    certNotAfter: d.certNotAfter,
    certIssuer: d.certIssuer,
    certDaysLeft: certDaysLeft(d.certNotAfter, now),
    records,
  };
}

function parseInput(input: unknown): z.infer<typeof createDomainInput> {
  const parsed = createDomainInput.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field =
    issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : '(body)');
  throw new InvalidInput(`${field}: ${issue.message}`, { field });
}

/** The audit actions that count as one domain change each (both rewrite the route's hosts). */
const domainChangeActions = ['domain.created', 'domain.deleted'] as const;

/**
 * 429 when the org has used its domain changes of the last hour (`changesPerOrgPerHour`),
 * waiting until the oldest of them leaves the window. Counted from the audit trail, so
 * it holds across API processes and Lambda instances alike.
 */
async function assertDomainChangeAllowed(
  deps: Pick<DomainDeps, 'clock' | 'config'>,
  repos: OrgRepos,
): Promise<void> {
  const hourMs = 3600_000;
  const now = deps.clock.now().getTime();
  const since = new Date(now - hourMs).toISOString();
  // A change exactly an hour old has left the window: that is when retryAfter points.
  const used = await repos.audit.countSince(domainChangeActions, since);
  if (used.count < deps.config.changesPerOrgPerHour) return;
  const freeAt = (used.oldest ? Date.parse(used.oldest) : now) + hourMs;
  throw new TooManyAttempts(Math.max(1, Math.ceil((freeAt - now) / 1000)), 'domain change');
}

/** Sends the check that runs now (after a commit, so the worker finds the row). */
export async function sendCheckNow(
  deps: Pick<DomainDeps, 'queue' | 'clock'>,
  d: Domain,
  since: string,
): Promise<void> {
  const message: DomainCheckMessage = {
    orgId: d.orgId,
    domainId: d.id,
    n: 1,
    expect: d.checkedAt,
    since,
    now: true,
  };
  await deps.queue.send(domainChecksQueue, message, {
    idempotencyKey: `${d.id}:now:${deps.clock.now().toISOString()}`,
    maxAttempts: 5,
  });
}

/**
 * Registers a custom hostname for a service environment (`POST /api/domains`, 201): it
 * starts `pending_dns` with a fresh verification token, and the worker starts polling.
 * Invalid hostname → 400 naming `hostname`; already claimed by this org, or verified by
 * another → 409. Another org's unverified claim does not block it: the first to verify wins.
 */
export async function createDomain(
  deps: DomainDeps,
  principal: Principal,
  input: CreateDomainInput,
  ctx: RequestContext | null = null,
): Promise<DomainView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const body = parseInput(input);
  const hostname = assertHostname(body.hostname, { edgeDomain: deps.config.edgeDomain });
  const envName = body.environment ?? 'production';
  // A name another org has proved stays theirs; its pending claims are no obstacle.
  const holder = await deps.store.domainLookup.findDomainByHostname(hostname);
  if (holder && holder.orgId !== p.orgId && hostnameHoldingStatuses.includes(holder.status))
    throw new HostnameTaken(hostname);
  const created = await deps.store.withOrg(p.orgId, async (repos) => {
    const service = await repos.services.get(body.serviceId);
    if (!service) throw new NotFound('service', body.serviceId);
    if (service.kind === 'worker')
      throw new InvalidInput('serviceId: a worker has no route, so it takes no domain', {
        field: 'serviceId',
      });
    const environment = await repos.environments.findByName(service.projectId, envName);
    if (!environment) throw new NotFound('environment', envName);
    await assertDomainChangeAllowed(deps, repos);
    const at = deps.clock.now().toISOString();
    const domain: Domain = {
      id: deps.ids.newId('dom'),
      orgId: p.orgId,
      serviceId: service.id,
      environmentId: environment.id,
      hostname,
      verificationToken: `sdo-${deps.ids.newSecret(24)}`,
      status: 'pending_dns',
      dnsStatus: 'pending',
      tlsStatus: 'none',
      lastError: null,
      checkedAt: null,
      createdAt: at,
      certNotAfter: null,
      certIssuer: null,
    };
    await repos.domains.insert(domain);
    await recordAudit(deps, repos, p, ctx, {
      action: 'domain.created',
      targetType: 'domain',
      targetId: domain.id,
      data: { hostname, serviceId: service.id, environmentId: environment.id },
    });
    return { domain, target: targetOf(deps, service, environment) };
  });
  await sendCheckNow(deps, created.domain, created.domain.createdAt);
  return view(created.domain, requiredRecords(created.domain, created.target), deps.clock.now());
}

export async function getDomain(
  deps: DomainDeps,
  principal: Principal,
  domainId: string,
): Promise<DomainView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) => {
    const d = await repos.domains.get(domainId);
    if (!d) throw new NotFound('domain', domainId);
    return view(d, requiredRecords(d, await loadTarget(deps, repos, d)), deps.clock.now());
  });
}

export async function listDomains(
  deps: DomainDeps,
  principal: Principal,
  page: PageRequest,
  filter: { serviceId?: string; environmentId?: string } = {},
): Promise<Page<DomainView>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) => {
    const found = await repos.domains.list(page, filter);
    const targets = new Map<string, Awaited<ReturnType<typeof loadTarget>>>();
    const items: DomainView[] = [];
    for (const d of found.items) {
      const key = `${d.serviceId}:${d.environmentId}`;
      if (!targets.has(key)) targets.set(key, await loadTarget(deps, repos, d));
      items.push(view(d, requiredRecords(d, targets.get(key)!), deps.clock.now()));
    }
    return { items, nextCursor: found.nextCursor };
  });
}

/**
 * Checks the domain now instead of at its next poll (`POST /api/domains/{id}/verify`,
 * 202), bypassing the negative DNS cache. A `failed` domain starts over at `pending_dns`.
 */
export async function verifyDomain(
  deps: DomainDeps,
  principal: Principal,
  domainId: string,
  ctx: RequestContext | null = null,
): Promise<DomainView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const at = deps.clock.now().toISOString();
  const { domain, since, target } = await deps.store.withOrg(p.orgId, async (repos) => {
    const d = await repos.domains.get(domainId);
    if (!d) throw new NotFound('domain', domainId);
    let current = d;
    if (d.status === 'failed') {
      assertDomainMove('failed', 'pending_dns');
      const patch = {
        status: 'pending_dns' as const,
        dnsStatus: 'pending' as const,
        tlsStatus: 'none' as const,
      };
      await repos.domains.update(d.id, patch);
      current = { ...d, ...patch };
    }
    await recordAudit(deps, repos, p, ctx, {
      action: 'domain.verify_requested',
      targetType: 'domain',
      targetId: d.id,
      data: { hostname: d.hostname, status: current.status },
    });
    return {
      domain: current,
      since: d.status === 'failed' ? at : d.createdAt,
      target: await loadTarget(deps, repos, d),
    };
  });
  await sendCheckNow(deps, domain, since);
  return view(domain, requiredRecords(domain, target), deps.clock.now());
}

/**
 * Removes a custom domain (`DELETE /api/domains/{id}`, 204): its host leaves the route
 * first (an unreachable edge is a 503 and the domain stays), then the row goes, so the
 * `ask` endpoint refuses the host and Caddy never renews its certificate.
 */
export async function deleteDomain(
  deps: DomainDeps,
  principal: Principal,
  domainId: string,
  ctx: RequestContext | null = null,
  gate?: AskGate,
): Promise<void> {
  const p = requireOrg(principal);
  assertCan(p.role, 'manage-resources');
  const d = await deps.store.withOrg(p.orgId, async (repos) => {
    const found = await repos.domains.get(domainId);
    if (!found) throw new NotFound('domain', domainId);
    await assertDomainChangeAllowed(deps, repos);
    return found;
  });
  await changeRouteHosts(deps.edge, domainRouteId(d), { remove: [d.hostname] });
  await deps.store.withOrg(p.orgId, async (repos) => {
    if (!(await repos.domains.delete(d.id))) throw new NotFound('domain', domainId);
    await recordAudit(deps, repos, p, ctx, {
      action: 'domain.deleted',
      targetType: 'domain',
      targetId: d.id,
      data: { hostname: d.hostname, serviceId: d.serviceId, environmentId: d.environmentId },
    });
  });
  gate?.reset(d.hostname);
}

/**
 * Caddy's on-demand TLS `ask`: may a certificate be obtained for `hostname` now? Yes only
 * for a registered custom domain whose DNS is verified (or later), within the AskGate's
 * per-host backoff. One indexed lookup; no org is known, so it goes through the
 * cross-org `DomainLookup`.
 */
export async function askDomain(
  deps: Pick<DomainDeps, 'store'>,
  gate: AskGate | null,
  hostname: string | undefined,
): Promise<boolean> {
  if (!hostname || hostname.length > 253) return false;
  const name = hostname.toLowerCase().replace(/\.$/, '');
  const found = await deps.store.domainLookup.findDomainByHostname(name);
  if (!found || !certificateAllowedStatuses.includes(found.status)) return false;
  return gate ? gate.allow(name, found.status === 'active') : true;
}
