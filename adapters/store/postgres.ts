/**
 * The Store on PostgreSQL. Each withOrg call's `app.org_id` setting confines every
 * statement to one org through row-level security (migrations/0001). One file per
 * aggregate under postgres/ holds its table and repository; SQL is built by the pure
 * functions in postgres/sql.ts.
 */
import { pgBuildSlots } from './postgres/build-slots.ts';
import type {
  AuthGuardRepo,
  DomainLookup,
  ControlBackupRepo,
  EdgeRebuildLog,
  IdentityRepo,
  InviteLookup,
  PushHookLookup,
  GitPollLookup,
  AlertTargetLookup,
  OrgRepos,
  NodeLookup,
  ReleaseLookup,
  BackupLookup,
  BuildSlots,
  Store,
} from '../../core/ports.ts';
import { fromDatabaseUrl, type Database, type PoolOptions } from '../db/postgres.ts';
import { pgApiKeyRepo } from './postgres/api-keys.ts';
import { pgAuditRepo } from './postgres/audit.ts';
import { pgAuthGuardRepo } from './postgres/auth-guards.ts';
import {
  pgBackupLookup,
  pgDataServiceBackupRepo,
  pgDataServiceLinkRepo,
  pgDataServiceRepo,
} from './postgres/data-services.ts';
import { pgJobRepo, pgJobRunRepo } from './postgres/jobs.ts';
import { pgDeployJobRepo } from './postgres/deploy-jobs.ts';
import { pgDomainLookup, pgDomainRepo } from './postgres/domains.ts';
import { pgEnvironmentRepo } from './postgres/environments.ts';
import { pgIdentityRepo } from './postgres/identity.ts';
import { pgInviteLookup, pgInviteRepo } from './postgres/invites.ts';
import { pgPushHookLookup, pgPushHookRepo } from './postgres/push-hooks.ts';
import { pgGitPollLookup, pgGitPollRepo } from './postgres/git-polls.ts';
import { pgAlertTargetLookup, pgAlertThresholdRepo } from './postgres/alert-thresholds.ts';
import { pgNodeLookup, pgNodeRepo } from './postgres/nodes.ts';
import { pgMembershipRepo, pgOrgRepo } from './postgres/orgs.ts';
import { pgProjectRepo } from './postgres/projects.ts';
import {
  pgReleaseLogRepo,
  pgReleaseLookup,
  pgReleaseRepo,
  pgReleaseStepRepo,
} from './postgres/releases.ts';
import { pgSecretRepo } from './postgres/secrets.ts';
import { pgServiceRepo } from './postgres/services.ts';
import { TenantSql } from './postgres/tenant.ts';
import { pgWebhookDeliveryRepo } from './postgres/webhook-deliveries.ts';
import { pgWebhookRepo } from './postgres/webhooks.ts';
import { pgEdgeRebuildLog } from './postgres/edge-rebuilds.ts';
import { pgControlBackupRepo } from './postgres/control-backups.ts';
import { pgRegistryRepo } from './postgres/registries.ts';
import {
  pgHeldNotificationRepo,
  pgNotificationChannelRepo,
  pgNotificationDeliveryRepo,
} from './postgres/notification-channels.ts';

/**
 * One org's repositories over one transaction, each built on first use: a request touches
 * one or two of them, and building all of them (an object of closures each) on every
 * `withOrg` was a measurable share of an authenticated read. Each has a setter, so a test
 * can wrap the set with `Object.create(repos)` and replace one repository.
 */
