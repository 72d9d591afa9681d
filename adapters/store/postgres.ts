/**
 * The Store on PostgreSQL. Each withOrg call is one transaction whose `app.org_id` setting
 * confines every statement to one org through row-level security (migrations/0001); the
 * queries also name org_id, so they stay confined even if a policy were ever dropped.
 * SQL is built by the small pure functions at the top; repositories only pick them.
 */
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
  fromDatabaseUrl,
  isPgError,
  type Database,
  type PgErrorLike,
  type PoolOptions,
  type SqlClient,
} from '../db/postgres.ts';
import {
  clampLimit,
  defaultLogLines,
  finishedReleaseStatuses,
  maxLogLines,
  toPage,
} from './page.ts';

// ---------------------------------------------------------------- tables

interface Table<M> {
  name: string;
  /** Model keys, in column order; each column is the key in snake_case. */
  keys: readonly (keyof M & string)[];
}

/** What the SQL builders need of a table, whatever its model. */
export interface TableShape {
  name: string;
  keys: readonly string[];
}

const table = <M>(name: string, keys: readonly (keyof M & string)[]): Table<M> => ({ name, keys });

const tables = {
  orgs: table<Org>('orgs', ['id', 'name', 'createdAt']),
  users: table<UserWithPassword>('users', ['id', 'email', 'passwordHash', 'createdAt']),
  memberships: table<Membership>('memberships', ['orgId', 'userId', 'role', 'createdAt']),
  apiKeys: table<ApiKeyWithHash>('api_keys', [
    'id',
    'orgId',
    'name',
    'role',
    'prefix',
    'keyHash',
    'createdAt',
    'revokedAt',
  ]),
  projects: table<Project>('projects', ['id', 'orgId', 'name', 'createdAt']),
  environments: table<Environment>('environments', [
    'id',
    'orgId',
    'projectId',
    'name',
    'createdAt',
  ]),
  services: table<Service>('services', [
    'id',
    'orgId',
    'projectId',
    'name',
    'image',
    'containerPort',
    'healthcheckPath',
    'migrateCommand',
    'strategy',
    'replicas',
    'env',
    'memoryMb',
    'cpus',
    'health',
    'warmSeconds',
    'drainSeconds',
    'sticky',
    'createdAt',
  ]),
  nodes: table<NodeRecord>('nodes', [
    'id',
    'orgId',
    'name',
    'dockerHost',
    'address',
    'labels',
    'drainMode',
    'createdAt',
    'sealedTls',
    'sealedSsh',
    'credentialsUpdatedAt',
  ]),
  releases: table<Release>('releases', [
    'id',
    'orgId',
    'serviceId',
    'environmentId',
    'image',
    'imageDigest',
    'gitSha',
    'status',
    'previousReleaseId',
    'nodeId',
    'containerId',
    'upstream',
    'error',
    'createdAt',
    'updatedAt',
    'finishedAt',
  ]),
  releaseSteps: table<ReleaseStep>('release_steps', [
    'releaseId',
    'orgId',
    'name',
    'status',
    'attempt',
    'startedAt',
    'finishedAt',
    'error',
  ]),
  releaseLogs: table<ReleaseLogLine>('release_logs', ['releaseId', 'seq', 'at', 'stream', 'line']),
  deployJobs: table<DeployJob>('deploy_jobs', [
    'id',
    'orgId',
    'releaseId',
    'kind',
    'status',
    'attempts',
    'createdAt',
    'updatedAt',
  ]),
  domains: table<Domain>('domains', [
    'id',
    'orgId',
    'serviceId',
    'environmentId',
    'hostname',
    'verificationToken',
    'status',
    'dnsStatus',
    'tlsStatus',
    'lastError',
    'checkedAt',
    'createdAt',
  ]),
  secrets: table<SecretRecord>('secrets', [
    'id',
    'orgId',
    'serviceId',
    'environmentId',
    'name',
    'sealed',
    'createdAt',
    'updatedAt',
  ]),
  webhooks: table<Webhook>('webhooks', [
    'id',
    'orgId',
    'url',
    'sealedSecret',
    'events',
    'createdAt',
  ]),
  audit: table<AuditEvent>('audit_events', [
    'id',
    'orgId',
    'actorType',
    'actorId',
    'action',
    'targetType',
    'targetId',
    'data',
    'requestId',
    'createdAt',
  ]),
} as const;

// ---------------------------------------------------------------- pure SQL builders

