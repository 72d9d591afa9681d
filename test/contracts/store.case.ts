import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RandomIds } from '../../adapters/ids/random.ts';
import { AlreadyExists, DomainError, NotFound, ReleaseAlreadyInFlight } from '../../core/errors.ts';
import type {
  ApiKeyWithHash,
  AuditEvent,
  DeployJob,
  Domain,
  Environment,
  Membership,
  NodeRecord,
  Org,
  Page,
  Project,
  Release,
  ReleaseStep,
  SecretRecord,
  Service,
  UserWithPassword,
  Webhook,
} from '../../core/models.ts';
import type { OrgRepos, Store } from '../../core/ports.ts';

export interface StoreFixture {
  /** A store for each test; closed after it. Tests use fresh ids, so the data may be shared. */
  make: () => Store | Promise<Store>;
}

// ---------------------------------------------------------------- builders

const ids = new RandomIds();
const t0 = Date.parse('2026-01-01T00:00:00.000Z');
/** An ISO time `s` seconds after a fixed start. */
export const at = (s = 0): string => new Date(t0 + s * 1000).toISOString();

export const anOrg = (o: Partial<Org> = {}): Org => ({
  id: ids.newId('org'),
  name: 'Acme',
  createdAt: at(),
  ...o,
});
export const aUser = (o: Partial<UserWithPassword> = {}): UserWithPassword => ({
  id: ids.newId('usr'),
  email: `${ids.newSecret(6).toLowerCase()}@example.test`,
  passwordHash: '$2b$10$hash',
  createdAt: at(),
  ...o,
});
export const aProject = (orgId: string, o: Partial<Project> = {}): Project => ({
  id: ids.newId('prj'),
  orgId,
  name: `project-${ids.newSecret(4)}`,
  createdAt: at(),
  ...o,
});
export const anEnvironment = (
  orgId: string,
  projectId: string,
  o: Partial<Environment> = {},
): Environment => ({
  id: ids.newId('env'),
  orgId,
  projectId,
  name: 'production',
  createdAt: at(),
  ...o,
});
export const aService = (orgId: string, projectId: string, o: Partial<Service> = {}): Service => ({
  id: ids.newId('svc'),
  orgId,
  projectId,
  name: `web-${ids.newSecret(4)}`,
  image: 'registry.test/web:1',
  containerPort: 8080,
  healthcheckPath: '/health',
  migrateCommand: null,
  strategy: 'blue_green',
  replicas: 1,
  env: {},
  memoryMb: null,
  cpus: null,
  health: { intervalMs: 500, timeoutMs: 2000, successes: 2, deadlineMs: 60_000 },
  warmSeconds: 300,
  drainSeconds: 30,
  sticky: false,
  createdAt: at(),
  ...o,
});
export const aNode = (orgId: string, o: Partial<NodeRecord> = {}): NodeRecord => ({
  id: ids.newId('nod'),
  orgId,
  name: `node-${ids.newSecret(4)}`,
  dockerHost: 'unix:///var/run/docker.sock',
  address: '127.0.0.1',
  labels: {},
  drainMode: false,
  createdAt: at(),
  sealedTls: null,
  sealedSsh: null,
  credentialsUpdatedAt: null,
  ...o,
});
export const aRelease = (
  orgId: string,
  serviceId: string,
  environmentId: string,
  o: Partial<Release> = {},
): Release => ({
  id: ids.newId('rel'),
  orgId,
  serviceId,
  environmentId,
  image: 'registry.test/web:1',
  imageDigest: null,
  gitSha: null,
  status: 'queued',
  previousReleaseId: null,
  nodeId: null,
  containerId: null,
  upstream: null,
  error: null,
  createdAt: at(),
  updatedAt: at(),
  finishedAt: null,
  ...o,
});
export const aDomain = (
  orgId: string,
  serviceId: string,
  environmentId: string,
  o: Partial<Domain> = {},
): Domain => ({
  id: ids.newId('dom'),
  orgId,
  serviceId,
  environmentId,
  hostname: `${ids
    .newSecret(6)
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x')}.customer.test`,
  verificationToken: ids.newSecret(16),
  status: 'pending_dns',
  dnsStatus: 'pending',
  tlsStatus: 'none',
  lastError: null,
  checkedAt: null,
  createdAt: at(),
  ...o,
});
export const anApiKey = (orgId: string, o: Partial<ApiKeyWithHash> = {}): ApiKeyWithHash => ({
  id: ids.newId('key'),
  orgId,
  name: `ci-${ids.newSecret(4)}`,
  role: 'deployer',
  prefix: 'sdo_ab12',
  keyHash: ids.newSecret(32),
  createdAt: at(),
  revokedAt: null,
  ...o,
});
export const aSecret = (
  orgId: string,
  serviceId: string,
  environmentId: string,
  o: Partial<SecretRecord> = {},
): SecretRecord => ({
  id: ids.newId('sec'),
  orgId,
  serviceId,
  environmentId,
  name: 'DATABASE_URL',
  sealed: 'v1.sealed',
  createdAt: at(),
  updatedAt: at(),
  ...o,
});
export const aWebhook = (orgId: string, o: Partial<Webhook> = {}): Webhook => ({
  id: ids.newId('whk'),
  orgId,
  url: 'https://hooks.example.test/selfdevop',
  sealedSecret: 'v1.sealed',
  events: ['release.completed', 'release.failed'],
  createdAt: at(),
  ...o,
});
export const anAuditEvent = (orgId: string, o: Partial<AuditEvent> = {}): AuditEvent => ({
  id: ids.newId('aud'),
  orgId,
  actorType: 'user',
  actorId: 'usr_1',
  action: 'project.created',
  targetType: 'project',
  targetId: null,
  data: { nested: { list: [1, 'two'] } },
  requestId: null,
  createdAt: at(),
  ...o,
});
export const aDeployJob = (
  orgId: string,
  releaseId: string,
  o: Partial<DeployJob> = {},
): DeployJob => ({
  id: ids.newId('job'),
  orgId,
  releaseId,
  kind: 'deploy',
  status: 'queued',
  attempts: 0,
  createdAt: at(),
  updatedAt: at(),
  ...o,
});
export const aStep = (
  orgId: string,
  releaseId: string,
  o: Partial<ReleaseStep> = {},
): ReleaseStep => ({
  releaseId,
  orgId,
  name: 'build',
  status: 'running',
  attempt: 1,
  startedAt: at(),
  finishedAt: null,
  error: null,
  ...o,
});

