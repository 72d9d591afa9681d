import { describe, expect, it } from 'vitest';
import type { Domain, Environment, Org, Project, Release, Service } from '../../core/models.ts';
import type { LiveRoute, RouteCatalog } from '../../core/ports.ts';

/** The rows a catalog reads: orgs and projects too, which the database needs for its keys. */
export interface CatalogFixture {
  orgs: Org[];
  projects: Project[];
  services: Service[];
  environments: Environment[];
  releases: Release[];
  domains: Domain[];
}

export interface RouteCatalogContract {
  /** A catalog over no data, and a way to add rows to what it reads. */
  make: () => Promise<{ catalog: RouteCatalog; seed(fixture: CatalogFixture): Promise<void> }>;
}

const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString();

const org = (id: string): Org => ({ id, name: id, createdAt: at(0) });
const project = (orgId: string): Project => ({
  id: `prj_${orgId}`,
  orgId,
  name: 'shop',
  createdAt: at(0),
});
const environment = (orgId: string, id: string, name: string): Environment => ({
  id,
  orgId,
  projectId: `prj_${orgId}`,
  name,
  createdAt: at(0),
});
const service = (orgId: string, id: string, o: Partial<Service> = {}): Service => ({
  id,
  orgId,
  projectId: `prj_${orgId}`,
  name: 'web',
  image: 'shop/web:1',
  containerPort: 8080,
  kind: 'web',
  workerHealth: null,
  healthcheckPath: '/health',
  migrateCommand: null,
  strategy: 'blue_green',
  replicas: 1,
  env: {},
  memoryMb: null,
  cpus: null,
  health: { intervalMs: 1000, timeoutMs: 2000, successes: 1, deadlineMs: 30_000 },
  warmSeconds: 300,
  drainSeconds: 30,
  sticky: false,
  git: null,
  gitCredentialKind: null,
  gitPublicKey: null,
  sealedGitCredential: null,
  sealedBuildSecrets: {},
  createdAt: at(0),
  ...o,
});
const release = (s: Service, environmentId: string, id: string, o: Partial<Release>): Release => ({
  id,
  orgId: s.orgId,
  serviceId: s.id,
  environmentId,
  image: s.image,
  imageDigest: null,
  gitSha: null,
  gitRef: null,
  status: 'completed',
  previousReleaseId: null,
  nodeId: null,
  containerId: null,
  upstream: null,
  error: null,
  createdAt: at(1),
  updatedAt: at(1),
  finishedAt: null,
  ...o,
});
const domain = (s: Service, environmentId: string, id: string, o: Partial<Domain>): Domain => ({
  id,
  orgId: s.orgId,
  serviceId: s.id,
  environmentId,
  hostname: `${id}.example.test`,
  verificationToken: `token-${id}`,
  status: 'active',
  dnsStatus: 'verified',
  tlsStatus: 'active',
  lastError: null,
  checkedAt: null,
  createdAt: at(2),
  certNotAfter: null,
  certIssuer: null,
  ...o,
});

