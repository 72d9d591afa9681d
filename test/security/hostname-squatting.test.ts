/**
 * Hole 10 (accounts): custom hostnames were unique across orgs whatever their status, so an
 * unverified claim squatted a name, and the 409 told the real owner another org had it.
 * Replayed against the API and its domain worker on PostgreSQL, with a real DNS server
 * (pebble-challtestsrv): both orgs may claim the name pending, the one that proves it with
 * DNS holds it, the squatter's claim fails with a clear reason, and no answer names an org.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSelfhostApi } from '../support/api.ts';
import { pebbleAvailable, startChallTestSrv, type ChallTestSrv } from '../support/pebble.ts';

const ready = await pebbleAvailable();
const hostname = 'victim-shop.example.test';

interface Org {
  token: string;
  orgId: string;
  serviceId: string;
}

describe.skipIf(!ready)('custom hostname squatting', () => {
  let dns: ChallTestSrv;
  let api: Awaited<ReturnType<typeof startSelfhostApi>>;

  beforeAll(async () => {
    dns = await startChallTestSrv();
    api = await startSelfhostApi({
      workers: true,
      edgeIpv4: ['127.0.0.1'],
      dnsServers: [dns.dnsAddress],
      domains: {
        dnsBaseDelaySeconds: 1,
        dnsMaxDelaySeconds: 1,
        certBaseDelaySeconds: 1,
        certMaxDelaySeconds: 2,
        negativeCacheSeconds: 1,
      },
    });
    await dns.addA(hostname, ['127.0.0.1']);
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await dns?.stop();
  });

  async function anOrg(name: string): Promise<Org> {
    const s = await api.request('POST', '/api/auth/local/signup', {
      body: { email: `${name}@squat.test`, password: 'correct horse battery' },
    });
    expect(s.status, s.text).toBe(201);
    const token = s.body.token;
    const p = await api.request('POST', '/api/projects', { token, body: { name: 'shop' } });
    const svc = await api.request('POST', '/api/services', {
      token,
      body: {
        projectId: p.body.id,
        name: 'web',
        image: 'selfdevop-test/app:v1',
        containerPort: 8080,
        healthcheckPath: '/health',
      },
    });
    expect(svc.status, svc.text).toBe(201);
    return { token, orgId: s.body.org.id, serviceId: svc.body.id };
  }

  async function waitFor(org: Org, id: string, until: (d: Record<string, unknown>) => boolean) {
    const end = Date.now() + 30_000;
    for (;;) {
      const r = await api.request('GET', `/api/domains/${id}`, { token: org.token });
      expect(r.status, r.text).toBe(200);
      if (until(r.body)) return r.body;
      if (Date.now() > end) throw new Error(`domain ${id} stuck: ${r.text}`);
      await new Promise((x) => setTimeout(x, 200));
    }
  }

  it('lets the org that proves the name hold it, fails the squatter, and names no org', async () => {
    const squatter = await anOrg('squatter');
    const owner = await anOrg('owner');
    const latecomer = await anOrg('latecomer');

    const squat = await api.request('POST', '/api/domains', {
      token: squatter.token,
      body: { serviceId: squatter.serviceId, hostname },
    });
    expect(squat.status, squat.text).toBe(201);

    // The real owner can still claim the name; nothing tells them someone else did.
    const claim = await api.request('POST', '/api/domains', {
      token: owner.token,
      body: { serviceId: owner.serviceId, hostname },
    });
    expect(claim.status, claim.text).toBe(201);
    expect(claim.text).not.toContain(squatter.orgId);

    // Only the owner controls the zone: its TXT token goes in.
    const txt = claim.body.records.find((r: { type: string }) => r.type === 'TXT');
    await dns.setTxt(txt.name, txt.value);
    await api.request('POST', `/api/domains/${claim.body.id}/verify`, { token: owner.token });
    const held = await waitFor(owner, claim.body.id, (d) => d.status !== 'pending_dns');
    expect(held.status).toMatch(/^(dns_verified|cert_pending|active)$/);

    // The squatter learns its claim lost, and why, but not to whom.
    await dns.setTxt(txt.name, squat.body.records[0].value);
    await api.request('POST', `/api/domains/${squat.body.id}/verify`, { token: squatter.token });
    const lost = await waitFor(squatter, squat.body.id, (d) => d.status === 'failed');
    expect(lost.lastError).toContain('verified by another org first');
    expect(JSON.stringify(lost)).not.toContain(owner.orgId);
    expect(JSON.stringify(lost)).not.toContain(claim.body.id);

    // A newcomer is told the name is held, not by whom.
    const late = await api.request('POST', '/api/domains', {
      token: latecomer.token,
      body: { serviceId: latecomer.serviceId, hostname },
    });
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('hostname_taken');
    expect(late.text).not.toContain(owner.orgId);
    expect(late.text).not.toContain(claim.body.id);
  }, 90_000);
});
