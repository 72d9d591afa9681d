/**
 * The Store in memory, for fast tests. It keeps the PostgreSQL store's semantics, which the
 * shared contract suite checks: the same unique and foreign-key rules (mirroring
 * migrations/0001), the in-flight release rule, compare-and-set transitions, keyset
 * pagination, org confinement, and rollback on throw.
 *
 * withOrg calls are serialised (one transaction at a time, like SERIALIZABLE) and each
 * writes to its own overlay, applied only when fn resolves. A withOrg started inside
 * another one (same async context) runs at once, as PostgreSQL would on another connection.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { AlreadyExists, NotFound, ReleaseAlreadyInFlight } from '../../core/errors.ts';
import type {
  ApiKey,
  ApiKeyWithHash,
  AuditEvent,
  DeployJob,
  Domain,
  Environment,
  Membership,
  NodeRecord,
  Org,
  Page,
  PageRequest,
  Project,
  Release,
  ReleaseLogLine,
  ReleaseStatus,
  ReleaseStep,
  SecretRecord,
  Service,
  User,
  UserWithPassword,
  Webhook,
} from '../../core/models.ts';
import type { IdentityRepo, ListFilter, OrgRepos, Store } from '../../core/ports.ts';
import {
  clampLimit,
  defaultLogLines,
  finishedReleaseStatuses,
  maxLogLines,
  toPage,
} from './page.ts';

type Row = Record<string, unknown>;

const tableNames = [
  'orgs',
  'users',
  'memberships',
  'apiKeys',
  'projects',
  'environments',
  'services',
  'nodes',
  'releases',
  'releaseSteps',
  'releaseLogs',
  'deployJobs',
  'secrets',
  'domains',
  'webhooks',
  'audit',
] as const;
type TableName = (typeof tableNames)[number];
type Tables = Record<TableName, Map<string, Row>>;

const emptyTables = (): Tables =>
  Object.fromEntries(tableNames.map((t) => [t, new Map<string, Row>()])) as Tables;

/** PostgreSQL's message for a row written outside the transaction's org, kept identical. */
const rlsViolation = (table: string): Error =>
  new Error(`new row violates row-level security policy for table "${table}"`);

const isFinished = (status: unknown): boolean =>
  (finishedReleaseStatuses as readonly unknown[]).includes(status);

// ---------------------------------------------------------------- constraints (as in SQL)

interface Unique {
  what: string;
  /** The field the error names. */
  names: string;
  fields: readonly string[];
  normalize?: (v: unknown) => unknown;
  /** Partial index: only rows matching take part. */
  where?: (row: Row) => boolean;
  /** Error to throw instead of AlreadyExists, given the conflicting row. */
  error?: (existing: Row) => Error;
}

interface ForeignKey {
  what: string;
  field: string;
  table: TableName;
}

interface TableRules {
  sqlName: string;
  what: string;
  key: (row: Row) => string;
  /** The field a primary-key clash names. */
  keyNames?: string;
  unique: Unique[];
  foreign: ForeignKey[];
  /** Rows carry org_id (all tenant tables except orgs, which is confined by id). */
  tenant: boolean;
}

const byId = (row: Row): string => String(row.id);