class PgOrgRepos implements OrgRepos {
  readonly orgId: string;
  private readonly t: TenantSql;
  private _orgs: OrgRepos['orgs'] | undefined = undefined;
  private _memberships: OrgRepos['memberships'] | undefined = undefined;
  private _invites: OrgRepos['invites'] | undefined = undefined;
  private _apiKeys: OrgRepos['apiKeys'] | undefined = undefined;
  private _projects: OrgRepos['projects'] | undefined = undefined;
  private _environments: OrgRepos['environments'] | undefined = undefined;
  private _services: OrgRepos['services'] | undefined = undefined;
  private _nodes: OrgRepos['nodes'] | undefined = undefined;
  private _releases: OrgRepos['releases'] | undefined = undefined;
  private _releaseSteps: OrgRepos['releaseSteps'] | undefined = undefined;
  private _releaseLogs: OrgRepos['releaseLogs'] | undefined = undefined;
  private _deployJobs: OrgRepos['deployJobs'] | undefined = undefined;
  private _secrets: OrgRepos['secrets'] | undefined = undefined;
  private _domains: OrgRepos['domains'] | undefined = undefined;
  private _webhooks: OrgRepos['webhooks'] | undefined = undefined;
  private _webhookDeliveries: OrgRepos['webhookDeliveries'] | undefined = undefined;
  private _pushHooks: OrgRepos['pushHooks'] | undefined = undefined;
  private _gitPolls: OrgRepos['gitPolls'] | undefined = undefined;
  private _notificationChannels: OrgRepos['notificationChannels'] | undefined = undefined;
  private _heldNotifications: OrgRepos['heldNotifications'] | undefined = undefined;
  private _notificationDeliveries: OrgRepos['notificationDeliveries'] | undefined = undefined;
  private _dataServices: OrgRepos['dataServices'] | undefined = undefined;
  private _dataServiceLinks: OrgRepos['dataServiceLinks'] | undefined = undefined;
  private _registries: OrgRepos['registries'] | undefined = undefined;
  private _jobs: OrgRepos['jobs'] | undefined = undefined;
  private _jobRuns: OrgRepos['jobRuns'] | undefined = undefined;
  private _alertThresholds: OrgRepos['alertThresholds'] | undefined = undefined;
  private _dataServiceBackups: OrgRepos['dataServiceBackups'] | undefined = undefined;
  private _audit: OrgRepos['audit'] | undefined = undefined;

  constructor(t: TenantSql) {
    this.t = t;
    this.orgId = t.orgId;
  }