// Called per field of every row read, so the answer for each key is remembered.
const columnNames = new Map<string, string>();
export const toColumn = (key: string): string => {
  let column = columnNames.get(key);
  if (column === undefined) {
    column = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    columnNames.set(key, column);
  }
  return column;
};

const placeholders = (count: number, from = 1): string =>
  Array.from({ length: count }, (_, i) => `$${i + from}`).join(', ');

export const selectSql = (t: TableShape): string =>
  `select ${t.keys.map(toColumn).join(', ')} from ${t.name}`;

export const insertSql = (t: TableShape): string =>
  `insert into ${t.name} (${t.keys.map(toColumn).join(', ')}) values (${placeholders(t.keys.length)})`;

/** `on conflict (...) do update` setting every column except the conflict target and org. */
export const upsertSql = (
  t: TableShape,
  conflict: readonly string[],
  keep: readonly string[] = [],
): string => {
  const fixed = new Set([...conflict, 'orgId', ...keep]);
  const sets = t.keys
    .filter((k) => !fixed.has(k))
    .map((k) => `${toColumn(k)} = excluded.${toColumn(k)}`);
  return `${insertSql(t)} on conflict (${conflict.map(toColumn).join(', ')}) do update set ${sets.join(', ')}`;
};

/** One equality or subquery condition; `sql` receives its placeholder. */
export interface Condition {
  sql: (param: string) => string;
  value: unknown;
}

export const eq = (column: string, value: unknown): Condition => ({
  sql: (p) => `${column} = ${p}`,
  value,
});

export const whereSql = (conditions: readonly Condition[], from = 1): string =>
  conditions.length === 0
    ? ''
    : ` where ${conditions.map((c, i) => c.sql(`$${i + from}`)).join(' and ')}`;

/** A keyset page: rows after the cursor id, ordered by id, one extra to detect a next page. */
export function pageSql(
  t: TableShape,
  conditions: readonly Condition[],
  page: PageRequest,
): { text: string; values: unknown[]; limit: number } {
  const limit = clampLimit(page.limit);
  const all = page.cursor
    ? [...conditions, { sql: (p: string) => `id > ${p}`, value: page.cursor }]
    : conditions;
  return {
    text: `${selectSql(t)}${whereSql(all)} order by id limit ${limit + 1}`,
    values: all.map((c) => c.value),
    limit,
  };
}

/** `update t set a = $n, … where <conditions>` for the patch keys the table has. */
export function updateSql(
  t: TableShape,
  patch: Record<string, unknown>,
  conditions: readonly Condition[],
  immutable: readonly string[] = ['id', 'orgId'],
): { text: string; values: unknown[] } | null {
  const keys = t.keys.filter((k) => k in patch && patch[k] !== undefined && !immutable.includes(k));
  if (keys.length === 0) return null;
  const sets = keys.map((k, i) => `${toColumn(k)} = $${i + 1}`).join(', ');
  return {
    text: `update ${t.name} set ${sets}${whereSql(conditions, keys.length + 1)}`,
    values: [...keys.map((k) => toParam(patch[k])), ...conditions.map((c) => c.value)],
  };
}

// ---------------------------------------------------------------- rows <-> models

const toParam = (v: unknown): unknown => (v === undefined ? null : v);

const valuesOf = <M>(t: Table<M>, model: M): unknown[] => t.keys.map((k) => toParam(model[k]));

/** Times come back as Date (to ISO strings); jsonb, arrays, numbers, booleans as they are. */
function fromRow<M>(t: Table<M>, row: Record<string, unknown>): M {
  const out: Record<string, unknown> = {};
  for (const k of t.keys) {
    const v = row[toColumn(k)];
    out[k] = v instanceof Date ? v.toISOString() : v;
  }
  return out as M;
}

// ---------------------------------------------------------------- constraint errors