const rules: Record<TableName, TableRules> = {
  orgs: { sqlName: 'orgs', what: 'org', key: byId, unique: [], foreign: [], tenant: false },
  users: {
    sqlName: 'users',
    what: 'user',
    key: byId,
    tenant: false,
    foreign: [],
    unique: [{ what: 'user', names: 'email', fields: ['email'] }],
  },
  memberships: {
    sqlName: 'memberships',
    what: 'membership',
    key: (r) => `${r.orgId}|${r.userId}`,
    keyNames: 'userId',
    tenant: true,
    unique: [],
    foreign: [{ what: 'user', field: 'userId', table: 'users' }],
  },
  apiKeys: {
    sqlName: 'api_keys',
    what: 'api_key',
    key: byId,
    tenant: true,
    foreign: [],
    unique: [
      { what: 'api_key', names: 'name', fields: ['orgId', 'name'] },
      { what: 'api_key', names: 'prefix', fields: ['keyHash'] },
    ],
  },
  projects: {
    sqlName: 'projects',
    what: 'project',
    key: byId,
    tenant: true,
    foreign: [],
    unique: [{ what: 'project', names: 'name', fields: ['orgId', 'name'] }],
  },
  environments: {
    sqlName: 'environments',
    what: 'environment',
    key: byId,
    tenant: true,
    unique: [{ what: 'environment', names: 'name', fields: ['projectId', 'name'] }],
    foreign: [{ what: 'project', field: 'projectId', table: 'projects' }],
  },
  services: {
    sqlName: 'services',
    what: 'service',
    key: byId,
    tenant: true,
    unique: [{ what: 'service', names: 'name', fields: ['projectId', 'name'] }],
    foreign: [{ what: 'project', field: 'projectId', table: 'projects' }],
  },
  nodes: {
    sqlName: 'nodes',
    what: 'node',
    key: byId,
    tenant: true,
    foreign: [],
    unique: [{ what: 'node', names: 'name', fields: ['orgId', 'name'] }],
  },
  releases: {
    sqlName: 'releases',
    what: 'release',
    key: byId,
    tenant: true,
    unique: [
      {
        what: 'release',
        names: 'id',
        fields: ['serviceId', 'environmentId'],
        where: (r) => !isFinished(r.status),
        error: (existing) => new ReleaseAlreadyInFlight(String(existing.id)),
      },
    ],
    foreign: [
      { what: 'service', field: 'serviceId', table: 'services' },
      { what: 'environment', field: 'environmentId', table: 'environments' },
      { what: 'release', field: 'previousReleaseId', table: 'releases' },
      { what: 'node', field: 'nodeId', table: 'nodes' },
    ],
  },
  releaseSteps: {
    sqlName: 'release_steps',
    what: 'release_step',
    key: (r) => `${r.releaseId}|${r.name}`,
    tenant: true,
    unique: [],
    foreign: [{ what: 'release', field: 'releaseId', table: 'releases' }],
  },
  releaseLogs: {
    sqlName: 'release_logs',
    what: 'release_log',
    key: (r) => `${r.releaseId}|${r.seq}`,
    tenant: true,
    unique: [],
    foreign: [{ what: 'release', field: 'releaseId', table: 'releases' }],
  },
  deployJobs: {
    sqlName: 'deploy_jobs',
    what: 'deploy_job',
    key: byId,
    tenant: true,
    unique: [],
    foreign: [{ what: 'release', field: 'releaseId', table: 'releases' }],
  },
  secrets: {
    sqlName: 'secrets',
    what: 'secret',
    key: byId,
    tenant: true,
    unique: [{ what: 'secret', names: 'name', fields: ['serviceId', 'environmentId', 'name'] }],
    foreign: [
      { what: 'service', field: 'serviceId', table: 'services' },
      { what: 'environment', field: 'environmentId', table: 'environments' },
    ],
  },
  domains: {
    sqlName: 'domains',
    what: 'domain',
    key: byId,
    tenant: true,
    unique: [
      {
        what: 'domain',
        names: 'hostname',
        fields: ['hostname'],
        normalize: (v) => String(v).toLowerCase(),
      },
    ],
    foreign: [
      { what: 'service', field: 'serviceId', table: 'services' },
      { what: 'environment', field: 'environmentId', table: 'environments' },
    ],
  },
  webhooks: {
    sqlName: 'webhooks',
    what: 'webhook',
    key: byId,
    tenant: true,
    unique: [],
    foreign: [],
  },
  audit: {
    sqlName: 'audit_events',
    what: 'audit_event',
    key: byId,
    tenant: true,
    unique: [],
    foreign: [],
  },
};

// ---------------------------------------------------------------- transactions

const clone = <T>(v: T): T => structuredClone(v);

/** Reads see committed rows under this transaction's own writes; commit applies them. */
class Overlay {
  private readonly base: Tables;
  private readonly writes = new Map<TableName, Map<string, Row | null>>();

