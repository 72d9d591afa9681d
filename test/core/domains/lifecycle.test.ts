import { beforeEach, describe, expect, it } from 'vitest';
import {
  askDomain,
  checkDomain,
  createDomain,
  deleteDomain,
  domainChecksQueue,
  getDomain,
  listDomains,
  sweepDomains,
  verifyDomain,
  type DomainCheckMessage,
  type DomainView,
} from '../../../core/domains/engine.ts';
import { Unavailable } from '../../../core/errors.ts';
import type { AuditEvent } from '../../../core/models.ts';
import { aProject, aService, anEnvironment, anOrg } from '../releases/builders.ts';
import { deployer, edgeIp, orgId, setupDomains, viewer, type DomainHarness } from './harness.ts';

const actions = (h: DomainHarness) =>
  h.repos(async (r) => (await r.audit.list({ limit: 200 })).items.map((e) => e.action));

describe('custom domains: use cases and worker (all ports in memory)', () => {
  let h: DomainHarness;
  let d: DomainView;

  beforeEach(async () => {
    h = await setupDomains();
    d = await createDomain(h.deps, deployer, {
      serviceId: h.service.id,
      hostname: 'shop.example.com',
    });
  });

  it('creates a pending domain with its TXT token and a CNAME to the default host, and checks it at once', async () => {
    expect(d).toMatchObject({
      status: 'pending_dns',
      dnsStatus: 'pending',
      tlsStatus: 'none',
      hostname: 'shop.example.com',
    });
    expect(d.records).toEqual([
      {
        type: 'TXT',
        name: '_selfdevop-challenge.shop.example.com',
        value: expect.stringMatching(/^sdo-\S{16,}$/),
      },
      { type: 'CNAME', name: 'shop.example.com', value: h.defaultHost },
    ]);
    expect(h.queue.of(domainChecksQueue)).toHaveLength(1);
    expect(h.queue.of(domainChecksQueue)[0]!.options.delaySeconds).toBeUndefined();
    expect(await actions(h)).toEqual(['domain.created']);
  });

  it('gives an apex an A record to the edge address instead of a CNAME', async () => {
    const apex = await createDomain(h.deps, deployer, {
      serviceId: h.service.id,
      hostname: 'example.com',
    });
    expect(apex.records[1]).toEqual({ type: 'A', name: 'example.com', value: edgeIp });
  });

  it('refuses, with 409, a hostname another org has verified, but not one it merely claimed', async () => {
    await h.store.withOrg('org_000002', async (r) => {
      await r.orgs.insert(anOrg({ id: 'org_000002', name: 'other' }));
      await r.projects.insert(aProject({ id: 'prj_000002', orgId: 'org_000002' }));
      await r.environments.insert(
        anEnvironment({ id: 'env_000002', orgId: 'org_000002', projectId: 'prj_000002' }),
      );
      await r.services.insert(
        aService({ id: 'svc_000002', orgId: 'org_000002', projectId: 'prj_000002' }),
      );
    });
    const other = { ...deployer, orgId: 'org_000002' };
    // d is only pending: the name is not held, so another org may claim it too.
    const rival = await createDomain(h.deps, other, {
      serviceId: 'svc_000002',
      hostname: 'shop.example.com',
    });
    expect(rival.status).toBe('pending_dns');
    await h.repos((r) => r.domains.update(d.id, { status: 'dns_verified' }));
    await h.store.withOrg('org_000002', (r) => r.domains.delete(rival.id));
    await expect(
      createDomain(h.deps, other, { serviceId: 'svc_000002', hostname: 'shop.example.com' }),
    ).rejects.toMatchObject({ kind: 'conflict', code: 'hostname_taken' });
  });

  it('limits an org to its domain changes per hour (429 until the oldest leaves the hour), without touching other orgs', async () => {
    h = await setupDomains({ changesPerOrgPerHour: 3 });
    const add = (hostname: string, who = deployer, serviceId = h.service.id) =>
      createDomain(h.deps, who, { serviceId, hostname });
    const first = await add('a.example.com');
    h.clock.advance(10 * 60_000);
    await add('b.example.com');
    await deleteDomain(h.deps, deployer, first.id);
    h.clock.advance(60_000);
    // Three changes (two adds, one delete) within the hour: a fourth of either kind waits.
    const limited = { kind: 'rate_limited', code: 'too_many_attempts' };
    await expect(add('c.example.com')).rejects.toMatchObject({
      ...limited,
      message: expect.stringContaining('too many domain change attempts'),
      // The oldest change was 11 minutes ago: it leaves the window in 49 minutes.
      details: { retryAfterSeconds: 49 * 60 },
    });
    const b = (await listDomains(h.deps, deployer, { limit: 10 })).items.find(
      (x) => x.hostname === 'b.example.com',
    )!;
    await expect(deleteDomain(h.deps, deployer, b.id)).rejects.toMatchObject(limited);
    // Nothing was half-applied: no domain row, no audit event, b still registered.
    expect(
      (await listDomains(h.deps, deployer, { limit: 10 })).items.map((x) => x.hostname),
    ).toEqual(['b.example.com']);
    expect(await actions(h)).toEqual(['domain.created', 'domain.created', 'domain.deleted']);
    // Another org has its own budget.
    await h.store.withOrg('org_000002', async (r) => {
      await r.orgs.insert(anOrg({ id: 'org_000002', name: 'other' }));
      await r.projects.insert(aProject({ id: 'prj_000002', orgId: 'org_000002' }));
      await r.environments.insert(
        anEnvironment({ id: 'env_000002', orgId: 'org_000002', projectId: 'prj_000002' }),
      );
      await r.services.insert(
        aService({ id: 'svc_000002', orgId: 'org_000002', projectId: 'prj_000002' }),
      );
    });
    await expect(
      add('d.example.com', { ...deployer, orgId: 'org_000002' }, 'svc_000002'),
    ).resolves.toMatchObject({ status: 'pending_dns' });
    // Once the oldest change is an hour old, one more fits.
    h.clock.advance(49 * 60_000);
    await expect(add('c.example.com')).resolves.toMatchObject({ hostname: 'c.example.com' });
    await expect(add('e.example.com')).rejects.toMatchObject(limited);
  });

  it('refuses bad input with 400 naming the field, and viewers with 403', async () => {
    await expect(
      createDomain(h.deps, deployer, { serviceId: h.service.id, hostname: '*.example.com' }),
    ).rejects.toMatchObject({
      kind: 'invalid',
      details: { field: 'hostname' },
    });
    await expect(
      createDomain(h.deps, deployer, { serviceId: h.service.id, hostname: 'x.apps.example.test' }),
    ).rejects.toMatchObject({
      details: { field: 'hostname' },
    });
    await expect(
      createDomain(h.deps, viewer, { serviceId: h.service.id, hostname: 'b.example.com' }),
    ).rejects.toMatchObject({
      kind: 'forbidden',
    });
    await expect(
      createDomain(h.deps, deployer, { serviceId: 'svc_999999', hostname: 'b.example.com' }),
    ).rejects.toMatchObject({
      kind: 'not_found',
    });
    await expect(
      createDomain(h.deps, deployer, {
        serviceId: h.service.id,
        hostname: 'b.example.com',
        environment: 'staging',
      }),
    ).rejects.toMatchObject({ kind: 'not_found' });
  });

  it('polls DNS with a growing, capped delay and says what is missing', async () => {
    await h.runDue();
    let got = await h.domain(d.id);
    expect(got.status).toBe('pending_dns');
    expect(got.lastError).toMatch(
      /TXT record _selfdevop-challenge\.shop\.example\.com must hold sdo-.* \(none found\)/,
    );
    for (let i = 0; i < 10; i++) await h.next();
    const delays = h.queue
      .of(domainChecksQueue)
      .slice(1)
      .map((s) => s.options.delaySeconds);
    expect(delays.slice(0, 8)).toEqual([5, 10, 20, 40, 80, 160, 320, 600]);
    expect(Math.max(...delays.map(Number))).toBe(600);

    h.dns.setTxt('_selfdevop-challenge.shop.example.com', got.verificationToken);
    h.dns.setCname('shop.example.com', 'elsewhere.example.net');
    await h.next();
    got = await h.domain(d.id);
    expect(got.lastError).toMatch(
      /must point at the edge with CNAME .* \(found CNAME elsewhere\.example\.net\)/,
    );
  });

  it('goes pending_dns → dns_verified → cert_pending → active, keeping the route upstream, with audit events', async () => {
    const published: AuditEvent[] = [];
    h.deps.events = { publish: async (e) => void published.push(e) };
    await h.serve('10.0.0.5:32768');
    const domain = await h.domain(d.id);
    h.point(domain);
    await h.runDue();
    let got = await h.domain(d.id);
    expect(got).toMatchObject({
      status: 'cert_pending',
      dnsStatus: 'verified',
      tlsStatus: 'pending',
    });
    expect(got.lastError).toMatch(/no certificate for shop\.example\.com/);
    expect(await h.edge.get(h.routeId)).toMatchObject({
      hosts: [h.defaultHost, 'shop.example.com'],
      upstreams: ['10.0.0.5:32768'],
    });

    h.edge.issue('shop.example.com');
    await h.next();
    got = await h.domain(d.id);
    expect(got).toMatchObject({
      status: 'active',
      dnsStatus: 'verified',
      tlsStatus: 'active',
      lastError: null,
    });
    expect(await actions(h)).toEqual([
      'domain.created',
      'domain.dns_verified',
      'domain.routed',
      'domain.cert_active',
    ]);
    const certEvent = await h.repos((r) =>
      r.audit.list({ limit: 1 }, { action: 'domain.cert_active' }),
    );
    expect(certEvent.items[0]!.data).toMatchObject({
      issuer: 'Pebble Intermediate CA',
      hostname: 'shop.example.com',
    });
    // Active domains are re-checked, rarely.
    expect(h.queue.of(domainChecksQueue).at(-1)!.options.delaySeconds).toBe(
      h.deps.config.activeRecheckSeconds,
    );

    expect(published.map((e) => e.action)).toEqual([
      'domain.dns_verified',
      'domain.routed',
      'domain.cert_active',
    ]);
    expect(published.every((e) => e.targetType === 'domain' && e.targetId === d.id)).toBe(true);

    const view = await getDomain(h.deps, deployer, d.id);
    expect(view).toMatchObject({
      id: d.id,
      hostname: 'shop.example.com',
      status: 'active',
      records: d.records,
    });
    expect((await listDomains(h.deps, deployer, { limit: 10 })).items.map((x) => x.id)).toEqual([
      d.id,
    ]);
  });

  it('keeps the served certificate’s expiry: stored on activation, moved by a renewal, kept when the edge serves none', async () => {
    await h.serve();
    h.point(await h.domain(d.id));
    h.edge.issue('shop.example.com');
    await h.runDue();
    let got = await h.domain(d.id);
    expect(got).toMatchObject({
      status: 'active',
      certNotAfter: '2026-04-01T00:00:00.000Z',
      certIssuer: 'Pebble Intermediate CA',
    });
    // The clock is at 2026-01-01: 90 days left, as the API shows it.
    expect((await getDomain(h.deps, viewer, d.id)).certDaysLeft).toBe(90);

    // The edge renewed it: the periodic check reads the new expiry, with an audit row.
    h.edge.certs.set('shop.example.com', {
      status: 'active',
      issuer: 'Pebble Intermediate CA',
      notAfter: '2026-06-30T00:00:00.000Z',
      detail: null,
    });
    await h.next();
    got = await h.domain(d.id);
    expect(got).toMatchObject({ certNotAfter: '2026-06-30T00:00:00.000Z', lastError: null });
    const renewed = await h.repos((r) =>
      r.audit.list({ limit: 1 }, { action: 'domain.cert_renewed' }),
    );
    expect(renewed.items[0]!.data).toMatchObject({
      notAfter: '2026-06-30T00:00:00.000Z',
      previousNotAfter: '2026-04-01T00:00:00.000Z',
    });

    // The edge lost it: the expiry stays (the alert keeps counting toward it), lastError says why.
    h.edge.certs.delete('shop.example.com');
    await h.next();
    got = await h.domain(d.id);
    expect(got).toMatchObject({
      status: 'active',
      certNotAfter: '2026-06-30T00:00:00.000Z',
      lastError: 'certificate check: no certificate for shop.example.com',
    });
    // Served again: the error clears without a renewal row.
    h.edge.certs.set('shop.example.com', {
      status: 'active',
      issuer: 'Pebble Intermediate CA',
      notAfter: '2026-06-30T00:00:00.000Z',
      detail: null,
    });
    await h.next();
    expect(await h.domain(d.id)).toMatchObject({ lastError: null });
    expect((await actions(h)).filter((a) => a === 'domain.cert_renewed')).toHaveLength(1);
  });

  it('accepts an A record to the edge address instead of a CNAME', async () => {
    await h.serve();
    const domain = await h.domain(d.id);
    h.dns.setTxt('_selfdevop-challenge.shop.example.com', domain.verificationToken);
    h.dns.setA('shop.example.com', edgeIp);
    await h.runDue();
    expect((await h.domain(d.id)).status).toBe('cert_pending');
  });

  it('refuses A records that are not all the edge', async () => {
    const domain = await h.domain(d.id);
    h.dns.setTxt('_selfdevop-challenge.shop.example.com', domain.verificationToken);
    h.dns.setA('shop.example.com', edgeIp, '198.51.100.7');
    await h.runDue();
    expect((await h.domain(d.id)).lastError).toMatch(/found A 203\.0\.113\.10, 198\.51\.100\.7/);
  });

  it('keeps a verified domain waiting while the service has never served, and routes it after the first release', async () => {
    h.point(await h.domain(d.id));
    await h.runDue();
    let got = await h.domain(d.id);
    expect(got.status).toBe('dns_verified');
    expect(got.lastError).toMatch(/no serving release/);
    expect(await h.edge.get(h.routeId)).toBeNull();
    // Waiting for a first release polls at most once a minute.
    for (let i = 0; i < 8; i++) await h.next();
    expect(h.queue.of(domainChecksQueue).at(-1)!.options.delaySeconds).toBe(60);
    await h.serve();
    await h.next();
    got = await h.domain(d.id);
    expect(got.status).toBe('cert_pending');
    expect((await h.edge.get(h.routeId))!.hosts).toContain('shop.example.com');
  });

  it('stays pending with a clear lastError while DNS is down, and recovers when it is back', async () => {
    h.dns.setUnreachable(true);
    await h.runDue();
    await h.next();
    let got = await h.domain(d.id);
    expect(got).toMatchObject({ status: 'pending_dns', dnsStatus: 'pending' });
    expect(got.lastError).toMatch(/^DNS lookup failed, retrying: dns is unavailable/);
    h.dns.setUnreachable(false);
    h.point(got);
    await h.serve();
    await h.next();
    got = await h.domain(d.id);
    expect(got.status).toBe('cert_pending');
  });

  it('flags an active domain whose records disappear, and clears the flag when they come back', async () => {
    await h.serve();
    h.point(await h.domain(d.id));
    h.edge.issue('shop.example.com');
    await h.runDue();
    expect((await h.domain(d.id)).status).toBe('active');
    h.dns.clear('txt', '_selfdevop-challenge.shop.example.com');
    await h.next();
    let got = await h.domain(d.id);
    expect(got).toMatchObject({ status: 'active', dnsStatus: 'failed' });
    expect(got.lastError).toMatch(/DNS records no longer verify: TXT record/);
    expect(await actions(h)).toContain('domain.dns_lost');
    h.point(got);
    await h.next();
    got = await h.domain(d.id);
    expect(got).toMatchObject({ status: 'active', dnsStatus: 'verified', lastError: null });
    expect(await actions(h)).toContain('domain.dns_restored');
  });

  it('gives up after dnsGiveUpSeconds with a reason, and a verify starts it over', async () => {
    h.deps.config.dnsGiveUpSeconds = 3600;
    await h.runDue();
    for (let i = 0; i < 12 && (await h.domain(d.id)).status !== 'failed'; i++) await h.next();
    let got = await h.domain(d.id);
    expect(got).toMatchObject({ status: 'failed', dnsStatus: 'failed' });
    expect(got.lastError).toMatch(
      /DNS not verified after 1 h: TXT record .*POST \/api\/domains\/dom_\w+\/verify/,
    );
    expect(h.queue.of(domainChecksQueue).filter((s) => !s.handled)).toEqual([]);

    await h.serve();
    h.point(got);
    const verified = await verifyDomain(h.deps, deployer, d.id);
    expect(verified.status).toBe('pending_dns');
    await h.runDue();
    got = await h.domain(d.id);
    expect(got.status).toBe('cert_pending');
    expect(await actions(h)).toEqual(
      expect.arrayContaining(['domain.failed', 'domain.verify_requested']),
    );
  });

  it('fails a certificate that never comes after certGiveUpSeconds', async () => {
    h.deps.config.certGiveUpSeconds = 600;
    await h.serve();
    h.point(await h.domain(d.id));
    await h.runDue();
    for (let i = 0; i < 20 && (await h.domain(d.id)).status !== 'failed'; i++) await h.next();
    const got = await h.domain(d.id);
    expect(got).toMatchObject({ status: 'failed', tlsStatus: 'failed' });
    expect(got.lastError).toMatch(
      /no certificate after 1\d min: no certificate for shop\.example\.com/,
    );
  });

  it('verify now bypasses the negative cache and retires the older poll chain', async () => {
    await h.runDue();
    const domain = await h.domain(d.id);
    const queries = () =>
      h.dns.queries.filter((q) => q === 'txt _selfdevop-challenge.shop.example.com').length;
    expect(queries()).toBe(1);
    h.point(domain);
    // The record is there, but the cached miss still answers for the poller.
    await h.serve();
    const stale = h.queue.of(domainChecksQueue).find((s) => !s.handled)!;
    await verifyDomain(h.deps, deployer, d.id);
    const now = h.queue.of(domainChecksQueue).at(-1)!;
    now.handled = true;
    await checkDomain(h.deps, now.payload as DomainCheckMessage);
    expect(queries()).toBe(2);
    expect((await h.domain(d.id)).status).toBe('cert_pending');
    stale.handled = true;
    expect(await checkDomain(h.deps, stale.payload as DomainCheckMessage)).toEqual({
      ran: false,
      status: 'cert_pending',
    });
  });

  it('answers ask only for verified hosts, within the CA backoff', async () => {
    expect(await askDomain(h.deps, h.gate, 'shop.example.com')).toBe(false);
    expect(await askDomain(h.deps, h.gate, 'unknown.example.com')).toBe(false);
    expect(await askDomain(h.deps, h.gate, undefined)).toBe(false);
    expect(await askDomain(h.deps, h.gate, 'x'.repeat(300))).toBe(false);
    await h.serve();
    h.point(await h.domain(d.id));
    await h.runDue();
    expect(await askDomain(h.deps, h.gate, 'SHOP.example.com.')).toBe(true);
    h.clock.advance(3_000);
    expect(await askDomain(h.deps, h.gate, 'shop.example.com')).toBe(false);
    expect(await askDomain(h.deps, null, 'shop.example.com')).toBe(true);
  });

  it('deletes: the host leaves the route, the row goes, ask says no, and it is audited', async () => {
    await h.serve('10.0.0.5:1234');
    h.point(await h.domain(d.id));
    h.edge.issue('shop.example.com');
    await h.runDue();
    await deleteDomain(h.deps, deployer, d.id, null, h.gate);
    expect(await h.edge.get(h.routeId)).toMatchObject({
      hosts: [h.defaultHost],
      upstreams: ['10.0.0.5:1234'],
    });
    await expect(getDomain(h.deps, deployer, d.id)).rejects.toMatchObject({ kind: 'not_found' });
    expect(await askDomain(h.deps, h.gate, 'shop.example.com')).toBe(false);
    expect(await actions(h)).toContain('domain.deleted');
    // A check still queued for it does nothing.
    expect(await h.runDue()).toBeGreaterThanOrEqual(0);
    await expect(deleteDomain(h.deps, deployer, d.id)).rejects.toMatchObject({ kind: 'not_found' });
  });

  it('keeps the domain when the edge is unreachable on delete (503), so it can be retried', async () => {
    await h.serve();
    h.edge.setUnreachable(true);
    await expect(deleteDomain(h.deps, deployer, d.id)).rejects.toBeInstanceOf(Unavailable);
    expect((await h.domain(d.id)).id).toBe(d.id);
  });

  it('retries a check whose edge call failed, with a lastError', async () => {
    await h.serve();
    h.point(await h.domain(d.id));
    h.edge.failNext(new Unavailable('caddy', 'connection refused'));
    await h.runDue(1);
    const got = await h.domain(d.id);
    expect(got.status).toBe('dns_verified');
    expect(got.lastError).toMatch(
      /adding shop\.example\.com to the edge failed, retrying: caddy is unavailable/,
    );
    await h.next();
    expect((await h.domain(d.id)).status).toBe('cert_pending');
  });

  it('only the org that owns a domain sees it', async () => {
    const stranger = { ...deployer, orgId: 'org_000009' };
    await expect(getDomain(h.deps, stranger, d.id)).rejects.toMatchObject({ kind: 'not_found' });
    await expect(verifyDomain(h.deps, stranger, d.id)).rejects.toMatchObject({ kind: 'not_found' });
    await expect(deleteDomain(h.deps, stranger, d.id)).rejects.toMatchObject({ kind: 'not_found' });
    expect((await h.domain(d.id)).orgId).toBe(orgId);
  });
});