/** Which record a constraint protects, to state the conflict as the user knows it. */
const uniqueConstraints: Record<string, [what: string, key: string]> = {
  orgs_pkey: ['org', 'id'],
  users_pkey: ['user', 'id'],
  users_email_key: ['user', 'email'],
  memberships_pkey: ['membership', 'userId'],
  api_keys_pkey: ['api_key', 'id'],
  api_keys_org_id_key: ['api_key', 'id'],
  api_keys_org_name_key: ['api_key', 'name'],
  api_keys_key_hash_key: ['api_key', 'prefix'],
  projects_pkey: ['project', 'id'],
  projects_org_name_key: ['project', 'name'],
  environments_pkey: ['environment', 'id'],
  environments_project_name_key: ['environment', 'name'],
  services_pkey: ['service', 'id'],
  services_project_name_key: ['service', 'name'],
  nodes_pkey: ['node', 'id'],
  nodes_org_name_key: ['node', 'name'],
  releases_pkey: ['release', 'id'],
  deploy_jobs_pkey: ['deploy_job', 'id'],
  domains_pkey: ['domain', 'id'],
  domains_hostname_key: ['domain', 'hostname'],
  secrets_pkey: ['secret', 'id'],
  secrets_service_env_name_key: ['secret', 'name'],
  webhooks_pkey: ['webhook', 'id'],
  audit_events_pkey: ['audit_event', 'id'],
};

/** Which parent a foreign key points at, to state a missing one as NotFound. */
const foreignKeys: Record<string, [what: string, key: string]> = {
  memberships_user_id_fkey: ['user', 'userId'],
  environments_project_fkey: ['project', 'projectId'],
  services_project_fkey: ['project', 'projectId'],
  releases_service_fkey: ['service', 'serviceId'],
  releases_environment_fkey: ['environment', 'environmentId'],
  releases_previous_fkey: ['release', 'previousReleaseId'],
  releases_node_fkey: ['node', 'nodeId'],
  release_steps_release_fkey: ['release', 'releaseId'],
  release_logs_release_fkey: ['release', 'releaseId'],
  deploy_jobs_release_fkey: ['release', 'releaseId'],
  domains_service_fkey: ['service', 'serviceId'],
  domains_environment_fkey: ['environment', 'environmentId'],
  secrets_service_fkey: ['service', 'serviceId'],
  secrets_environment_fkey: ['environment', 'environmentId'],
};

/** The core error for a constraint violation on `record`, or null when it is not one. */
export function violationOf(e: PgErrorLike, record: Record<string, unknown>): Error | null {
  const constraint = e.constraint ?? '';
  if (e.code === '23505') {
    const u = uniqueConstraints[constraint];
    if (u) return new AlreadyExists(u[0], String(record[u[1]] ?? ''));
  }
  if (e.code === '23503') {
    if (constraint.endsWith('_org_id_fkey')) return new NotFound('org', String(record.orgId ?? ''));
    const f = foreignKeys[constraint];
    if (f) return new NotFound(f[0], String(record[f[1]] ?? ''));
  }
  return null;
}

const isViolation = (e: unknown): e is PgErrorLike =>
  isPgError(e) && (e.code === '23505' || e.code === '23503');

/**
 * Runs one write inside a savepoint, so a constraint violation becomes a core error and
 * leaves the transaction usable (as it is in the memory store).
 */
async function guardedWrite(
  tx: SqlClient,
  text: string,
  values: readonly unknown[],
  record: Record<string, unknown>,
  onViolation?: (e: PgErrorLike) => Promise<Error | null>,
): Promise<number> {
  await tx.query('savepoint store_write');
  try {
    const r = await tx.query(text, values);
    await tx.query('release savepoint store_write');
    return r.rowCount;
  } catch (e) {
    if (!isViolation(e)) throw e;
    await tx.query('rollback to savepoint store_write');
    await tx.query('release savepoint store_write');
    throw (await onViolation?.(e)) ?? violationOf(e, record) ?? e;
  }
}

// ---------------------------------------------------------------- repositories

const inFlightSql = `status not in (${finishedReleaseStatuses.map((s) => `'${s}'`).join(', ')})`;

class PgOrgRepos implements OrgRepos {
  readonly orgId: string;
  private readonly tx: SqlClient;

  constructor(tx: SqlClient, orgId: string) {
    this.tx = tx;
    this.orgId = orgId;
  }

  private org = (): Condition => eq('org_id', this.orgId);

  private async one<M>(t: Table<M>, conditions: Condition[]): Promise<M | null> {
    const r = await this.tx.query(
      `${selectSql(t)}${whereSql(conditions)} limit 1`,
      conditions.map((c) => c.value),
    );
    return r.rows[0] ? fromRow(t, r.rows[0]) : null;
  }

  private async all<M>(t: Table<M>, conditions: Condition[], orderBy: string): Promise<M[]> {
    const r = await this.tx.query(
      `${selectSql(t)}${whereSql(conditions)} order by ${orderBy}`,
      conditions.map((c) => c.value),
    );
    return r.rows.map((row) => fromRow(t, row));
  }

