import { HostnameTaken, isCoreError } from '../errors.ts';
import type { AuditEvent, Domain, DomainStatus } from '../models.ts';
import type { EdgeCertificate, MessageHandler, OrgRepos } from '../ports.ts';
import {
  backoffSeconds,
  domainChecksQueue,
  domainWorkerActor,
  type DomainCheckMessage,
  type DomainDeps,
} from './deps.ts';
import { checkRecords, type DnsVerdict } from './records.ts';
import { changeRouteHosts } from './route-hosts.ts';
import { assertDomainMove } from './state-machine.ts';
import { domainRouteId, targetOf } from './use-cases.ts';

/**
 * The domain worker: one `domain-checks` message checks one domain once and schedules the
 * next check with a growing delay (capped). The same handler runs on pg-boss and on SQS.
 *
 * pending_dns  → DNS polled (TXT token + CNAME/A to the edge) → dns_verified
 * dns_verified → host added to the service environment's route → cert_pending
 *                (no route yet: the service never served; retried until its first release)
 * cert_pending → the edge's certificate for the host is read back (TLS handshake) → active
 * active       → records re-checked now and then; lost ones are flagged, not ignored; the
 *                served certificate's expiry read again (renewals move it)
 */

export interface CheckResult {
  ran: boolean;
  status: DomainStatus | null;
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

interface Run {
  deps: DomainDeps;
  message: DomainCheckMessage;
  domain: Domain;
  target: ReturnType<typeof targetOf>;
  at: string;
}

/** Appends a worker event to the audit trail in `repos`' transaction, and hands it to webhooks. */
async function audit(
  r: Run,
  repos: OrgRepos,
  action: string,
  data: Record<string, unknown> = {},
): Promise<void> {
  const event: AuditEvent = {
    id: r.deps.ids.newId('aud'),
    orgId: r.domain.orgId,
    actorType: domainWorkerActor.actorType,
    actorId: domainWorkerActor.actorId,
    action,
    targetType: 'domain',
    targetId: r.domain.id,
    data: {
      hostname: r.domain.hostname,
      serviceId: r.domain.serviceId,
      environmentId: r.domain.environmentId,
      ...data,
    },
    requestId: null,
    createdAt: r.deps.clock.now().toISOString(),
  };
  await repos.audit.append(event);
  // Webhook fan-out checks that this row committed before anything is delivered.
  await r.deps.events?.publish(event);
}

/** Writes the patch (and moves status when it changes), stamping checkedAt; in one transaction with `extra`. */
async function save(
  r: Run,
  patch: Partial<Omit<Domain, 'id' | 'orgId'>>,
  extra?: (repos: OrgRepos) => Promise<void>,
): Promise<void> {
  if (patch.status && patch.status !== r.domain.status)
    assertDomainMove(r.domain.status, patch.status);
  const full = { ...patch, checkedAt: r.at };
  await r.deps.store.withOrg(r.domain.orgId, async (repos) => {
    await repos.domains.update(r.domain.id, full);
    await extra?.(repos);
  });
  if (patch.status && patch.status !== r.domain.status) {
    r.deps.logger.info(
      {
        domainId: r.domain.id,
        hostname: r.domain.hostname,
        from: r.domain.status,
        to: patch.status,
      },
      'domain moved',
    );
  }
  r.domain = { ...r.domain, ...full };
}

/** Schedules the next check of the domain's current phase (n-th of the phase). */
async function scheduleNext(r: Run, n: number, since: string, delaySeconds: number): Promise<void> {
  const next: DomainCheckMessage = {
    orgId: r.domain.orgId,
    domainId: r.domain.id,
    n,
    expect: r.domain.checkedAt,
    since,
  };
  await r.deps.queue.send(domainChecksQueue, next, {
    delaySeconds,
    idempotencyKey: `${r.domain.id}:${r.domain.checkedAt}`,
    maxAttempts: 5,
  });
}

const seconds = (from: string, to: string) => (Date.parse(to) - Date.parse(from)) / 1000;

async function lookup(
  r: Run,
): Promise<DnsVerdict | { ok: false; reason: string; unavailable: true }> {
  const resolver = r.message.now ? r.deps.dnsFresh : r.deps.dns;
  try {
    return await checkRecords(resolver, r.domain, r.target);
  } catch (e) {
    if (isCoreError(e) && e.kind === 'unavailable') {
      return { ok: false, reason: `DNS lookup failed, retrying: ${e.message}`, unavailable: true };
    }
    throw e;
  }
}

async function pendingDns(r: Run): Promise<void> {
  const { config } = r.deps;
  const verdict = await lookup(r);
  if (!verdict.ok) {
    const waited = seconds(r.message.since, r.at);
    if (waited >= config.dnsGiveUpSeconds) {
      const reason = `DNS not verified after ${Math.round(waited / 3600)} h: ${verdict.reason}; fix the records and POST /api/domains/${r.domain.id}/verify`;
      await save(r, { status: 'failed', dnsStatus: 'failed', lastError: reason }, (repos) =>
        audit(r, repos, 'domain.failed', { reason }),
      );
      return;
    }
    await save(r, { dnsStatus: 'pending', lastError: verdict.reason });
    await scheduleNext(
      r,
      r.message.n + 1,
      r.message.since,
      backoffSeconds(r.message.n, config.dnsBaseDelaySeconds, config.dnsMaxDelaySeconds),
    );
    return;
  }
  try {
    await save(r, { status: 'dns_verified', dnsStatus: 'verified', lastError: null }, (repos) =>
      audit(r, repos, 'domain.dns_verified', { via: verdict.via }),
    );
  } catch (e) {
    if (!(e instanceof HostnameTaken)) throw e;
    // Another org's claim verified first and holds the name (a unique index decides).
    const reason = `${r.domain.hostname} was verified by another org first and is routed there; remove this domain, or POST /api/domains/${r.domain.id}/verify once that org releases it`;
    await save(r, { status: 'failed', dnsStatus: 'verified', lastError: reason }, (repos) =>
      audit(r, repos, 'domain.failed', { reason }),
    );
    return;
  }
  await route(r, 1, r.at);
}

/** dns_verified: put the host on the service environment's route, then wait for the certificate. */
async function route(r: Run, n: number, since: string): Promise<void> {
  const { config } = r.deps;
  let routed;
  try {
    routed = await changeRouteHosts(r.deps.edge, domainRouteId(r.domain), {
      add: [r.domain.hostname],
    });
  } catch (e) {
    await save(r, {
      lastError: `adding ${r.domain.hostname} to the edge failed, retrying: ${errorText(e)}`,
    });
    await scheduleNext(
      r,
      n + 1,
      since,
      backoffSeconds(n, config.certBaseDelaySeconds, config.certMaxDelaySeconds),
    );
    return;
  }
  if (!routed) {
    // Nothing serves the service environment yet; the host joins its route once a release does.
    await save(r, {
      lastError:
        'the service has no serving release in this environment yet; the host is routed after its first release completes',
    });
    // Capped at a minute: a first release takes about that long, and the host should follow it.
    await scheduleNext(
      r,
      n + 1,
      since,
      backoffSeconds(n, config.dnsBaseDelaySeconds, Math.min(60, config.dnsMaxDelaySeconds)),
    );
    return;
  }
  await save(r, { status: 'cert_pending', tlsStatus: 'pending', lastError: null }, (repos) =>
    audit(r, repos, 'domain.routed', { routeId: routed.id }),
  );
  await certificate(r, 1, r.at);
}

async function certificate(r: Run, n: number, since: string): Promise<void> {
  const { config, edge } = r.deps;
  const next = () =>
    scheduleNext(
      r,
      n + 1,
      since,
      backoffSeconds(n, config.certBaseDelaySeconds, config.certMaxDelaySeconds),
    );
  if (!edge.certificate) {
    await save(r, {
      lastError: 'this edge cannot report certificates; the domain stays cert_pending',
    });
    return;
  }
  // The host may have been dropped from the route meanwhile (a racing route change): re-add.
  try {
    await changeRouteHosts(edge, domainRouteId(r.domain), { add: [r.domain.hostname] });
  } catch (e) {
    await save(r, {
      lastError: `adding ${r.domain.hostname} to the edge failed, retrying: ${errorText(e)}`,
    });
    await next();
    return;
  }
  let cert;
  try {
    cert = await edge.certificate(r.domain.hostname);
  } catch (e) {
    await save(r, { lastError: `reading the certificate failed, retrying: ${errorText(e)}` });
    await next();
    return;
  }
  if (cert.status === 'active') {
    await save(
      r,
      {
        status: 'active',
        tlsStatus: 'active',
        dnsStatus: 'verified',
        lastError: null,
        certNotAfter: cert.notAfter,
        certIssuer: cert.issuer,
      },
      (repos) =>
        audit(r, repos, 'domain.cert_active', { issuer: cert.issuer, notAfter: cert.notAfter }),
    );
    await scheduleNext(r, 1, r.at, config.activeRecheckSeconds);
    return;
  }
  const waited = seconds(since, r.at);
  if (waited >= config.certGiveUpSeconds) {
    const reason = `no certificate after ${Math.round(waited / 60)} min: ${cert.detail ?? 'none served'}; POST /api/domains/${r.domain.id}/verify to try again`;
    await save(r, { status: 'failed', tlsStatus: 'failed', lastError: reason }, (repos) =>
      audit(r, repos, 'domain.failed', { reason }),
    );
    return;
  }
  await save(r, { lastError: `certificate not issued yet: ${cert.detail ?? 'none served'}` });
  await next();
}

/** active: records still there? Lost ones are flagged (dnsStatus failed, lastError), not ignored. */
async function recheck(r: Run): Promise<void> {
  const verdict = await lookup(r);
  if (verdict.ok) {
    if (r.domain.dnsStatus !== 'verified') {
      await save(r, { dnsStatus: 'verified', lastError: null }, (repos) =>
        audit(r, repos, 'domain.dns_restored'),
      );
    } else await save(r, {});
    // Keep the host on the route even if a racing change dropped it.
    await changeRouteHosts(r.deps.edge, domainRouteId(r.domain), {
      add: [r.domain.hostname],
    }).catch(() => null);
  } else if ('unavailable' in verdict) {
    await save(r, { lastError: verdict.reason });
  } else {
    const reason = `DNS records no longer verify: ${verdict.reason}`;
    const flagged = r.domain.dnsStatus !== 'failed';
    await save(
      r,
      { dnsStatus: 'failed', lastError: reason },
      flagged ? (repos) => audit(r, repos, 'domain.dns_lost', { reason }) : undefined,
    );
  }
  await refreshCertificate(r);
  await scheduleNext(
    r,
    1,
    r.at,
    r.domain.dnsStatus === 'verified'
      ? r.deps.config.activeRecheckSeconds
      : r.deps.config.dnsMaxDelaySeconds,
  );
}

/** The prefix of a lastError that the certificate read-back of an active domain wrote. */
const certCheckError = 'certificate check: ';

/**
 * active: reads the certificate the edge serves now and keeps its expiry current (a renewal
 * moves it forward), which the `cert_expiring` rule counts down on. A read that finds no
 * valid certificate keeps the last expiry (the alert keeps counting toward it) and says why
 * in lastError; the domain stays active, since its host is still routed.
 */
async function refreshCertificate(r: Run): Promise<void> {
  const { edge } = r.deps;
  if (!edge.certificate) return;
  const cert: EdgeCertificate = await edge
    .certificate(r.domain.hostname)
    .catch((e: unknown): EdgeCertificate => ({
      status: 'missing',
      issuer: null,
      notAfter: null,
      detail: `reading it failed: ${errorText(e)}`,
    }));
  if (cert.status !== 'active' || cert.notAfter === null) {
    if (r.domain.dnsStatus === 'verified')
      await save(r, { lastError: `${certCheckError}${cert.detail ?? 'none served'}` });
    return;
  }
  const clears = r.domain.lastError?.startsWith(certCheckError) ?? false;
  if (cert.notAfter === r.domain.certNotAfter && cert.issuer === r.domain.certIssuer && !clears)
    return;
  const previous = r.domain.certNotAfter;
  const renewed = previous !== null && previous !== cert.notAfter;
  await save(
    r,
    {
      certNotAfter: cert.notAfter,
      certIssuer: cert.issuer,
      ...(clears ? { lastError: null } : {}),
    },
    renewed
      ? (repos) =>
          audit(r, repos, 'domain.cert_renewed', {
            issuer: cert.issuer,
            notAfter: cert.notAfter,
            previousNotAfter: previous,
          })
      : undefined,
  );
}

/**
 * Runs one check of a domain: the handler of one `domain-checks` message. A message of an
 * older chain (the domain was checked since) or for a deleted domain does nothing. Store
 * errors are rethrown, so the queue redelivers the message.
 */
export async function checkDomain(
  deps: DomainDeps,
  message: DomainCheckMessage,
  attempt = 1,
): Promise<CheckResult> {
  const loaded = await deps.store.withOrg(message.orgId, async (repos) => {
    const domain = await repos.domains.get(message.domainId);
    if (!domain) return null;
    const service = await repos.services.get(domain.serviceId);
    const environment = await repos.environments.get(domain.environmentId);
    return { domain, target: service && environment ? targetOf(deps, service, environment) : null };
  });
  if (!loaded?.target) return { ran: false, status: loaded?.domain.status ?? null };
  const { domain, target } = loaded;
  // A redelivered message runs whatever it finds: its first delivery may have stamped
  // checkedAt and died before scheduling the next check. Two chains then converge, since
  // each check re-stamps checkedAt and the other chain's next message finds it changed.
  if (!message.now && attempt === 1 && domain.checkedAt !== message.expect) {
    // Written by a check that has not committed yet? Then retry; otherwise this chain is stale.
    if (domain.checkedAt !== null && message.expect !== null && domain.checkedAt < message.expect) {
      throw new Error(
        `domain ${domain.id} was checked at ${domain.checkedAt}, before this message expects (${message.expect})`,
      );
    }
    return { ran: false, status: domain.status };
  }
  const r: Run = { deps, message, domain, target, at: deps.clock.now().toISOString() };
  // Two checks in one millisecond would share a checkedAt and so a chain: keep them apart.
  if (r.at === domain.checkedAt) r.at = new Date(Date.parse(r.at) + 1).toISOString();
  switch (domain.status) {
    case 'pending_dns':
      await pendingDns(r);
      break;
    case 'dns_verified':
      await route(r, message.n, message.since);
      break;
    case 'cert_pending':
      await certificate(r, message.n, message.since);
      break;
    case 'active':
      await recheck(r);
      break;
    case 'failed':
      return { ran: false, status: 'failed' };
  }
  return { ran: true, status: r.domain.status };
}

/** The `domain-checks` queue handler: `queue.consume(domainChecksQueue, handleDomainCheck(deps))`. */
export function handleDomainCheck(deps: DomainDeps): MessageHandler<DomainCheckMessage> {
  return async (m) => {
    await checkDomain(deps, m.payload, m.attempt);
  };
}