describe('the domain sweep (re-arms stopped checks)', () => {
  it('sends one more check for a domain whose chain stopped, once per stale stamp, and the chain resumes', async () => {
    const h = await setupDomains();
    const d = await createDomain(h.deps, deployer, {
      serviceId: h.service.id,
      hostname: 'lost.example.com',
    });
    await h.runDue(1);
    // The next check's message is lost.
    for (const s of h.queue.of(domainChecksQueue)) s.handled = true;
    expect(await sweepDomains(h.deps)).toBe(0);
    h.clock.advance((2 * h.deps.config.dnsMaxDelaySeconds + 61) * 1000);
    expect(await sweepDomains(h.deps)).toBe(1);
    expect(await sweepDomains(h.deps)).toBe(1);
    const sent = h.queue.of(domainChecksQueue).filter((s) => !s.handled);
    expect(sent).toHaveLength(1);
    h.point(await h.domain(d.id));
    await h.serve();
    await h.runDue();
    expect((await h.domain(d.id)).status).toBe('cert_pending');
  });

  it('leaves active domains alone until well past their recheck, and failed ones for ever', async () => {
    const h = await setupDomains({ dnsGiveUpSeconds: 60 });
    const active = await createDomain(h.deps, deployer, {
      serviceId: h.service.id,
      hostname: 'ok.example.com',
    });
    const failing = await createDomain(h.deps, deployer, {
      serviceId: h.service.id,
      hostname: 'bad.example.com',
    });
    await h.serve();
    h.point(await h.domain(active.id));
    h.edge.issue('ok.example.com');
    await h.runDue();
    for (let i = 0; i < 5 && (await h.domain(failing.id)).status !== 'failed'; i++) {
      h.clock.advance(61_000);
      await h.runDue();
    }
    expect((await h.domain(failing.id)).status).toBe('failed');
    expect((await h.domain(active.id)).status).toBe('active');
    for (const s of h.queue.of(domainChecksQueue)) s.handled = true;
    h.clock.advance(3600_000);
    expect(await sweepDomains(h.deps)).toBe(0);
    h.clock.advance(3600_000 + 61_000);
    expect(await sweepDomains(h.deps)).toBe(1);
  });
});