  get orgs(): OrgRepos['orgs'] {
    return (this._orgs ??= pgOrgRepo(this.t));
  }
  set orgs(repo: OrgRepos['orgs']) {
    this._orgs = repo;
  }
  get memberships(): OrgRepos['memberships'] {
    return (this._memberships ??= pgMembershipRepo(this.t));
  }
  set memberships(repo: OrgRepos['memberships']) {
    this._memberships = repo;
  }
  get invites(): OrgRepos['invites'] {
    return (this._invites ??= pgInviteRepo(this.t));
  }
  set invites(repo: OrgRepos['invites']) {
    this._invites = repo;
  }
  get apiKeys(): OrgRepos['apiKeys'] {
    return (this._apiKeys ??= pgApiKeyRepo(this.t));
  }
  set apiKeys(repo: OrgRepos['apiKeys']) {
    this._apiKeys = repo;
  }
  get projects(): OrgRepos['projects'] {
    return (this._projects ??= pgProjectRepo(this.t));
  }
  set projects(repo: OrgRepos['projects']) {
    this._projects = repo;
  }
  get environments(): OrgRepos['environments'] {
    return (this._environments ??= pgEnvironmentRepo(this.t));
  }
  set environments(repo: OrgRepos['environments']) {
    this._environments = repo;
  }
  get services(): OrgRepos['services'] {
    return (this._services ??= pgServiceRepo(this.t));
  }
  set services(repo: OrgRepos['services']) {
    this._services = repo;
  }
  get nodes(): OrgRepos['nodes'] {
    return (this._nodes ??= pgNodeRepo(this.t));
  }
  set nodes(repo: OrgRepos['nodes']) {
    this._nodes = repo;
  }
  get releases(): OrgRepos['releases'] {
    return (this._releases ??= pgReleaseRepo(this.t));
  }
  set releases(repo: OrgRepos['releases']) {
    this._releases = repo;
  }
  get releaseSteps(): OrgRepos['releaseSteps'] {
    return (this._releaseSteps ??= pgReleaseStepRepo(this.t));
  }
  set releaseSteps(repo: OrgRepos['releaseSteps']) {
    this._releaseSteps = repo;
  }
  get releaseLogs(): OrgRepos['releaseLogs'] {
    return (this._releaseLogs ??= pgReleaseLogRepo(this.t));
  }
  set releaseLogs(repo: OrgRepos['releaseLogs']) {
    this._releaseLogs = repo;
  }
  get deployJobs(): OrgRepos['deployJobs'] {
    return (this._deployJobs ??= pgDeployJobRepo(this.t));
  }
  set deployJobs(repo: OrgRepos['deployJobs']) {
    this._deployJobs = repo;
  }
  get secrets(): OrgRepos['secrets'] {
    return (this._secrets ??= pgSecretRepo(this.t));
  }
  set secrets(repo: OrgRepos['secrets']) {
    this._secrets = repo;
  }
  get domains(): OrgRepos['domains'] {
    return (this._domains ??= pgDomainRepo(this.t));
  }
  set domains(repo: OrgRepos['domains']) {
    this._domains = repo;
  }
  get webhooks(): OrgRepos['webhooks'] {
    return (this._webhooks ??= pgWebhookRepo(this.t));
  }
  set webhooks(repo: OrgRepos['webhooks']) {
    this._webhooks = repo;
  }
  get webhookDeliveries(): OrgRepos['webhookDeliveries'] {
    return (this._webhookDeliveries ??= pgWebhookDeliveryRepo(this.t));
  }
  set webhookDeliveries(repo: OrgRepos['webhookDeliveries']) {
    this._webhookDeliveries = repo;
  }
  get registries(): OrgRepos['registries'] {
    return (this._registries ??= pgRegistryRepo(this.t));
  }
  set registries(repo: OrgRepos['registries']) {
    this._registries = repo;
  }
  get notificationChannels(): OrgRepos['notificationChannels'] {
    return (this._notificationChannels ??= pgNotificationChannelRepo(this.t));
  }
  set notificationChannels(repo: OrgRepos['notificationChannels']) {
    this._notificationChannels = repo;
  }
  get heldNotifications(): OrgRepos['heldNotifications'] {
    return (this._heldNotifications ??= pgHeldNotificationRepo(this.t));
  }
  set heldNotifications(repo: OrgRepos['heldNotifications']) {
    this._heldNotifications = repo;
  }
  get notificationDeliveries(): OrgRepos['notificationDeliveries'] {
    return (this._notificationDeliveries ??= pgNotificationDeliveryRepo(this.t));
  }
  set notificationDeliveries(repo: OrgRepos['notificationDeliveries']) {
    this._notificationDeliveries = repo;
  }
  get pushHooks(): OrgRepos['pushHooks'] {
    return (this._pushHooks ??= pgPushHookRepo(this.t));
  }
  set pushHooks(repo: OrgRepos['pushHooks']) {
    this._pushHooks = repo;
  }
  get gitPolls(): OrgRepos['gitPolls'] {
    return (this._gitPolls ??= pgGitPollRepo(this.t));
  }
  set gitPolls(repo: OrgRepos['gitPolls']) {
    this._gitPolls = repo;
  }
  get dataServices(): OrgRepos['dataServices'] {
    return (this._dataServices ??= pgDataServiceRepo(this.t));
  }
  set dataServices(repo: OrgRepos['dataServices']) {
    this._dataServices = repo;
  }
  get dataServiceLinks(): OrgRepos['dataServiceLinks'] {
    return (this._dataServiceLinks ??= pgDataServiceLinkRepo(this.t));
  }
  set dataServiceLinks(repo: OrgRepos['dataServiceLinks']) {
    this._dataServiceLinks = repo;
  }
  get jobs(): OrgRepos['jobs'] {
    return (this._jobs ??= pgJobRepo(this.t));
  }
  set jobs(repo: OrgRepos['jobs']) {
    this._jobs = repo;
  }
  get jobRuns(): OrgRepos['jobRuns'] {
    return (this._jobRuns ??= pgJobRunRepo(this.t));
  }
  set jobRuns(repo: OrgRepos['jobRuns']) {
    this._jobRuns = repo;
  }
  get alertThresholds(): OrgRepos['alertThresholds'] {
    return (this._alertThresholds ??= pgAlertThresholdRepo(this.t));
  }
  set alertThresholds(repo: OrgRepos['alertThresholds']) {
    this._alertThresholds = repo;
  }
  get dataServiceBackups(): OrgRepos['dataServiceBackups'] {
    return (this._dataServiceBackups ??= pgDataServiceBackupRepo(this.t));
  }
  set dataServiceBackups(repo: OrgRepos['dataServiceBackups']) {
    this._dataServiceBackups = repo;
  }
  get audit(): OrgRepos['audit'] {
    return (this._audit ??= pgAuditRepo(this.t));
  }
  set audit(repo: OrgRepos['audit']) {
    this._audit = repo;
  }
}