  private async page<M extends { id: string }>(
    t: Table<M>,
    conditions: Condition[],
    page: PageRequest,
  ): Promise<Page<M>> {
    const q = pageSql(t, [this.org(), ...conditions], page);
    const r = await this.tx.query(q.text, q.values);
    return toPage(
      r.rows.map((row) => fromRow(t, row)),
      q.limit,
    );
  }

  private async insert<M>(t: Table<M>, model: M): Promise<void> {
    await guardedWrite(this.tx, insertSql(t), valuesOf(t, model), model as Record<string, unknown>);
  }

  private async updateById<M>(
    t: Table<M>,
    what: string,
    id: string,
    patch: Record<string, unknown>,
    immutable?: string[],
  ): Promise<boolean> {
    const q = updateSql(t, patch, [eq('id', id), this.org()], immutable);
    const count = q
      ? await guardedWrite(this.tx, q.text, q.values, { ...patch, id })
      : (await this.one(t, [eq('id', id), this.org()])) === null
        ? 0
        : 1;
    if (count === 0) throw new NotFound(what, id);
    return true;
  }

  private async deleteWhere(t: TableShape, conditions: Condition[]): Promise<boolean> {
    const r = await this.tx.query(
      `delete from ${t.name}${whereSql(conditions)}`,
      conditions.map((c) => c.value),
    );
    return r.rowCount > 0;
  }

  /** projectId filters rows that only know their service through the service. */
  private filterConditions(
    filter: ListFilter | undefined,
    columns: { project?: 'direct' | 'viaService'; service?: boolean; environment?: boolean },
  ): Condition[] {
    const out: Condition[] = [];
    if (filter?.projectId && columns.project === 'direct')
      out.push(eq('project_id', filter.projectId));
    if (filter?.projectId && columns.project === 'viaService') {
      out.push({
        sql: (p) => `service_id in (select id from services where project_id = ${p})`,
        value: filter.projectId,
      });
    }
    if (filter?.serviceId && columns.service) out.push(eq('service_id', filter.serviceId));
    if (filter?.environmentId && columns.environment)
      out.push(eq('environment_id', filter.environmentId));
    return out;
  }

  orgs = {
    insert: (org: Org) => this.insert(tables.orgs, org),
    get: () => this.one(tables.orgs, [eq('id', this.orgId)]),
  };

  memberships = {
    insert: (m: Membership) => this.insert(tables.memberships, m),
    list: () => this.all(tables.memberships, [this.org()], 'created_at, user_id'),
  };

  apiKeys = {
    insert: (key: ApiKeyWithHash) => this.insert(tables.apiKeys, key),
    list: async (page: PageRequest): Promise<Page<ApiKey>> => {
      const p = await this.page(tables.apiKeys, [], page);
      return {
        items: p.items.map(({ keyHash: _keyHash, ...key }) => key),
        nextCursor: p.nextCursor,
      };
    },
    revoke: async (id: string, at: string): Promise<boolean> => {
      const r = await this.tx.query(
        'update api_keys set revoked_at = $1 where id = $2 and org_id = $3 and revoked_at is null',
        [at, id, this.orgId],
      );
      return r.rowCount > 0;
    },
  };

  projects = {
    insert: (p: Project) => this.insert(tables.projects, p),
    get: (id: string) => this.one(tables.projects, [eq('id', id), this.org()]),
    list: (page: PageRequest) => this.page(tables.projects, [], page),
  };

  environments = {
    insert: (e: Environment) => this.insert(tables.environments, e),
    get: (id: string) => this.one(tables.environments, [eq('id', id), this.org()]),
    findByName: (projectId: string, name: string) =>
      this.one(tables.environments, [eq('project_id', projectId), eq('name', name), this.org()]),
    list: (page: PageRequest, filter?: ListFilter) =>
      this.page(tables.environments, this.filterConditions(filter, { project: 'direct' }), page),
  };

  services = {
    insert: (s: Service) => this.insert(tables.services, s),
    get: (id: string) => this.one(tables.services, [eq('id', id), this.org()]),
    list: (page: PageRequest, filter?: ListFilter) =>
      this.page(tables.services, this.filterConditions(filter, { project: 'direct' }), page),
  };

