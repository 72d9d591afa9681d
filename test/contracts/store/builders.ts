/** Test data for the Store contract: small builders, one tenant's seed, and an error matcher. */
import { expect } from 'vitest';
import { RandomIds } from '../../../adapters/ids/random.ts';
import { CoreError } from '../../../core/errors.ts';
import type {
  ApiKeyWithHash,
  AuditEvent,
  DeployJob,
  Domain,
  Environment,
  InviteWithHash,
  NodeRecord,
  Org,
  Project,
  Release,
  ReleaseStep,
  SecretRecord,
  Service,
  UserWithPassword,
  Webhook,
  WebhookDelivery,
  DataService,
  DataServiceLink,
  DataServiceMove,
  Job,
  JobRun,
  DataServiceBackup,
} from '../../../core/models.ts';
import type { Store } from '../../../core/ports.ts';

// ---------------------------------------------------------------- builders

export const ids = new RandomIds();
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
export const anInvite = (orgId: string, o: Partial<InviteWithHash> = {}): InviteWithHash => ({
  id: ids.newId('inv'),
  orgId,
  email: `${ids
    .newSecret(6)
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x')}@example.test`,
  role: 'deployer',
  tokenHash: ids.newSecret(32),
  invitedBy: 'usr_inviter',
  createdAt: at(),
  expiresAt: at(7 * 24 * 3600),
  acceptedAt: null,
  acceptedBy: null,
  revokedAt: null,
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
  kind: 'web',
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
  workerHealth: null,
  warmSeconds: 300,
  drainSeconds: 30,
  sticky: false,
  git: null,
  gitCredentialKind: null,
  gitPublicKey: null,
  sealedGitCredential: null,
  sealedBuildSecrets: {},
  placement: null,
  loadBalancing: null,
  maxSurge: null,
  createdAt: at(),
  ...o,
});
export const aNode = (orgId: string, o: Partial<NodeRecord> = {}): NodeRecord => ({
  id: ids.newId('nod'),
  orgId,
  name: `node-${ids.newSecret(4)}`,
  kind: 'engine',
  dockerHost: 'unix:///var/run/docker.sock',
  address: '127.0.0.1',
  labels: {},
  drainMode: false,
  createdAt: at(),
  sealedTls: null,
  sealedSsh: null,
  credentialsUpdatedAt: null,
  // The local engine, so the operator's.
  operatorRegistered: true,
  reachability: 'unknown',
  reachabilitySince: null,
  lastSeenAt: null,
  missedChecks: 0,
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
  gitRef: null,
  status: 'queued',
  previousReleaseId: null,
  nodeId: null,
  containerId: null,
  upstream: null,
  replicaSet: null,
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
  certNotAfter: null,
  certIssuer: null,
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
export const aWebhookDelivery = (
  orgId: string,
  webhookId: string,
  o: Partial<WebhookDelivery> = {},
): WebhookDelivery => ({
  id: ids.newId('dlv'),
  orgId,
  webhookId,
  eventId: ids.newId('aud'),
  eventType: 'release.completed',
  attempt: 1,
  delivered: true,
  responseStatus: 204,
  error: null,
  createdAt: at(),
  ...o,
});
/** A move to a dedicated server, `moving` at its first step unless said otherwise. */
export const aDataServiceMove = (o: Partial<DataServiceMove> = {}): DataServiceMove => ({
  status: 'moving',
  targetId: null,
  backupId: null,
  step: 'backup',
  error: null,
  releaseIds: [],
  at: '2020-01-01T00:00:00.000Z',
  ...o,
});

export const aDataService = (
  orgId: string,
  projectId: string,
  nodeId: string,
  o: Partial<DataService> = {},
): DataService => ({
  id: ids.newId('dat'),
  orgId,
  projectId,
  name: `cache-${ids
    .newSecret(3)
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x')}`,
  engine: 'redis',
  version: '7',
  nodeId,
  status: 'provisioning',
  error: null,
  settings: { maxmemoryMb: 256, evictionPolicy: 'noeviction', persistence: 'rdb' },
  sealedPassword: 'v1.sealed',
  removeVolume: false,
  backupSchedule: '0 3 * * *',
  backupRetention: null,
  drillSchedule: 'every_backup',
  pendingSealedPassword: null,
  passwordRotatedAt: null,
  shareable: false,
  sharedServerId: null,
  move: null,
  upgrade: null,
  createdAt: at(),
  updatedAt: at(),
  ...o,
});
export const aDataServiceLink = (
  orgId: string,
  dataServiceId: string,
  serviceId: string,
  o: Partial<DataServiceLink> = {},
): DataServiceLink => ({
  id: ids.newId('dsl'),
  orgId,
  dataServiceId,
  serviceId,
  envName: 'REDIS_URL',
  createdAt: at(),
  ...o,
});
export const aJob = (
  orgId: string,
  serviceId: string,
  environmentId: string,
  o: Partial<Job> = {},
): Job => ({
  id: ids.newId('job'),
  orgId,
  serviceId,
  environmentId,
  name: `report-${ids
    .newSecret(3)
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x')}`,
  schedule: '30 2 * * *',
  timeZone: 'Europe/Berlin',
  command: 'node report.js',
  overlap: 'skip',
  timeoutSeconds: 300,
  retries: 2,
  createdAt: at(),
  updatedAt: at(),
  ...o,
});
export const aJobRun = (orgId: string, jobId: string, o: Partial<JobRun> = {}): JobRun => ({
  id: ids.newId('jrn'),
  orgId,
  jobId,
  trigger: 'schedule',
  attempt: 1,
  exclusive: true,
  status: 'running',
  exitCode: null,
  releaseId: null,
  startedAt: at(),
  finishedAt: null,
  durationMs: null,
  logTail: '',
  error: null,
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
export async function rejectsWith(p: Promise<unknown>, code: string): Promise<CoreError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e, `expected an error with code ${code}`).toBeInstanceOf(CoreError);
  expect((e as CoreError).code).toBe(code);
  return e as CoreError;
}

export const aDataServiceBackup = (
  orgId: string,
  dataServiceId: string,
  o: Partial<DataServiceBackup> = {},
): DataServiceBackup => {
  const id = ids.newId('bak');
  return {
    id,
    orgId,
    dataServiceId,
    trigger: 'manual',
    status: 'running',
    error: null,
    objectKey: `backups/${orgId}/${dataServiceId}/${id}/dump.gz.enc`,
    manifestKey: `backups/${orgId}/${dataServiceId}/${id}/manifest.json`,
    sealedDataKey: 'v1.sealed',
    rawBytes: null,
    storedBytes: null,
    sha256: null,
    manifest: null,
    startedAt: at(),
    finishedAt: null,
    drillStatus: null,
    drillError: null,
    drillRtoMs: null,
    drillRpoMs: null,
    drilledAt: null,
    ...o,
  };
};