  constructor(base: Tables) {
    this.base = base;
  }

  get(t: TableName, key: string): Row | undefined {
    const w = this.writes.get(t);
    if (w?.has(key)) return w.get(key) ?? undefined;
    return this.base[t].get(key);
  }

  rows(t: TableName): Row[] {
    const w = this.writes.get(t);
    const out: Row[] = [];
    for (const [k, v] of this.base[t]) if (!w?.has(k)) out.push(v);
    if (w) for (const v of w.values()) if (v) out.push(v);
    return out;
  }

  put(t: TableName, key: string, row: Row): void {
    this.tableWrites(t).set(key, clone(row));
  }

  delete(t: TableName, key: string): void {
    this.tableWrites(t).set(key, null);
  }

  commit(): void {
    for (const [t, w] of this.writes) {
      for (const [k, v] of w) {
        if (v) this.base[t].set(k, v);
        else this.base[t].delete(k);
      }
    }
  }

  private tableWrites(t: TableName): Map<string, Row | null> {
    let w = this.writes.get(t);
    if (!w) this.writes.set(t, (w = new Map()));
    return w;
  }
}

/**
 * Checks a row about to be written against the table's rules, as PostgreSQL would.
 * `replacing` is the key of the row an update replaces, which must not clash with itself.
 */
function checkRow(view: Overlay, t: TableName, row: Row, replacing?: string): void {
  const r = rules[t];
  const key = r.key(row);
  if (key !== replacing && view.get(t, key) !== undefined) {
    throw new AlreadyExists(r.what, String(row[r.keyNames ?? 'id'] ?? key));
  }
  for (const u of r.unique) {
    if (u.where && !u.where(row)) continue;
    const norm = u.normalize ?? ((v: unknown) => v);
    const clash = view
      .rows(t)
      .find(
        (other) =>
          r.key(other) !== key &&
          r.key(other) !== replacing &&
          (!u.where || u.where(other)) &&
          u.fields.every((f) => norm(other[f]) === norm(row[f])),
      );
    if (clash)
      throw u.error ? u.error(clash) : new AlreadyExists(u.what, String(row[u.names] ?? ''));
  }
  checkParents(view, t, row);
}

function checkParents(view: Overlay, t: TableName, row: Row): void {
  const r = rules[t];
  if (r.tenant && !view.get('orgs', String(row.orgId)))
    throw new NotFound('org', String(row.orgId));
  for (const f of r.foreign) {
    const value = row[f.field];
    if (value === null || value === undefined) continue;
    const parent = view.get(f.table, String(value));
    // Foreign keys are (org_id, id) pairs in SQL: a parent of another org does not count.
    if (!parent || (rules[f.table].tenant && parent.orgId !== row.orgId))
      throw new NotFound(f.what, String(value));
  }
}

const pick = <M>(row: Row | undefined): M | null => (row ? (clone(row) as M) : null);

const definedEntries = (patch: object, immutable: readonly string[]): Row =>
  Object.fromEntries(
    Object.entries(patch).filter(([k, v]) => v !== undefined && !immutable.includes(k)),
  );

const byIdAsc = (a: Row, b: Row): number =>
  String(a.id) < String(b.id) ? -1 : String(a.id) > String(b.id) ? 1 : 0;

// ---------------------------------------------------------------- repositories

class MemoryOrgRepos implements OrgRepos {
  readonly orgId: string;
  private readonly view: Overlay;

  constructor(view: Overlay, orgId: string) {
    this.view = view;
    this.orgId = orgId;
  }

  private mine(t: TableName): Row[] {
    return this.view
      .rows(t)
      .filter((r) => (t === 'orgs' ? r.id === this.orgId : r.orgId === this.orgId));
  }

  private getOwn<M>(t: TableName, key: string): M | null {
    const row = this.view.get(t, key);
    return row && row.orgId === this.orgId ? pick<M>(row) : null;
  }