/** An org with one project, its production environment and one service. */
export interface Tenant {
  orgId: string;
  projectId: string;
  environmentId: string;
  serviceId: string;
}

export async function seedTenant(store: Store): Promise<Tenant> {
  const org = anOrg();
  return store.withOrg(org.id, async (r) => {
    await r.orgs.insert(org);
    const p = aProject(org.id);
    await r.projects.insert(p);
    const e = anEnvironment(org.id, p.id);
    await r.environments.insert(e);
    const s = aService(org.id, p.id);
    await r.services.insert(s);
    return { orgId: org.id, projectId: p.id, environmentId: e.id, serviceId: s.id };
  });
}

/** Expects a rejection with a core error of this code. */
async function rejectsWith(p: Promise<unknown>, code: string): Promise<DomainError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e, `expected an error with code ${code}`).toBeInstanceOf(DomainError);
  expect((e as DomainError).code).toBe(code);
  return e as DomainError;
}

// ---------------------------------------------------------------- the contract

/** The behaviour every Store (PostgreSQL, memory) shares. */
export function runStoreContract({ make }: StoreFixture): void {
  describe('Store contract', () => {
    let store: Store;
    let a: Tenant;
    let b: Tenant;
    const inA = <T>(fn: (r: OrgRepos) => Promise<T>) => store.withOrg(a.orgId, fn);

    beforeEach(async () => {
      store = await make();
      a = await seedTenant(store);
      b = await seedTenant(store);
    });
    afterEach(async () => {
      await store.close();
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    describe('identity', () => {
      it('stores emails lowercased and finds users by email in any case', async () => {
        const u = aUser({ email: `Mixed.${ids.newSecret(4)}@Example.TEST` });
        await store.identity.createUser(u);
        const found = await store.identity.findUserByEmail(u.email.toUpperCase());
        expect(found).toEqual({ ...u, email: u.email.toLowerCase() });
        expect(await store.identity.findUserById(u.id)).toEqual({
          id: u.id,
          email: u.email.toLowerCase(),
          createdAt: u.createdAt,
        });
        expect(await store.identity.findUserByEmail('nobody@example.test')).toBeNull();
        expect(await store.identity.findUserById('usr_missing')).toBeNull();
      });

      it('refuses a second user with the same email, whatever its case', async () => {
        const u = aUser();
        await store.identity.createUser(u);
        const e = await rejectsWith(
          store.identity.createUser(aUser({ email: u.email.toUpperCase() })),
          'user_exists',
        );
        expect(e).toBeInstanceOf(AlreadyExists);
        expect(e.message).toContain(u.email.toLowerCase());
      });

      it('counts users', async () => {
        const before = await store.identity.countUsers();
        await store.identity.createUser(aUser());
        await store.identity.createUser(aUser());
        expect(await store.identity.countUsers()).toBe(before + 2);
      });

      it('lists the memberships of a user across orgs, while an org sees only its own', async () => {
        const u = aUser();
        await store.identity.createUser(u);
        const ma: Membership = { orgId: a.orgId, userId: u.id, role: 'owner', createdAt: at(1) };
        const mb: Membership = { orgId: b.orgId, userId: u.id, role: 'viewer', createdAt: at(2) };
        await store.withOrg(a.orgId, (r) => r.memberships.insert(ma));
        await store.withOrg(b.orgId, (r) => r.memberships.insert(mb));
        expect(await store.identity.membershipsOf(u.id)).toEqual([ma, mb]);
        expect(await inA((r) => r.memberships.list())).toEqual([ma]);
        expect(await store.identity.membershipsOf('usr_missing')).toEqual([]);
      });

      it('refuses a duplicate membership and one for an unknown user', async () => {
        const u = aUser();
        await store.identity.createUser(u);
        const m: Membership = { orgId: a.orgId, userId: u.id, role: 'admin', createdAt: at() };
        await inA((r) => r.memberships.insert(m));
        await rejectsWith(
          inA((r) => r.memberships.insert({ ...m, role: 'viewer' })),
          'membership_exists',
        );
        const e = await rejectsWith(
          inA((r) => r.memberships.insert({ ...m, userId: 'usr_missing' })),
          'user_not_found',
        );
        expect(e.message).toBe('user usr_missing not found');
      });

      it('finds an API key by hash, without the hash, revoked or not', async () => {
        const key = anApiKey(a.orgId);
        await inA((r) => r.apiKeys.insert(key));
        const { keyHash: _h, ...visible } = key;
        expect(await store.identity.findApiKeyByHash(key.keyHash)).toEqual(visible);
        expect(await inA((r) => r.apiKeys.revoke(key.id, at(9)))).toBe(true);
        expect(await store.identity.findApiKeyByHash(key.keyHash)).toEqual({
          ...visible,
          revokedAt: at(9),
        });
        expect(await store.identity.findApiKeyByHash('no-such-hash')).toBeNull();
      });

      it('finds which org owns a hostname, in any case', async () => {
        const d = aDomain(b.orgId, b.serviceId, b.environmentId, {
          hostname: `shop-${ids.newSecret(4).toLowerCase()}.example.test`,
        });
        await store.withOrg(b.orgId, (r) => r.domains.insert(d));
        expect(await store.domainLookup.findDomainByHostname(d.hostname.toUpperCase())).toEqual({
          id: d.id,
          orgId: b.orgId,
          status: 'pending_dns',
        });
        expect(await store.domainLookup.findDomainByHostname('unknown.example.test')).toBeNull();
      });

      it('lists domains whose checks look stopped, across orgs: stalest first, failed ones never', async () => {
        const host = () => `sweep-${ids.newSecret(4).toLowerCase()}.example.test`;
        const inB = (o: Partial<Domain>) => aDomain(b.orgId, b.serviceId, b.environmentId, { hostname: host(), ...o });
        const inA2 = (o: Partial<Domain>) => aDomain(a.orgId, a.serviceId, a.environmentId, { hostname: host(), ...o });
        const pendingOld = inB({ checkedAt: at(-900_000) });
        const pendingRecent = inB({ checkedAt: at(-10) });
        const activeOld = inA2({ checkedAt: at(-990_000), status: 'active' });
        const activeRecent = inA2({ checkedAt: at(-900_000 + 1), status: 'active' });
        const failed = inB({ checkedAt: at(-999_000), status: 'failed' });
        const never = inA2({ checkedAt: null });
        const all = [pendingOld, pendingRecent, activeOld, activeRecent, failed, never];
        for (const d of all) await store.withOrg(d.orgId, (r) => r.domains.insert(d));
        const before = { active: at(-950_000), other: at(-100) };
        const due = await store.domainLookup.domainsToCheck(before, 1000);
        const mine = due.filter((d) => all.some((x) => x.id === d.id));
        expect(mine).toEqual([
          { id: never.id, orgId: a.orgId, status: 'pending_dns', checkedAt: null },
          { id: activeOld.id, orgId: a.orgId, status: 'active', checkedAt: at(-990_000) },
          { id: pendingOld.id, orgId: b.orgId, status: 'pending_dns', checkedAt: at(-900_000) },
        ]);
        expect((await store.domainLookup.domainsToCheck(before, 1)).length).toBe(1);
        expect(await store.domainLookup.domainsToCheck(before, 0)).toEqual([]);
      });
    });

    describe('orgs', () => {
      it('reads its own org and refuses to write another one', async () => {
        expect(await inA((r) => r.orgs.get())).toMatchObject({ id: a.orgId, name: 'Acme' });
        const other = anOrg();
        await expect(inA((r) => r.orgs.insert(other))).rejects.toThrow(/row-level security/);
        expect(await store.withOrg(other.id, (r) => r.orgs.get())).toBeNull();
      });

      it('refuses a duplicate org id', async () => {
        await rejectsWith(
          inA((r) => r.orgs.insert(anOrg({ id: a.orgId }))),
          'org_exists',
        );
      });

      it('refuses records of an org that does not exist', async () => {
        const ghost = ids.newId('org');
        const e = await rejectsWith(
          store.withOrg(ghost, (r) => r.projects.insert(aProject(ghost))),
          'org_not_found',
        );
        expect(e).toBeInstanceOf(NotFound);
      });

      it('refuses a row carrying another org id than the transaction', async () => {
        await expect(inA((r) => r.projects.insert(aProject(b.orgId)))).rejects.toThrow(
          /row-level security/,
        );
        expect(
          (await store.withOrg(b.orgId, (r) => r.projects.list({ limit: 50 }))).items,
        ).toHaveLength(1);
      });
    });

    describe('api keys', () => {
      it('lists keys without their hashes, and names are unique per org', async () => {
        const key = anApiKey(a.orgId, { name: 'deploy-bot' });
        await inA((r) => r.apiKeys.insert(key));
        await store.withOrg(b.orgId, (r) =>
          r.apiKeys.insert(anApiKey(b.orgId, { name: 'deploy-bot' })),
        );
        const page = await inA((r) => r.apiKeys.list({ limit: 10 }));
        const { keyHash: _h, ...visible } = key;
        expect(page).toEqual({ items: [visible], nextCursor: null });
        const e = await rejectsWith(
          inA((r) => r.apiKeys.insert(anApiKey(a.orgId, { name: 'deploy-bot' }))),
          'api_key_exists',
        );
        expect(e.message).toBe('api_key deploy-bot already exists');
      });

      it('revokes once, and never a key of another org', async () => {
        const key = anApiKey(a.orgId);
        await inA((r) => r.apiKeys.insert(key));
        expect(await store.withOrg(b.orgId, (r) => r.apiKeys.revoke(key.id, at(5)))).toBe(false);
        expect(await inA((r) => r.apiKeys.revoke(key.id, at(5)))).toBe(true);
        expect(await inA((r) => r.apiKeys.revoke(key.id, at(6)))).toBe(false);
        expect(await inA((r) => r.apiKeys.revoke('key_missing', at(6)))).toBe(false);
        expect((await inA((r) => r.apiKeys.list({ limit: 10 }))).items[0]?.revokedAt).toBe(at(5));
      });
    });

    describe('projects, environments, services, nodes', () => {
      it('round-trips a project; names are unique per org, not across orgs', async () => {
        const p = aProject(a.orgId, { name: 'shop' });
        await inA((r) => r.projects.insert(p));
        expect(await inA((r) => r.projects.get(p.id))).toEqual(p);
        await store.withOrg(b.orgId, (r) => r.projects.insert(aProject(b.orgId, { name: 'shop' })));
        const e = await rejectsWith(
          inA((r) => r.projects.insert(aProject(a.orgId, { name: 'shop' }))),
          'project_exists',
        );
        expect(e.message).toBe('project shop already exists');
        await rejectsWith(
          inA((r) => r.projects.insert({ ...p, name: 'other' })),
          'project_exists',
        );
        expect(await inA((r) => r.projects.get('prj_missing'))).toBeNull();
      });

      it('round-trips environments, finds them by name and filters by project', async () => {
        const p2 = aProject(a.orgId);
        const staging = anEnvironment(a.orgId, p2.id, { name: 'staging' });
        await inA(async (r) => {
          await r.projects.insert(p2);
          await r.environments.insert(staging);
        });
        expect(await inA((r) => r.environments.get(staging.id))).toEqual(staging);
        expect(await inA((r) => r.environments.findByName(p2.id, 'staging'))).toEqual(staging);
        expect(await inA((r) => r.environments.findByName(p2.id, 'production'))).toBeNull();
        const page = await inA((r) => r.environments.list({ limit: 10 }, { projectId: p2.id }));
        expect(page.items.map((e) => e.id)).toEqual([staging.id]);
        expect((await inA((r) => r.environments.list({ limit: 10 }))).items).toHaveLength(2);
        await rejectsWith(
          inA((r) => r.environments.insert(anEnvironment(a.orgId, p2.id, { name: 'staging' }))),
          'environment_exists',
        );
      });

      it('refuses an environment or service in an unknown project or one of another org', async () => {
        const e1 = await rejectsWith(
          inA((r) => r.environments.insert(anEnvironment(a.orgId, 'prj_missing'))),
          'project_not_found',
        );
        expect(e1.message).toBe('project prj_missing not found');
        await rejectsWith(
          inA((r) =>
            r.environments.insert(anEnvironment(a.orgId, b.projectId, { name: 'staging' })),
          ),
          'project_not_found',
        );
        await rejectsWith(
          inA((r) => r.services.insert(aService(a.orgId, b.projectId))),
          'project_not_found',
        );
      });

      it('round-trips every service field', async () => {
        const s = aService(a.orgId, a.projectId, {
          name: 'api',
          migrateCommand: 'npm run migrate',
          strategy: 'replace',
          replicas: 3,
          env: { NODE_ENV: 'production', EMPTY: '' },
          memoryMb: 512,
          cpus: 0.5,
          health: { intervalMs: 250, timeoutMs: 1000, successes: 3, deadlineMs: 90_000 },
          warmSeconds: 600,
          drainSeconds: 120,
          sticky: true,
        });
        await inA((r) => r.services.insert(s));
        expect(await inA((r) => r.services.get(s.id))).toEqual(s);
        await rejectsWith(
          inA((r) => r.services.insert(aService(a.orgId, a.projectId, { name: 'api' }))),
          'service_exists',
        );
        const filtered = await inA((r) =>
          r.services.list({ limit: 10 }, { projectId: a.projectId }),
        );
        expect(filtered.items.map((x) => x.id).sort()).toEqual([a.serviceId, s.id].sort());
      });

      it('round-trips nodes; names are unique per org', async () => {
        const n = aNode(a.orgId, {
          name: 'node-1',
          labels: { zone: 'eu-1', gpu: 'no' },
          drainMode: true,
          dockerHost: 'tcp://10.0.0.2:2376',
        });
        await inA((r) => r.nodes.insert(n));
        expect(await inA((r) => r.nodes.get(n.id))).toEqual(n);
        expect((await inA((r) => r.nodes.list({ limit: 10 }))).items).toEqual([n]);
        await rejectsWith(
          inA((r) => r.nodes.insert(aNode(a.orgId, { name: 'node-1' }))),
          'node_exists',
        );
      });

      it("replaces a node's sealed credentials, only in its own org", async () => {
        const n = aNode(a.orgId, { dockerHost: 'tcp://10.0.0.3:2376', sealedTls: 'sealed-1' });
        await inA((r) => r.nodes.insert(n));
        expect(await inA((r) => r.nodes.get(n.id))).toEqual(n);
        const rotated = { sealedTls: 'sealed-2', sealedSsh: null, credentialsUpdatedAt: at(5) };
        await inA((r) => r.nodes.setCredentials(n.id, rotated));
        expect(await inA((r) => r.nodes.get(n.id))).toEqual({ ...n, ...rotated });
        await rejectsWith(store.withOrg(b.orgId, (r) => r.nodes.setCredentials(n.id, { ...rotated, sealedTls: 'theirs' })), 'node_not_found');
        await rejectsWith(inA((r) => r.nodes.setCredentials('nod_missing', rotated)), 'node_not_found');
        expect((await inA((r) => r.nodes.get(n.id)))?.sealedTls).toBe('sealed-2');
      });
    });

    describe('releases', () => {
      it('round-trips a release and finds it in flight', async () => {
        const n = aNode(a.orgId);
        const prev = aRelease(a.orgId, a.serviceId, a.environmentId, {
          status: 'completed',
          finishedAt: at(1),
        });
        const r1 = aRelease(a.orgId, a.serviceId, a.environmentId, {
          gitSha: 'abc123',
          nodeId: n.id,
          previousReleaseId: prev.id,
        });
        await inA(async (r) => {
          await r.nodes.insert(n);
          await r.releases.insert(prev);
          await r.releases.insert(r1);
        });
        expect(await inA((r) => r.releases.get(r1.id))).toEqual(r1);
        expect(await inA((r) => r.releases.inFlight(a.serviceId, a.environmentId))).toEqual(r1);
        expect(await inA((r) => r.releases.get('rel_missing'))).toBeNull();
      });

      it('refuses a second release of a service environment in flight, naming the first', async () => {
        const first = aRelease(a.orgId, a.serviceId, a.environmentId, { status: 'migrating' });
        await inA((r) => r.releases.insert(first));
        const e = await rejectsWith(
          inA((r) => r.releases.insert(aRelease(a.orgId, a.serviceId, a.environmentId))),
          'release_in_flight',
        );
        expect(e).toBeInstanceOf(ReleaseAlreadyInFlight);
        expect(e.details).toEqual({ releaseId: first.id });
        // Another environment of the same service is free.
        const staging = anEnvironment(a.orgId, a.projectId, { name: 'staging' });
        await inA(async (r) => {
          await r.environments.insert(staging);
          await r.releases.insert(aRelease(a.orgId, a.serviceId, staging.id));
        });
        // Once the first is finished, the next may start.
        expect(
          await inA((r) =>
            r.releases.transition(first.id, 'migrating', {
              status: 'failed',
              error: 'boom',
              finishedAt: at(3),
            }),
          ),
        ).toBe(true);
        await inA((r) => r.releases.insert(aRelease(a.orgId, a.serviceId, a.environmentId)));
      });

      it('lets only one of two concurrent releases of a service environment in', async () => {
        const results = await Promise.allSettled([
          inA((r) => r.releases.insert(aRelease(a.orgId, a.serviceId, a.environmentId))),
          inA((r) => r.releases.insert(aRelease(a.orgId, a.serviceId, a.environmentId))),
        ]);
        expect(results.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
        const rejected = results.find((x) => x.status === 'rejected');
        expect(rejected?.reason).toBeInstanceOf(ReleaseAlreadyInFlight);
        const holder = await inA((r) => r.releases.inFlight(a.serviceId, a.environmentId));
        expect((rejected?.reason as DomainError).details).toEqual({ releaseId: holder?.id });
      });

      it('transitions by compare-and-set', async () => {
        const rel = aRelease(a.orgId, a.serviceId, a.environmentId);
        await inA((r) => r.releases.insert(rel));
        expect(
          await inA((r) =>
            r.releases.transition(rel.id, 'queued', { status: 'building', updatedAt: at(1) }),
          ),
        ).toBe(true);
        expect(
          await inA((r) =>
            r.releases.transition(rel.id, 'queued', { status: 'building', updatedAt: at(2) }),
          ),
        ).toBe(false);
        expect(
          await inA((r) =>
            r.releases.transition(rel.id, 'building', {
              status: 'artifact_ready',
              imageDigest: 'sha256:abc',
              updatedAt: at(3),
            }),
          ),
        ).toBe(true);
        expect(await inA((r) => r.releases.get(rel.id))).toEqual({
          ...rel,
          status: 'artifact_ready',
          imageDigest: 'sha256:abc',
          updatedAt: at(3),
        });
        expect(
          await inA((r) => r.releases.transition('rel_missing', 'queued', { status: 'building' })),
        ).toBe(false);
        expect(
          await store.withOrg(b.orgId, (r) =>
            r.releases.transition(rel.id, 'artifact_ready', { status: 'failed' }),
          ),
        ).toBe(false);
      });

      it('lets only one of two concurrent transitions from the same status win', async () => {
        const rel = aRelease(a.orgId, a.serviceId, a.environmentId);
        await inA((r) => r.releases.insert(rel));
        const results = await Promise.all([
          inA((r) => r.releases.transition(rel.id, 'queued', { status: 'building' })),
          inA((r) => r.releases.transition(rel.id, 'queued', { status: 'failed' })),
        ]);
        expect(results.filter(Boolean)).toHaveLength(1);
      });

      it('refuses a transition back into flight while another release holds the service environment', async () => {
        const old = aRelease(a.orgId, a.serviceId, a.environmentId, { status: 'failed' });
        const current = aRelease(a.orgId, a.serviceId, a.environmentId);
        await inA(async (r) => {
          await r.releases.insert(old);
          await r.releases.insert(current);
        });
        const e = await rejectsWith(
          inA((r) => r.releases.transition(old.id, 'failed', { status: 'queued' })),
          'release_in_flight',
        );
        expect(e.details).toEqual({ releaseId: current.id });
      });

      it('updates fields but never the status, and refuses unknown releases', async () => {
        const rel = aRelease(a.orgId, a.serviceId, a.environmentId);
        await inA((r) => r.releases.insert(rel));
        await inA((r) =>
          r.releases.update(rel.id, {
            containerId: 'c1',
            upstream: '127.0.0.1:32768',
            status: 'completed',
          } as Partial<Release>),
        );
        expect(await inA((r) => r.releases.get(rel.id))).toEqual({
          ...rel,
          containerId: 'c1',
          upstream: '127.0.0.1:32768',
        });
        await rejectsWith(
          inA((r) => r.releases.update('rel_missing', { error: 'x' })),
          'release_not_found',
        );
        await rejectsWith(
          store.withOrg(b.orgId, (r) => r.releases.update(rel.id, { error: 'x' })),
          'release_not_found',
        );
      });

      it('finds the newest release with given statuses and filters lists', async () => {
        const r1 = aRelease(a.orgId, a.serviceId, a.environmentId, { status: 'completed' });
        const r2 = aRelease(a.orgId, a.serviceId, a.environmentId, { status: 'rolled_back' });
        const r3 = aRelease(a.orgId, a.serviceId, a.environmentId, { status: 'completed' });
        const s2 = aService(a.orgId, a.projectId);
        const other = aRelease(a.orgId, s2.id, a.environmentId, { status: 'completed' });
        await inA(async (r) => {
          for (const x of [r1, r2, r3]) await r.releases.insert(x);
          await r.services.insert(s2);
          await r.releases.insert(other);
        });
        expect(
          (await inA((r) => r.releases.latest(a.serviceId, a.environmentId, ['completed'])))?.id,
        ).toBe(r3.id);
        expect(
          (
            await inA((r) =>
              r.releases.latest(a.serviceId, a.environmentId, ['rolled_back', 'failed']),
            )
          )?.id,
        ).toBe(r2.id);
        expect(
          await inA((r) => r.releases.latest(a.serviceId, a.environmentId, ['queued'])),
        ).toBeNull();
        expect(await inA((r) => r.releases.inFlight(a.serviceId, a.environmentId))).toBeNull();
        const bySvc = await inA((r) => r.releases.list({ limit: 10 }, { serviceId: a.serviceId }));
        expect(bySvc.items.map((x) => x.id)).toEqual([r1.id, r2.id, r3.id]);
        const byProject = await inA((r) =>
          r.releases.list(
            { limit: 10 },
            { projectId: a.projectId, environmentId: a.environmentId },
          ),
        );
        expect(byProject.items.map((x) => x.id)).toEqual([r1.id, r2.id, r3.id, other.id]);
        expect(
          (await inA((r) => r.releases.list({ limit: 10 }, { projectId: b.projectId }))).items,
        ).toEqual([]);
      });

      it('refuses a release for an unknown service, environment, node or previous release', async () => {
        await rejectsWith(
          inA((r) => r.releases.insert(aRelease(a.orgId, 'svc_missing', a.environmentId))),
          'service_not_found',
        );
        await rejectsWith(
          inA((r) => r.releases.insert(aRelease(a.orgId, a.serviceId, b.environmentId))),
          'environment_not_found',
        );
        await rejectsWith(
          inA((r) =>
            r.releases.insert(
              aRelease(a.orgId, a.serviceId, a.environmentId, { nodeId: 'nod_missing' }),
            ),
          ),
          'node_not_found',
        );
        await rejectsWith(
          inA((r) =>
            r.releases.insert(
              aRelease(a.orgId, a.serviceId, a.environmentId, { previousReleaseId: 'rel_missing' }),
            ),
          ),
          'release_not_found',
        );
      });
    });

    describe('release steps and logs', () => {
      let rel: Release;
      beforeEach(async () => {
        rel = aRelease(a.orgId, a.serviceId, a.environmentId);
        await inA((r) => r.releases.insert(rel));
      });

      it('upserts steps by name and lists them in start order', async () => {
        const build = aStep(a.orgId, rel.id, { name: 'build', startedAt: at(1) });
        const migrate = aStep(a.orgId, rel.id, { name: 'migrate', startedAt: at(2) });
        await inA(async (r) => {
          await r.releaseSteps.upsert(migrate);
          await r.releaseSteps.upsert(build);
        });
        const done = { ...build, status: 'succeeded' as const, attempt: 2, finishedAt: at(5) };
        await inA((r) => r.releaseSteps.upsert(done));
        expect(await inA((r) => r.releaseSteps.list(rel.id))).toEqual([done, migrate]);
        expect(await store.withOrg(b.orgId, (r) => r.releaseSteps.list(rel.id))).toEqual([]);
        await rejectsWith(
          inA((r) => r.releaseSteps.upsert(aStep(a.orgId, 'rel_missing'))),
          'release_not_found',
        );
      });

      it('numbers log lines from 1 and pages through them', async () => {
        const line = (n: number) => ({ at: at(n), stream: 'stdout' as const, line: `line ${n}` });
        await inA((r) => r.releaseLogs.append(rel.id, [line(1), line(2)]));
        await inA((r) => r.releaseLogs.append(rel.id, []));
        await inA((r) =>
          r.releaseLogs.append(rel.id, [{ at: at(3), stream: 'system', line: 'migrated ✓' }]),
        );
        const all = await inA((r) => r.releaseLogs.list(rel.id));
        expect(all).toEqual([
          { releaseId: rel.id, seq: 1, ...line(1) },
          { releaseId: rel.id, seq: 2, ...line(2) },
          { releaseId: rel.id, seq: 3, at: at(3), stream: 'system', line: 'migrated ✓' },
        ]);
        expect((await inA((r) => r.releaseLogs.list(rel.id, 1, 1))).map((l) => l.seq)).toEqual([2]);
        expect(await inA((r) => r.releaseLogs.list(rel.id, 3))).toEqual([]);
        expect(await store.withOrg(b.orgId, (r) => r.releaseLogs.list(rel.id))).toEqual([]);
      });

      it('gives concurrent appenders distinct, gapless numbers', async () => {
        const writers = Array.from({ length: 6 }, (_, w) =>
          inA((r) =>
            r.releaseLogs.append(
              rel.id,
              [0, 1, 2].map((i) => ({ at: at(i), stream: 'stdout' as const, line: `w${w}-${i}` })),
            ),
          ),
        );
        await Promise.all(writers);
        const lines = await inA((r) => r.releaseLogs.list(rel.id));
        expect(lines.map((l) => l.seq)).toEqual(Array.from({ length: 18 }, (_, i) => i + 1));
        // Each append's lines stay together and in order.
        for (let w = 0; w < 6; w++) {
          const seqs = lines.filter((l) => l.line.startsWith(`w${w}-`)).map((l) => l.seq);
          expect(seqs[2]! - seqs[0]!).toBe(2);
        }
      });

      it('refuses lines for an unknown release or one of another org', async () => {
        const line = [{ at: at(), stream: 'stderr' as const, line: 'x' }];
        await rejectsWith(
          inA((r) => r.releaseLogs.append('rel_missing', line)),
          'release_not_found',
        );
        await rejectsWith(
          store.withOrg(b.orgId, (r) => r.releaseLogs.append(rel.id, line)),
          'release_not_found',
        );
      });
    });

    describe('deploy jobs', () => {
      it('round-trips, updates and lists jobs', async () => {
        const rel = aRelease(a.orgId, a.serviceId, a.environmentId);
        const job = aDeployJob(a.orgId, rel.id);
        await inA(async (r) => {
          await r.releases.insert(rel);
          await r.deployJobs.insert(job);
        });
        await inA((r) =>
          r.deployJobs.update(job.id, { status: 'running', attempts: 1, updatedAt: at(4) }),
        );
        const updated = { ...job, status: 'running' as const, attempts: 1, updatedAt: at(4) };
        expect(await inA((r) => r.deployJobs.get(job.id))).toEqual(updated);
        expect(await inA((r) => r.deployJobs.list({ limit: 5 }))).toEqual({
          items: [updated],
          nextCursor: null,
        });
        await rejectsWith(
          inA((r) => r.deployJobs.update('job_missing', { attempts: 2 })),
          'deploy_job_not_found',
        );
        await rejectsWith(
          inA((r) => r.deployJobs.insert(aDeployJob(a.orgId, 'rel_missing'))),
          'release_not_found',
        );
        expect(await store.withOrg(b.orgId, (r) => r.deployJobs.get(job.id))).toBeNull();
      });
    });

    describe('secrets', () => {
      it('puts, replaces the value by name, lists by name and deletes', async () => {
        const s1 = aSecret(a.orgId, a.serviceId, a.environmentId, {
          name: 'TOKEN',
          sealed: 'v1.a',
        });
        const s2 = aSecret(a.orgId, a.serviceId, a.environmentId, {
          name: 'API_KEY',
          sealed: 'v1.b',
        });
        await inA(async (r) => {
          await r.secrets.put(s1);
          await r.secrets.put(s2);
        });
        await inA((r) =>
          r.secrets.put(
            aSecret(a.orgId, a.serviceId, a.environmentId, {
              name: 'TOKEN',
              sealed: 'v1.c',
              updatedAt: at(7),
            }),
          ),
        );
        const updated = { ...s1, sealed: 'v1.c', updatedAt: at(7) };
        expect(await inA((r) => r.secrets.list(a.serviceId, a.environmentId))).toEqual([
          s2,
          updated,
        ]);
        expect(
          await store.withOrg(b.orgId, (r) => r.secrets.list(a.serviceId, a.environmentId)),
        ).toEqual([]);
        expect(
          await store.withOrg(b.orgId, (r) =>
            r.secrets.delete(a.serviceId, a.environmentId, 'TOKEN'),
          ),
        ).toBe(false);
        expect(await inA((r) => r.secrets.delete(a.serviceId, a.environmentId, 'TOKEN'))).toBe(
          true,
        );
        expect(await inA((r) => r.secrets.delete(a.serviceId, a.environmentId, 'TOKEN'))).toBe(
          false,
        );
        expect(await inA((r) => r.secrets.list(a.serviceId, a.environmentId))).toEqual([s2]);
      });

      it('refuses a secret for an unknown service', async () => {
        await rejectsWith(
          inA((r) => r.secrets.put(aSecret(a.orgId, 'svc_missing', a.environmentId))),
          'service_not_found',
        );
      });
    });

    describe('domains', () => {
      it('round-trips, updates, lists by service and deletes', async () => {
        const d = aDomain(a.orgId, a.serviceId, a.environmentId);
        await inA((r) => r.domains.insert(d));
        expect(await inA((r) => r.domains.get(d.id))).toEqual(d);
        await inA((r) =>
          r.domains.update(d.id, {
            status: 'dns_verified',
            dnsStatus: 'verified',
            checkedAt: at(8),
            lastError: null,
          }),
        );
        const updated = {
          ...d,
          status: 'dns_verified' as const,
          dnsStatus: 'verified' as const,
          checkedAt: at(8),
        };
        expect(await inA((r) => r.domains.get(d.id))).toEqual(updated);
        expect(
          (await inA((r) => r.domains.list({ limit: 5 }, { serviceId: a.serviceId }))).items,
        ).toEqual([updated]);
        expect(
          (await inA((r) => r.domains.list({ limit: 5 }, { projectId: a.projectId }))).items,
        ).toEqual([updated]);
        expect(
          (await inA((r) => r.domains.list({ limit: 5 }, { serviceId: 'svc_other' }))).items,
        ).toEqual([]);
        await rejectsWith(
          inA((r) => r.domains.update('dom_missing', { status: 'failed' })),
          'domain_not_found',
        );
        expect(await store.withOrg(b.orgId, (r) => r.domains.delete(d.id))).toBe(false);
        expect(await inA((r) => r.domains.delete(d.id))).toBe(true);
        expect(await inA((r) => r.domains.delete(d.id))).toBe(false);
        expect(await inA((r) => r.domains.get(d.id))).toBeNull();
      });

      it('keeps a hostname unique across all orgs, whatever its case', async () => {
        const host = `www-${ids
          .newSecret(4)
          .toLowerCase()
          .replace(/[^a-z0-9]/g, 'x')}.example.test`;
        await store.withOrg(b.orgId, (r) =>
          r.domains.insert(aDomain(b.orgId, b.serviceId, b.environmentId, { hostname: host })),
        );
        const e = await rejectsWith(
          inA((r) =>
            r.domains.insert(
              aDomain(a.orgId, a.serviceId, a.environmentId, { hostname: host.toUpperCase() }),
            ),
          ),
          'domain_exists',
        );
        expect(e.message).toBe(`domain ${host.toUpperCase()} already exists`);
        const mine = aDomain(a.orgId, a.serviceId, a.environmentId);
        await inA((r) => r.domains.insert(mine));
        await rejectsWith(
          inA((r) => r.domains.update(mine.id, { hostname: host })),
          'domain_exists',
        );
      });
    });

    describe('webhooks and audit', () => {
      it('inserts, lists and deletes webhooks', async () => {
        const w1 = aWebhook(a.orgId);
        const w2 = aWebhook(a.orgId, { events: [] });
        await inA(async (r) => {
          await r.webhooks.insert(w1);
          await r.webhooks.insert(w2);
        });
        expect(await inA((r) => r.webhooks.list())).toEqual([w1, w2]);
        expect(await store.withOrg(b.orgId, (r) => r.webhooks.list())).toEqual([]);
        expect(await store.withOrg(b.orgId, (r) => r.webhooks.delete(w1.id))).toBe(false);
        expect(await inA((r) => r.webhooks.delete(w1.id))).toBe(true);
        expect(await inA((r) => r.webhooks.list())).toEqual([w2]);
      });

      it('appends audit events and filters them by action and target', async () => {
        const e1 = anAuditEvent(a.orgId, { action: 'release.started', targetId: 'rel_1' });
        const e2 = anAuditEvent(a.orgId, {
          action: 'release.completed',
          targetId: 'rel_1',
          actorType: 'system',
          requestId: 'req_1',
        });
        const e3 = anAuditEvent(a.orgId, { action: 'release.started', targetId: 'rel_2' });
        await inA(async (r) => {
          for (const e of [e1, e2, e3]) await r.audit.append(e);
        });
        expect((await inA((r) => r.audit.list({ limit: 10 }))).items).toEqual([e1, e2, e3]);
        expect(
          (await inA((r) => r.audit.list({ limit: 10 }, { action: 'release.started' }))).items,
        ).toEqual([e1, e3]);
        expect(
          (await inA((r) => r.audit.list({ limit: 10 }, { targetId: 'rel_1' }))).items,
        ).toEqual([e1, e2]);
        expect(
          (
            await inA((r) =>
              r.audit.list({ limit: 10 }, { action: 'release.started', targetId: 'rel_2' }),
            )
          ).items,
        ).toEqual([e3]);
        await rejectsWith(
          inA((r) => r.audit.append(e1)),
          'audit_event_exists',
        );
      });
    });

    describe('pagination', () => {
      it('pages by id with the last id as cursor, and a null cursor on the last page', async () => {
        const made = Array.from({ length: 5 }, () => aProject(a.orgId));
        await inA(async (r) => {
          for (const p of made) await r.projects.insert(p);
        });
        const expected = [a.projectId, ...made.map((p) => p.id)].sort();
        const seen: string[] = [];
        let cursor: string | null = null;
        for (let i = 0; i < 10; i++) {
          const page: Page<Project> = await inA((r) => r.projects.list({ limit: 2, cursor }));
          seen.push(...page.items.map((p) => p.id));
          if (i < 2) expect(page.nextCursor).toBe(page.items[1]?.id);
          cursor = page.nextCursor;
          if (!cursor) break;
        }
        expect(seen).toEqual(expected);
        // An exact fit ends with a null cursor, not an empty extra page.
        expect((await inA((r) => r.projects.list({ limit: 6 }))).nextCursor).toBeNull();
      });

      it('caps the page size at 200 and defaults a nonsensical one', async () => {
        await inA(async (r) => {
          for (let i = 0; i < 205; i++) await r.audit.append(anAuditEvent(a.orgId));
        });
        const big = await inA((r) => r.audit.list({ limit: 1000 }));
        expect(big.items).toHaveLength(200);
        expect(big.nextCursor).toBe(big.items[199]?.id);
        expect((await inA((r) => r.audit.list({ limit: 0 }))).items).toHaveLength(50);
        const rest = await inA((r) => r.audit.list({ limit: 200, cursor: big.nextCursor }));
        expect(rest).toEqual({ items: expect.any(Array), nextCursor: null });
        expect(rest.items).toHaveLength(5);
      });
    });

    describe('transactions', () => {
      it('rolls back everything when fn throws, and rethrows its error', async () => {
        const p = aProject(a.orgId);
        const boom = new Error('boom');
        await expect(
          inA(async (r) => {
            await r.projects.insert(p);
            await r.audit.append(anAuditEvent(a.orgId, { targetId: p.id }));
            expect(await r.projects.get(p.id)).toEqual(p);
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect(await inA((r) => r.projects.get(p.id))).toBeNull();
        expect((await inA((r) => r.audit.list({ limit: 10 }, { targetId: p.id }))).items).toEqual(
          [],
        );
      });

      it('keeps the transaction usable after a caught constraint error', async () => {
        const p = aProject(a.orgId, { name: 'taken' });
        const p2 = aProject(a.orgId, { name: 'free' });
        await inA((r) => r.projects.insert(p));
        await inA(async (r) => {
          await expect(
            r.projects.insert(aProject(a.orgId, { name: 'taken' })),
          ).rejects.toBeInstanceOf(AlreadyExists);
          await r.projects.insert(p2);
        });
        expect(await inA((r) => r.projects.get(p2.id))).toEqual(p2);
      });

      it('returns what fn returns', async () => {
        expect(await inA(async (r) => r.orgId)).toBe(a.orgId);
      });
    });

    describe('org isolation', () => {
      it("never shows org B's rows inside org A", async () => {
        // Give B one of everything.
        const bRel = aRelease(b.orgId, b.serviceId, b.environmentId);
        const bNode = aNode(b.orgId);
        const bDomain = aDomain(b.orgId, b.serviceId, b.environmentId);
        const bJob = aDeployJob(b.orgId, bRel.id);
        const bKey = anApiKey(b.orgId);
        await store.withOrg(b.orgId, async (r) => {
          await r.nodes.insert(bNode);
          await r.releases.insert(bRel);
          await r.releaseSteps.upsert(aStep(b.orgId, bRel.id));
          await r.releaseLogs.append(bRel.id, [{ at: at(), stream: 'stdout', line: 'b' }]);
          await r.deployJobs.insert(bJob);
          await r.domains.insert(bDomain);
          await r.secrets.put(aSecret(b.orgId, b.serviceId, b.environmentId));
          await r.webhooks.insert(aWebhook(b.orgId));
          await r.audit.append(anAuditEvent(b.orgId));
          await r.apiKeys.insert(bKey);
        });
        const page = { limit: 200 };
        await inA(async (r) => {
          expect((await r.orgs.get())?.id).toBe(a.orgId);
          expect((await r.projects.list(page)).items.map((x) => x.id)).toEqual([a.projectId]);
          expect((await r.environments.list(page)).items.map((x) => x.id)).toEqual([
            a.environmentId,
          ]);
          expect((await r.services.list(page)).items.map((x) => x.id)).toEqual([a.serviceId]);
          expect((await r.nodes.list(page)).items).toEqual([]);
          expect((await r.releases.list(page)).items).toEqual([]);
          expect((await r.deployJobs.list(page)).items).toEqual([]);
          expect((await r.domains.list(page)).items).toEqual([]);
          expect((await r.apiKeys.list(page)).items).toEqual([]);
          expect((await r.audit.list(page)).items).toEqual([]);
          expect(await r.webhooks.list()).toEqual([]);
          expect(await r.memberships.list()).toEqual([]);
          expect(await r.projects.get(b.projectId)).toBeNull();
          expect(await r.environments.get(b.environmentId)).toBeNull();
          expect(await r.environments.findByName(b.projectId, 'production')).toBeNull();
          expect(await r.services.get(b.serviceId)).toBeNull();
          expect(await r.nodes.get(bNode.id)).toBeNull();
          expect(await r.releases.get(bRel.id)).toBeNull();
          expect(await r.releases.inFlight(b.serviceId, b.environmentId)).toBeNull();
          expect(await r.releases.latest(b.serviceId, b.environmentId, ['queued'])).toBeNull();
          expect(await r.releaseSteps.list(bRel.id)).toEqual([]);
          expect(await r.releaseLogs.list(bRel.id)).toEqual([]);
          expect(await r.deployJobs.get(bJob.id)).toBeNull();
          expect(await r.domains.get(bDomain.id)).toBeNull();
          expect(await r.secrets.list(b.serviceId, b.environmentId)).toEqual([]);
          expect(await r.releases.transition(bRel.id, 'queued', { status: 'failed' })).toBe(false);
        });
        await rejectsWith(
          inA((r) => r.domains.update(bDomain.id, { status: 'failed' })),
          'domain_not_found',
        );
        await rejectsWith(
          inA((r) => r.deployJobs.update(bJob.id, { attempts: 9 })),
          'deploy_job_not_found',
        );
        // B's data is untouched by all of that.
        expect(await store.withOrg(b.orgId, (r) => r.releases.get(bRel.id))).toEqual(bRel);
        expect(await store.withOrg(b.orgId, (r) => r.deployJobs.get(bJob.id))).toEqual(bJob);
      });
    });
  });
}
