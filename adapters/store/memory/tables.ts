/**
 * The memory store's tables and the rules PostgreSQL enforces on them (mirroring
 * migrations/0001): keys, unique and foreign keys, the in-flight release rule.
 */
import { hostnameHoldingStatuses } from '../../../core/domains/state-machine.ts';
import { HostnameTaken, ReleaseAlreadyInFlight } from '../../../core/errors.ts';
import { finishedReleaseStatuses } from '../../../core/models.ts';

export type Row = Record<string, unknown>;

export const tableNames = [
  'orgs',
  'users',
  'operators',
  'memberships',
  'invites',
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
  'webhookDeliveries',
  'notificationChannels',
  'heldNotifications',
  'notificationDeliveries',
  'pushHooks',
  'pushDeliveries',
  'gitPolls',
  'dataServices',
  'dataServiceLinks',
  'registries',
  'jobs',
  'jobRuns',
  'alertThresholds',
  'dataServiceBackups',
  'audit',
] as const;
export type TableName = (typeof tableNames)[number];
export type Tables = Record<TableName, Map<string, Row>>;

export const emptyTables = (): Tables =>
  Object.fromEntries(tableNames.map((t) => [t, new Map<string, Row>()])) as Tables;

/** PostgreSQL's message for a row written outside the transaction's org, kept identical. */
export const rlsViolation = (table: string): Error =>
  new Error(`new row violates row-level security policy for table "${table}"`);

export const isFinished = (status: unknown): boolean =>
  (finishedReleaseStatuses as readonly unknown[]).includes(status);

// ---------------------------------------------------------------- constraints (as in SQL)

export interface Unique {
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

export interface ForeignKey {
  what: string;
  field: string;
  table: TableName;
}

export interface TableRules {
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

export const byId = (row: Row): string => String(row.id);

export const rules: Record<TableName, TableRules> = {
  alertThresholds: {
    sqlName: 'alert_thresholds',
    what: 'alert_threshold',
    key: (r) => `${r.serviceId}|${r.rule}`,
    keyNames: 'rule',
    tenant: true,
    unique: [],
    foreign: [{ what: 'service', field: 'serviceId', table: 'services' }],
  },
  pushHooks: {
    sqlName: 'push_hooks',
    what: 'push_hook',
    key: byId,
    tenant: true,
    unique: [{ what: 'push_hook', names: 'serviceId', fields: ['orgId', 'serviceId'] }],
    foreign: [{ what: 'service', field: 'serviceId', table: 'services' }],
  },
  pushDeliveries: {
    sqlName: 'push_deliveries',
    what: 'push_delivery',
    key: (r) => `${r.hookId}|${r.deliveryId}`,
    keyNames: 'deliveryId',
    tenant: true,
    unique: [],
    foreign: [{ what: 'push_hook', field: 'hookId', table: 'pushHooks' }],
  },
  gitPolls: {
    sqlName: 'git_polls',
    what: 'git_poll',
    key: (r) => `${r.orgId}|${r.serviceId}`,
    keyNames: 'serviceId',
    tenant: true,
    unique: [],
    foreign: [{ what: 'service', field: 'serviceId', table: 'services' }],
  },
  orgs: { sqlName: 'orgs', what: 'org', key: byId, unique: [], foreign: [], tenant: false },
  users: {
    sqlName: 'users',
    what: 'user',
    key: byId,
    tenant: false,
    foreign: [],
    unique: [{ what: 'user', names: 'email', fields: ['email'] }],
  },
  operators: {
    sqlName: 'operators',
    what: 'operator',
    key: (r) => String(r.userId),
    tenant: false,
    unique: [],
    foreign: [{ what: 'user', field: 'userId', table: 'users' }],
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
  invites: {
    sqlName: 'invites',
    what: 'invite',
    key: byId,
    tenant: true,
    unique: [{ what: 'invite', names: 'id', fields: ['tokenHash'] }],
    foreign: [],
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
      // One claim per org and name; across orgs only a verified domain holds a name.
      {
        what: 'domain',
        names: 'hostname',
        fields: ['orgId', 'hostname'],
        normalize: (v) => String(v).toLowerCase(),
      },
      {
        what: 'domain',
        names: 'hostname',
        fields: ['hostname'],
        normalize: (v) => String(v).toLowerCase(),
        where: (row) => (hostnameHoldingStatuses as readonly string[]).includes(String(row.status)),
        error: (existing) => new HostnameTaken(String(existing.hostname)),
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
  webhookDeliveries: {
    sqlName: 'webhook_deliveries',
    what: 'webhook_delivery',
    key: byId,
    tenant: true,
    unique: [],
    foreign: [{ what: 'webhook', field: 'webhookId', table: 'webhooks' }],
  },
  registries: {
    sqlName: 'registries',
    what: 'registry',
    key: byId,
    tenant: true,
    unique: [{ what: 'registry', names: 'server', fields: ['orgId', 'server'] }],
    foreign: [],
  },
  notificationChannels: {
    sqlName: 'notification_channels',
    what: 'notification_channel',
    key: byId,
    tenant: true,
    unique: [],
    foreign: [],
  },
  heldNotifications: {
    sqlName: 'notification_held',
    what: 'held_notification',
    key: byId,
    tenant: true,
    unique: [],
    foreign: [{ what: 'notification_channel', field: 'channelId', table: 'notificationChannels' }],
  },
  notificationDeliveries: {
    sqlName: 'notification_deliveries',
    what: 'notification_delivery',
    key: byId,
    tenant: true,
    unique: [],
    foreign: [{ what: 'notification_channel', field: 'channelId', table: 'notificationChannels' }],
  },
  dataServices: {
    sqlName: 'data_services',
    what: 'data_service',
    key: byId,
    tenant: true,
    unique: [{ what: 'data_service', names: 'name', fields: ['projectId', 'name'] }],
    foreign: [
      { what: 'project', field: 'projectId', table: 'projects' },
      { what: 'node', field: 'nodeId', table: 'nodes' },
      { what: 'data_service', field: 'sharedServerId', table: 'dataServices' },
    ],
  },
  dataServiceLinks: {
    sqlName: 'data_service_links',
    what: 'data_service_link',
    key: byId,
    tenant: true,
    unique: [
      { what: 'data_service_link', names: 'serviceId', fields: ['dataServiceId', 'serviceId'] },
      { what: 'data_service_link', names: 'envName', fields: ['serviceId', 'envName'] },
    ],
    foreign: [
      { what: 'data_service', field: 'dataServiceId', table: 'dataServices' },
      { what: 'service', field: 'serviceId', table: 'services' },
    ],
  },
  jobs: {
    sqlName: 'jobs',
    what: 'job',
    key: byId,
    tenant: true,
    unique: [{ what: 'job', names: 'name', fields: ['serviceId', 'environmentId', 'name'] }],
    foreign: [
      { what: 'service', field: 'serviceId', table: 'services' },
      { what: 'environment', field: 'environmentId', table: 'environments' },
    ],
  },
  jobRuns: {
    sqlName: 'job_runs',
    what: 'job_run',
    key: byId,
    tenant: true,
    unique: [],
    foreign: [{ what: 'job', field: 'jobId', table: 'jobs' }],
  },
  dataServiceBackups: {
    sqlName: 'data_service_backups',
    what: 'data_service_backup',
    key: byId,
    tenant: true,
    unique: [],
    foreign: [{ what: 'data_service', field: 'dataServiceId', table: 'dataServices' }],
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