  private insert(t: TableName, model: object): void {
    const row = clone(model) as Row;
    if ((t === 'orgs' ? row.id : row.orgId) !== this.orgId) throw rlsViolation(rules[t].sqlName);
    checkRow(this.view, t, row);
    this.view.put(t, rules[t].key(row), row);
  }

  /** Applies a patch to an own row, rechecking constraints; false when there is no such row. */
  private patch(
    t: TableName,
    key: string,
    patch: object,
    immutable: readonly string[],
    precondition?: (row: Row) => boolean,
  ): boolean {
    const existing = this.view.get(t, key);
    if (!existing || existing.orgId !== this.orgId || (precondition && !precondition(existing)))
      return false;
    const next = { ...existing, ...definedEntries(patch, immutable) };
    checkRow(this.view, t, next, key);
    this.view.put(t, key, next);
    return true;
  }

  private page<M>(t: TableName, rows: Row[], page: PageRequest): Page<M> {
    const limit = clampLimit(page.limit);
    const after = page.cursor;
    const sorted = rows
      .filter((r) => !after || String(r.id) > after)
      .sort(byIdAsc)
      .slice(0, limit + 1);
    return toPage(
      sorted.map((r) => clone(r) as M & { id: string }),
      limit,
    );
  }

  private filtered(
    t: TableName,
    filter: ListFilter | undefined,
    project: 'direct' | 'viaService',
  ): Row[] {
    return this.mine(t).filter((r) => {
      if (filter?.projectId) {
        const projectId =
          project === 'direct'
            ? r.projectId
            : this.view.get('services', String(r.serviceId))?.projectId;
        if (projectId !== filter.projectId) return false;
      }
      if (filter?.serviceId && 'serviceId' in r && r.serviceId !== filter.serviceId) return false;
      if (filter?.environmentId && 'environmentId' in r && r.environmentId !== filter.environmentId)
        return false;
      return true;
    });
  }

  private newestWhere(pred: (r: Row) => boolean): Release | null {
    const rows = this.mine('releases').filter(pred).sort(byIdAsc);
    return pick<Release>(rows[rows.length - 1]);
  }

  orgs = {
    insert: async (org: Org) => this.insert('orgs', org),
    get: async () => {
      const row = this.view.get('orgs', this.orgId);
      return pick<Org>(row);
    },
  };

  memberships = {
    insert: async (m: Membership) => this.insert('memberships', m),
    list: async () =>
      this.mine('memberships')
        .sort(
          (a, b) =>
            String(a.createdAt).localeCompare(String(b.createdAt)) ||
            (String(a.userId) < String(b.userId) ? -1 : 1),
        )
        .map((r) => clone(r) as unknown as Membership),
  };

  apiKeys = {
    insert: async (key: ApiKeyWithHash) => this.insert('apiKeys', key),
    list: async (page: PageRequest): Promise<Page<ApiKey>> => {
      const p = this.page<ApiKeyWithHash>('apiKeys', this.mine('apiKeys'), page);
      return {
        items: p.items.map(({ keyHash: _keyHash, ...key }) => key),
        nextCursor: p.nextCursor,
      };
    },
    revoke: async (id: string, at: string) =>
      this.patch(
        'apiKeys',
        id,
        { revokedAt: at },
        [],
        (r) => r.revokedAt === null || r.revokedAt === undefined,
      ),
  };

  projects = {
    insert: async (p: Project) => this.insert('projects', p),
    get: async (id: string) => this.getOwn<Project>('projects', id),
    list: async (page: PageRequest) => this.page<Project>('projects', this.mine('projects'), page),
  };

  environments = {
    insert: async (e: Environment) => this.insert('environments', e),
    get: async (id: string) => this.getOwn<Environment>('environments', id),
    findByName: async (projectId: string, name: string) =>
      pick<Environment>(
        this.mine('environments').find((r) => r.projectId === projectId && r.name === name),
      ),
    list: async (page: PageRequest, filter?: ListFilter) =>
      this.page<Environment>('environments', this.filtered('environments', filter, 'direct'), page),
  };