/** One org's repositories over one transaction. */
export function pgOrgRepos(t: TenantSql): OrgRepos {
  return new PgOrgRepos(t);
}

/**
 * The PostgreSQL Store. Give it a Database made by fromDatabaseUrl (which connects as
 * selfdevop_app), or let `PostgresStore.fromUrl` make and own one.
 */
export class PostgresStore implements Store {
  readonly identity: IdentityRepo;
  readonly domainLookup: DomainLookup;
  readonly authGuards: AuthGuardRepo;
  readonly releaseLookup: ReleaseLookup;
  readonly backupLookup: BackupLookup;
  readonly buildSlots: BuildSlots;
  readonly nodeLookup: NodeLookup;
  readonly edgeRebuilds: EdgeRebuildLog;
  readonly controlBackups: ControlBackupRepo;
  readonly inviteLookup: InviteLookup;
  readonly pushHookLookup: PushHookLookup;
  readonly gitPollLookup: GitPollLookup;
  readonly alertTargetLookup: AlertTargetLookup;
  private readonly db: Database;
  private readonly ownsDb: boolean;

  constructor(db: Database, options: { ownsDb?: boolean } = {}) {
    this.db = db;
    this.ownsDb = options.ownsDb ?? false;
    this.identity = pgIdentityRepo(db);
    this.domainLookup = pgDomainLookup(db);
    this.authGuards = pgAuthGuardRepo(db);
    this.nodeLookup = pgNodeLookup(db);
    this.releaseLookup = pgReleaseLookup(db);
    this.backupLookup = pgBackupLookup(db);
    this.buildSlots = pgBuildSlots(db);
    this.edgeRebuilds = pgEdgeRebuildLog(db);
    this.controlBackups = pgControlBackupRepo(db);
    this.inviteLookup = pgInviteLookup(db);
    this.pushHookLookup = pgPushHookLookup(db);
    this.gitPollLookup = pgGitPollLookup(db);
    this.alertTargetLookup = pgAlertTargetLookup(db);
  }

  static fromUrl(url: string, options: PoolOptions = {}): PostgresStore {
    return new PostgresStore(fromDatabaseUrl(url, options), { ownsDb: true });
  }

  withOrg<T>(orgId: string, fn: (repos: OrgRepos) => Promise<T>): Promise<T> {
    // Local to the transaction: the pooled connection forgets it at COMMIT/ROLLBACK. The
    // repositories' SELECTs are side-effect free, so a read before any write is one round trip.
    return this.db.transaction((tx) => fn(pgOrgRepos(new TenantSql(tx, orgId))), {
      settings: { 'app.org_id': orgId },
      readsAlone: true,
    });
  }

  async ping(): Promise<void> {
    await this.db.query('select 1');
  }

  async close(): Promise<void> {
    if (this.ownsDb) await this.db.close();
  }
}