  nodes = {
    insert: (n: NodeRecord) => this.insert(tables.nodes, n),
    get: (id: string) => this.one(tables.nodes, [eq('id', id), this.org()]),
    list: (page: PageRequest) => this.page(tables.nodes, [], page),
    setCredentials: async (id: string, patch: Pick<NodeRecord, 'sealedTls' | 'sealedSsh' | 'credentialsUpdatedAt'>): Promise<void> => {
      await this.updateById(tables.nodes, 'node', id, patch);
    },
  };

  releases = {
    insert: async (r: Release): Promise<void> => {
      // The partial unique index decides races; on a conflict, name the release holding
      // the service environment. If it finished in between, the insert is tried again.
      for (let attempt = 1; ; attempt++) {
        let holderGone = false;
        try {
          await guardedWrite(
            this.tx,
            insertSql(tables.releases),
            valuesOf(tables.releases, r),
            r as unknown as Record<string, unknown>,
            async (e) => {
              if (e.code !== '23505' || e.constraint !== 'releases_one_in_flight') return null;
              const holder = await this.releases.inFlight(r.serviceId, r.environmentId);
              if (holder) return new ReleaseAlreadyInFlight(holder.id);
              holderGone = true;
              return e as Error;
            },
          );
          return;
        } catch (e) {
          if (!holderGone || attempt >= 3) throw e;
        }
      }
    },
    get: (id: string) => this.one(tables.releases, [eq('id', id), this.org()]),
    list: (page: PageRequest, filter?: ListFilter) =>
      this.page(
        tables.releases,
        this.filterConditions(filter, { project: 'viaService', service: true, environment: true }),
        page,
      ),
    transition: async (
      id: string,
      from: ReleaseStatus,
      patch: Partial<Release> & { status: ReleaseStatus },
    ): Promise<boolean> => {
      const conditions = [eq('id', id), this.org(), eq('status', from)];
      const q = updateSql(tables.releases, patch, conditions);
      if (!q) return false;
      const count = await guardedWrite(this.tx, q.text, q.values, { ...patch, id }, async (e) => {
        if (e.constraint !== 'releases_one_in_flight') return null;
        const current = await this.releases.get(id);
        const holder = current
          ? await this.releases.inFlight(current.serviceId, current.environmentId)
          : null;
        return holder ? new ReleaseAlreadyInFlight(holder.id) : null;
      });
      return count > 0;
    },
    update: async (
      id: string,
      patch: Partial<Omit<Release, 'id' | 'orgId' | 'status'>>,
    ): Promise<void> => {
      await this.updateById(tables.releases, 'release', id, patch, ['id', 'orgId', 'status']);
    },
    inFlight: async (serviceId: string, environmentId: string): Promise<Release | null> => {
      const r = await this.tx.query(
        `${selectSql(tables.releases)} where service_id = $1 and environment_id = $2 and org_id = $3 and ${inFlightSql} order by id desc limit 1`,
        [serviceId, environmentId, this.orgId],
      );
      return r.rows[0] ? fromRow(tables.releases, r.rows[0]) : null;
    },
    latest: async (
      serviceId: string,
      environmentId: string,
      statuses: ReleaseStatus[],
    ): Promise<Release | null> => {
      const r = await this.tx.query(
        `${selectSql(tables.releases)} where service_id = $1 and environment_id = $2 and org_id = $3 and status = any($4::text[]) order by id desc limit 1`,
        [serviceId, environmentId, this.orgId, statuses],
      );
      return r.rows[0] ? fromRow(tables.releases, r.rows[0]) : null;
    },
  };

  releaseSteps = {
    upsert: (step: ReleaseStep) =>
      guardedWrite(
        this.tx,
        upsertSql(tables.releaseSteps, ['releaseId', 'name']),
        valuesOf(tables.releaseSteps, step),
        step as unknown as Record<string, unknown>,
      ).then(() => undefined),
    list: (releaseId: string) =>
      this.all(tables.releaseSteps, [eq('release_id', releaseId), this.org()], 'started_at, name'),
  };