  services = {
    insert: async (s: Service) => this.insert('services', s),
    get: async (id: string) => this.getOwn<Service>('services', id),
    list: async (page: PageRequest, filter?: ListFilter) =>
      this.page<Service>('services', this.filtered('services', filter, 'direct'), page),
  };

  nodes = {
    insert: async (n: NodeRecord) => this.insert('nodes', n),
    get: async (id: string) => this.getOwn<NodeRecord>('nodes', id),
    list: async (page: PageRequest) => this.page<NodeRecord>('nodes', this.mine('nodes'), page),
    setCredentials: async (id: string, patch: Pick<NodeRecord, 'sealedTls' | 'sealedSsh' | 'credentialsUpdatedAt'>) => {
      if (!this.patch('nodes', id, patch, ['id', 'orgId'])) throw new NotFound('node', id);
    },
  };

  releases = {
    insert: async (r: Release) => this.insert('releases', r),
    get: async (id: string) => this.getOwn<Release>('releases', id),
    list: async (page: PageRequest, filter?: ListFilter) =>
      this.page<Release>('releases', this.filtered('releases', filter, 'viaService'), page),
    transition: async (
      id: string,
      from: ReleaseStatus,
      patch: Partial<Release> & { status: ReleaseStatus },
    ) => this.patch('releases', id, patch, ['id', 'orgId'], (row) => row.status === from),
    update: async (id: string, patch: Partial<Omit<Release, 'id' | 'orgId' | 'status'>>) => {
      if (!this.patch('releases', id, patch, ['id', 'orgId', 'status']))
        throw new NotFound('release', id);
    },
    inFlight: async (serviceId: string, environmentId: string) =>
      this.newestWhere(
        (r) =>
          r.serviceId === serviceId && r.environmentId === environmentId && !isFinished(r.status),
      ),
    latest: async (serviceId: string, environmentId: string, statuses: ReleaseStatus[]) =>
      this.newestWhere(
        (r) =>
          r.serviceId === serviceId &&
          r.environmentId === environmentId &&
          statuses.includes(r.status as ReleaseStatus),
      ),
  };

  releaseSteps = {
    upsert: async (step: ReleaseStep) => {
      const key = rules.releaseSteps.key(step as unknown as Row);
      const existing = this.view.get('releaseSteps', key);
      if (!existing) return this.insert('releaseSteps', step);
      // As `on conflict do update`: the org stays the existing row's, and RLS must allow it.
      if (existing.orgId !== this.orgId || step.orgId !== this.orgId)
        throw rlsViolation('release_steps');
      this.patch('releaseSteps', key, step, ['releaseId', 'name', 'orgId']);
    },
    list: async (releaseId: string) =>
      this.mine('releaseSteps')
        .filter((r) => r.releaseId === releaseId)
        .sort(
          (a, b) =>
            String(a.startedAt).localeCompare(String(b.startedAt)) ||
            String(a.name).localeCompare(String(b.name)),
        )
        .map((r) => clone(r) as unknown as ReleaseStep),
  };

  releaseLogs = {
    append: async (releaseId: string, lines: Omit<ReleaseLogLine, 'releaseId' | 'seq'>[]) => {
      if (lines.length === 0) return;
      const release = this.view.get('releases', releaseId);
      if (!release || release.orgId !== this.orgId) throw new NotFound('release', releaseId);
      // Transactions here run one at a time, so the highest number so far is safe to extend.
      const last = this.view
        .rows('releaseLogs')
        .reduce((max, r) => (r.releaseId === releaseId ? Math.max(max, Number(r.seq)) : max), 0);
      lines.forEach((l, i) => {
        const row: Row = {
          releaseId,
          orgId: this.orgId,
          seq: last + i + 1,
          at: l.at,
          stream: l.stream,
          line: l.line,
        };
        this.view.put('releaseLogs', rules.releaseLogs.key(row), row);
      });
    },
    list: async (releaseId: string, afterSeq = 0, limit?: number): Promise<ReleaseLogLine[]> =>
      this.mine('releaseLogs')
        .filter((r) => r.releaseId === releaseId && Number(r.seq) > afterSeq)
        .sort((a, b) => Number(a.seq) - Number(b.seq))
        .slice(0, clampLimit(limit, maxLogLines, defaultLogLines))
        .map(
          ({ releaseId: rid, seq, at, stream, line }) =>
            ({ releaseId: rid, seq, at, stream, line }) as ReleaseLogLine,
        ),
  };