/** What every RouteCatalog answers, run against each implementation. */
export function runRouteCatalogContract({ make }: RouteCatalogContract): void {
  describe('RouteCatalog contract', () => {
    it('answers nothing when nothing was ever released', async () => {
      const { catalog } = await make();
      expect(await catalog.liveRoutes()).toStrictEqual([]);
    });

    it('reads the live release of every service environment of every org, with its routed hosts', async () => {
      const { catalog, seed } = await make();
      const a = service('org_a', 'svc_a1', { name: 'api', sticky: true, drainSeconds: 600 });
      const b = service('org_b', 'svc_b1');
      const idle = service('org_b', 'svc_b2', { name: 'idle' });
      const gone = service('org_b', 'svc_b3', { name: 'gone' });
      await seed({
        orgs: [org('org_a'), org('org_b')],
        projects: [project('org_a'), project('org_b')],
        environments: [
          environment('org_a', 'env_a_prod', 'production'),
          environment('org_a', 'env_a_stg', 'staging'),
          environment('org_b', 'env_b_prod', 'production'),
        ],
        services: [a, b, idle, gone],
        releases: [
          // The newest completed or switched release serves; older and failed ones do not.
          release(a, 'env_a_prod', 'rel_0001', { upstream: '10.0.0.1:30001' }),
          release(a, 'env_a_prod', 'rel_0002', { upstream: '10.0.0.1:30002' }),
          release(a, 'env_a_prod', 'rel_0003', { status: 'failed', upstream: '10.0.0.1:30003' }),
          release(a, 'env_a_prod', 'rel_0004', {
            status: 'health_validating',
            upstream: '10.0.0.1:30004',
          }),
          // Switched but not yet recorded as completed: it serves already.
          release(a, 'env_a_stg', 'rel_0005', { upstream: '10.0.0.1:30005' }),
          release(a, 'env_a_stg', 'rel_0006', {
            status: 'traffic_shifted',
            upstream: '10.0.0.1:30006',
          }),
          // A rollback returned traffic to the release before.
          release(b, 'env_b_prod', 'rel_0007', { upstream: '10.0.0.2:30007' }),
          release(b, 'env_b_prod', 'rel_0008', {
            status: 'rolled_back',
            upstream: '10.0.0.2:30008',
          }),
          release(idle, 'env_b_prod', 'rel_0009', { status: 'queued' }),
          release(gone, 'env_b_prod', 'rel_0010', { status: 'failed', upstream: '10.0.0.2:30010' }),
        ],
        domains: [
          domain(a, 'env_a_prod', 'dom_2', { hostname: 'www.shop.test', createdAt: at(5) }),
          domain(a, 'env_a_prod', 'dom_1', {
            hostname: 'shop.test',
            status: 'cert_pending',
            createdAt: at(4),
          }),
          domain(a, 'env_a_prod', 'dom_3', {
            hostname: 'new.shop.test',
            status: 'dns_verified',
            createdAt: at(6),
          }),
          domain(a, 'env_a_prod', 'dom_4', {
            hostname: 'pending.shop.test',
            status: 'pending_dns',
          }),
          domain(a, 'env_a_prod', 'dom_5', { hostname: 'broken.shop.test', status: 'failed' }),
          domain(a, 'env_a_stg', 'dom_6', { hostname: 'other-env.shop.test', createdAt: at(7) }),
          domain(b, 'env_b_prod', 'dom_7', { hostname: 'b.test', dnsStatus: 'failed' }),
          domain(idle, 'env_b_prod', 'dom_8', { hostname: 'idle.test' }),
        ],
      });
      const live: LiveRoute[] = [
        {
          serviceId: 'svc_a1',
          serviceName: 'api',
          environmentId: 'env_a_prod',
          environmentName: 'production',
          sticky: true,
          drainSeconds: 600,
          loadBalancing: null,
          upstreams: ['10.0.0.1:30002'],
          customHosts: ['shop.test', 'www.shop.test', 'new.shop.test'],
        },
        {
          serviceId: 'svc_a1',
          serviceName: 'api',
          environmentId: 'env_a_stg',
          environmentName: 'staging',
          sticky: true,
          drainSeconds: 600,
          loadBalancing: null,
          upstreams: ['10.0.0.1:30006'],
          customHosts: ['other-env.shop.test'],
        },
        {
          serviceId: 'svc_b1',
          serviceName: 'web',
          environmentId: 'env_b_prod',
          environmentName: 'production',
          sticky: false,
          drainSeconds: 30,
          loadBalancing: null,
          upstreams: ['10.0.0.2:30007'],
          customHosts: ['b.test'],
        },
      ];
      expect(await catalog.liveRoutes()).toStrictEqual(live);
    });

    it('reads every healthy replica of a multi-replica release, in replica order, and its balancing', async () => {
      const { catalog, seed } = await make();
      const s = service('org_a', 'svc_r1', { replicas: 3, loadBalancing: 'least_conn' });
      const scaledToZero = service('org_a', 'svc_r2', { name: 'off' });
      const replica = (index: number, upstream: string | null, health: string) => ({
        index,
        nodeId: `node_${index}`,
        containerId: upstream === null ? null : `c${index}`,
        upstream,
        health: health as 'healthy',
      });
      await seed({
        orgs: [org('org_a')],
        projects: [project('org_a')],
        environments: [environment('org_a', 'env_a_prod', 'production')],
        services: [s, scaledToZero],
        releases: [
          release(s, 'env_a_prod', 'rel_0101', {
            // The release's own fields name its first replica only: the rebuild must not stop there.
            upstream: '10.0.0.11:31000',
            replicaSet: {
              replicas: [
                replica(0, '10.0.0.11:31000', 'healthy'),
                replica(2, '10.0.0.13:31002', 'healthy'),
                replica(1, '10.0.0.12:31001', 'healthy'),
                replica(3, '10.0.0.14:31003', 'stopped'),
                replica(4, null, 'planned'),
                replica(5, '10.0.0.15:31005', 'unhealthy'),
              ],
            },
          }),
          // Scaled to 0: an empty set, nothing to route even though a stale upstream remains.
          release(scaledToZero, 'env_a_prod', 'rel_0102', {
            upstream: '10.0.0.11:32000',
            replicaSet: { replicas: [] },
          }),
        ],
        domains: [],
      });
      expect(await catalog.liveRoutes()).toStrictEqual([
        {
          serviceId: 'svc_r1',
          serviceName: 'web',
          environmentId: 'env_a_prod',
          environmentName: 'production',
          sticky: false,
          drainSeconds: 30,
          loadBalancing: 'least_conn',
          upstreams: ['10.0.0.11:31000', '10.0.0.13:31002', '10.0.0.12:31001'],
          customHosts: [],
        },
      ] satisfies LiveRoute[]);
    });
  });
}