  releaseLogs = {
    append: async (
      releaseId: string,
      lines: Omit<ReleaseLogLine, 'releaseId' | 'seq'>[],
    ): Promise<void> => {
      if (lines.length === 0) return;
      // Reserving the numbers bumps a counter on the release row; its row lock orders
      // concurrent appenders, so each gets its own contiguous, increasing range.
      const r = await this.tx.query<{ last: number }>(
        'update releases set log_seq = log_seq + $1 where id = $2 and org_id = $3 returning log_seq as last',
        [lines.length, releaseId, this.orgId],
      );
      const last = r.rows[0]?.last;
      if (last === undefined) throw new NotFound('release', releaseId);
      const first = last - lines.length + 1;
      await this.tx.query(
        `insert into release_logs (release_id, org_id, seq, at, stream, line)
         select $1, $2, u.seq, u.at, u.stream, u.line
         from unnest($3::integer[], $4::timestamptz[], $5::text[], $6::text[]) as u(seq, at, stream, line)`,
        [
          releaseId,
          this.orgId,
          lines.map((_, i) => first + i),
          lines.map((l) => l.at),
          lines.map((l) => l.stream),
          lines.map((l) => l.line),
        ],
      );
    },
    list: async (releaseId: string, afterSeq = 0, limit?: number): Promise<ReleaseLogLine[]> => {
      const n = clampLimit(limit, maxLogLines, defaultLogLines);
      const r = await this.tx.query(
        `${selectSql(tables.releaseLogs)} where release_id = $1 and org_id = $2 and seq > $3 order by seq limit ${n}`,
        [releaseId, this.orgId, afterSeq],
      );
      return r.rows.map((row) => fromRow(tables.releaseLogs, row));
    },
  };

  deployJobs = {
    insert: (j: DeployJob) => this.insert(tables.deployJobs, j),
    get: (id: string) => this.one(tables.deployJobs, [eq('id', id), this.org()]),
    update: async (
      id: string,
      patch: Partial<Pick<DeployJob, 'status' | 'attempts' | 'updatedAt'>>,
    ): Promise<void> => {
      await this.updateById(tables.deployJobs, 'deploy_job', id, patch);
    },
    list: (page: PageRequest) => this.page(tables.deployJobs, [], page),
  };

  secrets = {
    put: (s: SecretRecord) =>
      guardedWrite(
        this.tx,
        upsertSql(tables.secrets, ['serviceId', 'environmentId', 'name'], ['id', 'createdAt']),
        valuesOf(tables.secrets, s),
        s as unknown as Record<string, unknown>,
      ).then(() => undefined),
    list: (serviceId: string, environmentId: string) =>
      this.all(
        tables.secrets,
        [eq('service_id', serviceId), eq('environment_id', environmentId), this.org()],
        'name',
      ),
    delete: (serviceId: string, environmentId: string, name: string) =>
      this.deleteWhere(tables.secrets, [
        eq('service_id', serviceId),
        eq('environment_id', environmentId),
        eq('name', name),
        this.org(),
      ]),
  };

  domains = {
    insert: (d: Domain) => this.insert(tables.domains, d),
    get: (id: string) => this.one(tables.domains, [eq('id', id), this.org()]),
    list: (page: PageRequest, filter?: ListFilter) =>
      this.page(
        tables.domains,
        this.filterConditions(filter, { project: 'viaService', service: true, environment: true }),
        page,
      ),
    update: async (id: string, patch: Partial<Omit<Domain, 'id' | 'orgId'>>): Promise<void> => {
      await this.updateById(tables.domains, 'domain', id, patch);
    },
    delete: (id: string) => this.deleteWhere(tables.domains, [eq('id', id), this.org()]),
  };

  webhooks = {
    insert: (w: Webhook) => this.insert(tables.webhooks, w),
    list: () => this.all(tables.webhooks, [this.org()], 'id'),
    delete: (id: string) => this.deleteWhere(tables.webhooks, [eq('id', id), this.org()]),
  };

  audit = {
    append: (e: AuditEvent) => this.insert(tables.audit, e),
    list: (page: PageRequest, filter?: { action?: string; targetId?: string }) => {
      const conditions: Condition[] = [];
      if (filter?.action) conditions.push(eq('action', filter.action));
      if (filter?.targetId) conditions.push(eq('target_id', filter.targetId));
      return this.page(tables.audit, conditions, page);
    },
  };
}

class PgIdentity implements IdentityRepo {
  private readonly db: SqlClient;

  constructor(db: SqlClient) {
    this.db = db;
  }

  async createUser(user: UserWithPassword): Promise<void> {
    const lowered = { ...user, email: user.email.toLowerCase() };
    try {
      await this.db.query(insertSql(tables.users), valuesOf(tables.users, lowered));
    } catch (e) {
      throw (isViolation(e) ? violationOf(e, lowered) : null) ?? e;
    }
  }