  deployJobs = {
    insert: async (j: DeployJob) => this.insert('deployJobs', j),
    get: async (id: string) => this.getOwn<DeployJob>('deployJobs', id),
    update: async (
      id: string,
      patch: Partial<Pick<DeployJob, 'status' | 'attempts' | 'updatedAt'>>,
    ) => {
      if (!this.patch('deployJobs', id, patch, ['id', 'orgId']))
        throw new NotFound('deploy_job', id);
    },
    list: async (page: PageRequest) =>
      this.page<DeployJob>('deployJobs', this.mine('deployJobs'), page),
  };

  secrets = {
    put: async (s: SecretRecord) => {
      const existing = this.view
        .rows('secrets')
        .find(
          (r) =>
            r.serviceId === s.serviceId && r.environmentId === s.environmentId && r.name === s.name,
        );
      if (!existing) return this.insert('secrets', s);
      if (existing.orgId !== this.orgId || s.orgId !== this.orgId) throw rlsViolation('secrets');
      this.patch('secrets', String(existing.id), { sealed: s.sealed, updatedAt: s.updatedAt }, []);
    },
    list: async (serviceId: string, environmentId: string) =>
      this.mine('secrets')
        .filter((r) => r.serviceId === serviceId && r.environmentId === environmentId)
        .sort((a, b) => (String(a.name) < String(b.name) ? -1 : 1))
        .map((r) => clone(r) as unknown as SecretRecord),
    delete: async (serviceId: string, environmentId: string, name: string) => {
      const row = this.mine('secrets').find(
        (r) => r.serviceId === serviceId && r.environmentId === environmentId && r.name === name,
      );
      if (!row) return false;
      this.view.delete('secrets', String(row.id));
      return true;
    },
  };

  domains = {
    insert: async (d: Domain) => this.insert('domains', d),
    get: async (id: string) => this.getOwn<Domain>('domains', id),
    list: async (page: PageRequest, filter?: ListFilter) =>
      this.page<Domain>('domains', this.filtered('domains', filter, 'viaService'), page),
    update: async (id: string, patch: Partial<Omit<Domain, 'id' | 'orgId'>>) => {
      if (!this.patch('domains', id, patch, ['id', 'orgId'])) throw new NotFound('domain', id);
    },
    delete: async (id: string) => {
      if (!this.getOwn('domains', id)) return false;
      this.view.delete('domains', id);
      return true;
    },
  };

  webhooks = {
    insert: async (w: Webhook) => this.insert('webhooks', w),
    list: async () =>
      this.mine('webhooks')
        .sort(byIdAsc)
        .map((r) => clone(r) as unknown as Webhook),
    delete: async (id: string) => {
      if (!this.getOwn('webhooks', id)) return false;
      this.view.delete('webhooks', id);
      return true;
    },
  };

  audit = {
    append: async (e: AuditEvent) => this.insert('audit', e),
    list: async (page: PageRequest, filter?: { action?: string; targetId?: string }) =>
      this.page<AuditEvent>(
        'audit',
        this.mine('audit').filter(
          (r) =>
            (!filter?.action || r.action === filter.action) &&
            (!filter?.targetId || r.targetId === filter.targetId),
        ),
        page,
      ),
  };
}

class MemoryIdentity implements IdentityRepo {
  private readonly tables: Tables;

  constructor(tables: Tables) {
    this.tables = tables;
  }

  async createUser(user: UserWithPassword): Promise<void> {
    const row = { ...clone(user), email: user.email.toLowerCase() } as Row;
    const view = new Overlay(this.tables);
    checkRow(view, 'users', row);
    view.put('users', user.id, row);
    view.commit();
  }

