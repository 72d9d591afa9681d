import { ManualClock } from '../../../adapters/clock/manual.ts';
import { MemoryDnsResolver } from '../../../adapters/dns/memory.ts';
import { MemoryEdgeRouter } from '../../../adapters/edge/memory.ts';
import { SequenceIds } from '../../../adapters/ids/sequence.ts';
import { MemoryLogger } from '../../../adapters/logger/memory.ts';
import { MemoryStore } from '../../../adapters/store/memory.ts';
import {
  AskGate,
  checkDomain,
  defaultDomainConfig,
  domainChecksQueue,
  NegativeCachingResolver,
  type DomainCheckMessage,
  type DomainConfig,
  type DomainDeps,
} from '../../../core/domains/engine.ts';
import type { Domain, Service } from '../../../core/models.ts';
import type { EdgeCertificate, OrgRepos, RouteSpec } from '../../../core/ports.ts';
import { defaultHosts, routeId } from '../../../core/releases/plan.ts';
import type { Principal } from '../../../core/deps.ts';
import { aProject, aService, anEnvironment, anOrg } from '../releases/builders.ts';
import { RecordingQueue } from '../releases/harness.ts';

export const orgId = 'org_000001';
export const edgeDomain = 'apps.example.test';
export const edgeIp = '203.0.113.10';

export const deployer: Principal = {
  actorType: 'user',
  actorId: 'usr_1',
  userId: 'usr_1',
  orgId,
  role: 'deployer',
};
export const viewer: Principal = { ...deployer, actorId: 'usr_2', userId: 'usr_2', role: 'viewer' };

/** The memory edge, plus certificates a test hands out per host (what Caddy would serve). */
export class CertEdge extends MemoryEdgeRouter {
  readonly certs = new Map<string, EdgeCertificate>();
  async certificate(hostname: string): Promise<EdgeCertificate> {
    return (
      this.certs.get(hostname) ?? {
        status: 'missing',
        issuer: null,
        notAfter: null,
        detail: `no certificate for ${hostname}`,
      }
    );
  }
  issue(hostname: string): void {
    this.certs.set(hostname, {
      status: 'active',
      issuer: 'Pebble Intermediate CA',
      notAfter: '2026-04-01T00:00:00.000Z',
      detail: null,
    });
  }
}

export interface DomainHarness {
  deps: DomainDeps;
  clock: ManualClock;
  store: MemoryStore;
  dns: MemoryDnsResolver;
  edge: CertEdge;
  queue: RecordingQueue;
  gate: AskGate;
  service: Service;
  defaultHost: string;
  routeId: string;
  /** Puts the service environment's route as a completed release would. */
  serve(upstream?: string): Promise<RouteSpec>;
  /** Runs the domain checks due by now (each may schedule the next), at most `max`. */
  runDue(max?: number): Promise<number>;
  /** Advances the clock to the next scheduled check and runs it. */
  next(): Promise<void>;
  domain(id: string): Promise<Domain>;
  repos<T>(fn: (r: OrgRepos) => Promise<T>): Promise<T>;
  /** Sets the TXT token and a CNAME to the default host for the domain. */
  point(d: Pick<Domain, 'hostname' | 'verificationToken'>): void;
}

export async function setupDomains(config: Partial<DomainConfig> = {}): Promise<DomainHarness> {
  const clock = new ManualClock('2026-01-01T00:00:00.000Z');
  const store = new MemoryStore();
  const dns = new MemoryDnsResolver();
  const edge = new CertEdge();
  const queue = new RecordingQueue(clock);
  const full: DomainConfig = { ...defaultDomainConfig, edgeDomain, edgeIpv4: [edgeIp], ...config };
  const deps: DomainDeps = {
    store,
    dns: new NegativeCachingResolver(dns, clock, full.negativeCacheSeconds),
    dnsFresh: dns,
    edge,
    queue,
    clock,
    ids: new SequenceIds(),
    logger: new MemoryLogger(),
    config: full,
  };
  const service = aService({ id: 'svc_0abc12' });
  const environment = anEnvironment();
  await store.withOrg(orgId, async (r) => {
    await r.orgs.insert(anOrg());
    await r.projects.insert(aProject());
    await r.environments.insert(environment);
    await r.services.insert(service);
  });
  const defaultHost = defaultHosts({ service, environment, edgeDomain })[0]!;
  const id = routeId(service.id, environment.id);
  const h: DomainHarness = {
    deps,
    clock,
    store,
    dns,
    edge,
    queue,
    gate: new AskGate(clock, {
      perHostPerHour: full.askPerHostPerHour,
      baseBackoffSeconds: full.askBaseBackoffSeconds,
    }),
    service,
    defaultHost,
    routeId: id,
    async serve(upstream = '127.0.0.1:32768') {
      const existing = await edge.get(id);
      const route: RouteSpec = {
        id,
        hosts: existing?.hosts ?? [defaultHost],
        upstreams: [upstream],
        sticky: false,
        drainSeconds: 30,
      };
      await edge.put(route);
      return route;
    },
    async runDue(max = 50) {
      let ran = 0;
      for (; ran < max; ran++) {
        const now = clock.now().getTime();
        const due = queue.of(domainChecksQueue).find((s) => !s.handled && s.dueAt <= now);
        if (!due) break;
        due.handled = true;
        await checkDomain(deps, due.payload as DomainCheckMessage);
      }
      return ran;
    },
    async next() {
      const pending = queue.of(domainChecksQueue).filter((s) => !s.handled);
      if (pending.length === 0) throw new Error('no domain check is scheduled');
      const soonest = Math.min(...pending.map((s) => s.dueAt));
      const wait = soonest - clock.now().getTime();
      if (wait > 0) clock.advance(wait);
      await h.runDue(1);
    },
    domain: (domainId) =>
      store.withOrg(orgId, async (r) => {
        const d = await r.domains.get(domainId);
        if (!d) throw new Error(`domain ${domainId} is gone`);
        return d;
      }),
    repos: (fn) => store.withOrg(orgId, fn),
    point(d) {
      dns.setTxt(`_selfdevop-challenge.${d.hostname}`, d.verificationToken);
      dns.setCname(d.hostname, defaultHost);
    },
  };
  return h;
}