  async findUserByEmail(email: string): Promise<UserWithPassword | null> {
    const r = await this.db.query(`${selectSql(tables.users)} where email = lower($1)`, [email]);
    return r.rows[0] ? fromRow(tables.users, r.rows[0]) : null;
  }

  async findUserById(id: string): Promise<User | null> {
    const r = await this.db.query('select id, email, created_at from users where id = $1', [id]);
    const row = r.rows[0];
    return row ? fromRow(table<User>('users', ['id', 'email', 'createdAt']), row) : null;
  }

  async membershipsOf(userId: string): Promise<Membership[]> {
    const r = await this.db.query(
      'select org_id, user_id, role, created_at from selfdevop_memberships_of($1)',
      [userId],
    );
    return r.rows.map((row) => fromRow(tables.memberships, row));
  }

  async findApiKeyByHash(keyHash: string): Promise<ApiKey | null> {
    const r = await this.db.query(
      'select id, org_id, name, role, prefix, created_at, revoked_at from selfdevop_api_key_by_hash($1)',
      [keyHash],
    );
    const row = r.rows[0];
    return row
      ? fromRow(
          table<ApiKey>('api_keys', [
            'id',
            'orgId',
            'name',
            'role',
            'prefix',
            'createdAt',
            'revokedAt',
          ]),
          row,
        )
      : null;
  }

  async countUsers(): Promise<number> {
    const r = await this.db.query<{ n: string }>('select selfdevop_count_users() as n');
    return Number(r.rows[0]?.n ?? 0);
  }

  /** Custom domains' sweep (migration 0002): stale domains across orgs, through a definer function. */
  async domainsToCheck(
    before: { active: string; other: string },
    limit: number,
  ): Promise<Pick<Domain, 'id' | 'orgId' | 'status' | 'checkedAt'>[]> {
    const r = await this.db.query(
      'select id, org_id, status, checked_at from selfdevop_domains_to_check($1, $2, $3)',
      [before.active, before.other, limit],
    );
    const t = table<Pick<Domain, 'id' | 'orgId' | 'status' | 'checkedAt'>>('domains', ['id', 'orgId', 'status', 'checkedAt']);
    return r.rows.map((row) => fromRow(t, row));
  }

  async findDomainByHostname(
    hostname: string,
  ): Promise<Pick<Domain, 'id' | 'orgId' | 'status'> | null> {
    const r = await this.db.query(
      'select id, org_id, status from selfdevop_domain_by_hostname($1)',
      [hostname],
    );
    const row = r.rows[0];
    return row
      ? fromRow(
          table<Pick<Domain, 'id' | 'orgId' | 'status'>>('domains', ['id', 'orgId', 'status']),
          row,
        )
      : null;
  }
}

/**
 * The PostgreSQL Store. Give it a Database made by fromDatabaseUrl (which connects as
 * selfdevop_app), or let `PostgresStore.fromUrl` make and own one.
 */
/** A SQL string literal (standard_conforming_strings, on since PostgreSQL 9.1). */
export function quoteLiteral(value: string): string {
  if (value.includes('\u0000')) throw new Error('a SQL literal cannot contain NUL');
  return `'${value.replace(/'/g, "''")}'`;
}

export class PostgresStore implements Store {
  readonly identity: IdentityRepo;
  private readonly db: Database;
  private readonly ownsDb: boolean;

  constructor(db: Database, options: { ownsDb?: boolean } = {}) {
    this.db = db;
    this.ownsDb = options.ownsDb ?? false;
    this.identity = new PgIdentity(db);
  }

  static fromUrl(url: string, options: PoolOptions = {}): PostgresStore {
    return new PostgresStore(fromDatabaseUrl(url, options), { ownsDb: true });
  }

  withOrg<T>(orgId: string, fn: (repos: OrgRepos) => Promise<T>): Promise<T> {
    // Local to this transaction: the pooled connection forgets it at COMMIT/ROLLBACK. Sent
    // with BEGIN in one round trip, so the org id is quoted here rather than bound.
    const prelude = `select set_config('app.org_id', ${quoteLiteral(orgId)}, true)`;
    return this.db.transaction((tx) => fn(new PgOrgRepos(tx, orgId)), { prelude });
  }

  async ping(): Promise<void> {
    await this.db.query('select 1');
  }

  async close(): Promise<void> {
    if (this.ownsDb) await this.db.close();
  }
}