  async findUserByEmail(email: string): Promise<UserWithPassword | null> {
    const lowered = email.toLowerCase();
    return pick([...this.tables.users.values()].find((u) => u.email === lowered));
  }

  async findUserById(id: string): Promise<User | null> {
    const u = this.tables.users.get(id);
    return u ? { id: String(u.id), email: String(u.email), createdAt: String(u.createdAt) } : null;
  }

  async membershipsOf(userId: string): Promise<Membership[]> {
    return [...this.tables.memberships.values()]
      .filter((m) => m.userId === userId)
      .sort(
        (a, b) =>
          String(a.createdAt).localeCompare(String(b.createdAt)) ||
          (String(a.orgId) < String(b.orgId) ? -1 : 1),
      )
      .map((m) => clone(m) as unknown as Membership);
  }

  async findApiKeyByHash(keyHash: string): Promise<ApiKey | null> {
    const k = [...this.tables.apiKeys.values()].find((r) => r.keyHash === keyHash);
    if (!k) return null;
    const { keyHash: _keyHash, ...key } = clone(k);
    return key as unknown as ApiKey;
  }

  async countUsers(): Promise<number> {
    return this.tables.users.size;
  }

  /** Custom domains' sweep: as the PostgreSQL function selfdevop_domains_to_check (migration 0002). */
  async domainsToCheck(
    before: { active: string; other: string },
    limit: number,
  ): Promise<Pick<Domain, 'id' | 'orgId' | 'status' | 'checkedAt'>[]> {
    const checked = (r: Record<string, unknown>) => (r.checkedAt === null ? null : Date.parse(String(r.checkedAt)));
    const stale = (r: Record<string, unknown>) => {
      const at = checked(r);
      if (r.status === 'failed') return false;
      if (at === null) return true;
      return at < Date.parse(r.status === 'active' ? before.active : before.other);
    };
    return [...this.tables.domains.values()]
      .filter(stale)
      .sort((x, y) => (checked(x) ?? -Infinity) - (checked(y) ?? -Infinity) || String(x.id).localeCompare(String(y.id)))
      .slice(0, Math.min(Math.max(limit, 0), 1000))
      .map((r) => ({
        id: String(r.id),
        orgId: String(r.orgId),
        status: r.status as Domain['status'],
        checkedAt: r.checkedAt === null ? null : String(r.checkedAt),
      }));
  }

  async findDomainByHostname(
    hostname: string,
  ): Promise<Pick<Domain, 'id' | 'orgId' | 'status'> | null> {
    const lowered = hostname.toLowerCase();
    const d = [...this.tables.domains.values()].find(
      (r) => String(r.hostname).toLowerCase() === lowered,
    );
    return d
      ? { id: String(d.id), orgId: String(d.orgId), status: d.status as Domain['status'] }
      : null;
  }
}

/** The in-memory Store: same contract as PostgresStore, nothing to start. */
export class MemoryStore implements Store {
  readonly identity: IdentityRepo;
  private readonly tables: Tables = emptyTables();
  private readonly inTransaction = new AsyncLocalStorage<true>();
  private tail: Promise<void> = Promise.resolve();
  private closed = false;

  constructor() {
    this.identity = new MemoryIdentity(this.tables);
  }

  async withOrg<T>(orgId: string, fn: (repos: OrgRepos) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('store is closed');
    if (this.inTransaction.getStore()) return this.run(orgId, fn);
    const previous = this.tail;
    let done!: () => void;
    this.tail = new Promise<void>((resolve) => (done = resolve));
    await previous;
    try {
      return await this.inTransaction.run(true, () => this.run(orgId, fn));
    } finally {
      done();
    }
  }

  private async run<T>(orgId: string, fn: (repos: OrgRepos) => Promise<T>): Promise<T> {
    const view = new Overlay(this.tables);
    const result = await fn(new MemoryOrgRepos(view, orgId));
    view.commit();
    return result;
  }

  async ping(): Promise<void> {
    if (this.closed) throw new Error('store is closed');
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
