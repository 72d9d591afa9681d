/**
 * The Store in memory, for fast tests. It keeps the PostgreSQL store's semantics, which the
 * shared contract suite checks: the same unique and foreign-key rules (mirroring
 * migrations/0001), the in-flight release rule, compare-and-set transitions, keyset
 * pagination, org confinement, and rollback on throw.
 *
 * withOrg calls are serialised (one transaction at a time, like SERIALIZABLE) and each
 * writes to its own overlay, applied only when fn resolves. A withOrg started inside
 * another one (same async context) runs at once, as PostgreSQL would on another connection.
 *
 * One file per aggregate under memory/ holds its repository; memory/tables.ts the rules.
 */
import { memoryBuildSlots } from './memory/build-slots.ts';
import { AsyncLocalStorage } from 'node:async_hooks';
import type {
  ControlBackupRepo,
  AuthGuardRepo,
  DomainLookup,
  EdgeRebuild,
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
import { memoryApiKeyRepo } from './memory/api-keys.ts';
import { memoryAuditRepo } from './memory/audit.ts';
import { memoryControlBackupRepo } from './memory/control-backups.ts';
import { memoryAuthGuardRepo } from './memory/auth-guards.ts';
import { memoryDeployJobRepo } from './memory/deploy-jobs.ts';
import { memoryDomainLookup, memoryDomainRepo } from './memory/domains.ts';
import { memoryEnvironmentRepo } from './memory/environments.ts';
import { memoryIdentityRepo } from './memory/identity.ts';
import { memoryInviteLookup, memoryInviteRepo } from './memory/invites.ts';
import { memoryPushHookLookup, memoryPushHookRepo } from './memory/push-hooks.ts';
import { memoryGitPollLookup, memoryGitPollRepo } from './memory/git-polls.ts';
import { memoryAlertTargetLookup, memoryAlertThresholdRepo } from './memory/alert-thresholds.ts';
import { memoryNodeLookup, memoryNodeRepo } from './memory/nodes.ts';
import { memoryMembershipRepo, memoryOrgRepo } from './memory/orgs.ts';
import { Overlay } from './memory/overlay.ts';
import { memoryProjectRepo } from './memory/projects.ts';
import {
  memoryReleaseLookup,
  memoryReleaseLogRepo,
  memoryReleaseRepo,
  memoryReleaseStepRepo,
} from './memory/releases.ts';
import { memorySecretRepo } from './memory/secrets.ts';
import { memoryServiceRepo } from './memory/services.ts';
import { emptyTables, type Tables } from './memory/tables.ts';
import { TenantView } from './memory/tenant.ts';
import {
  memoryBackupLookup,
  memoryDataServiceBackupRepo,
  memoryDataServiceLinkRepo,
  memoryDataServiceRepo,
} from './memory/data-services.ts';
import { memoryJobRepo, memoryJobRunRepo } from './memory/jobs.ts';
import { memoryWebhookDeliveryRepo } from './memory/webhook-deliveries.ts';
import { memoryWebhookRepo } from './memory/webhooks.ts';

/** One record for the install, as the SQL table's single row. */
const memoryEdgeRebuildLog = (): EdgeRebuildLog => {
  let last: EdgeRebuild | null = null;
  return {
    record: async (r) => void (last = { ...r }),
    last: async () => (last ? { ...last } : null),
  };
};
import { memoryRegistryRepo } from './memory/registries.ts';
import {
  memoryHeldNotificationRepo,
  memoryNotificationChannelRepo,
  memoryNotificationDeliveryRepo,
} from './memory/notification-channels.ts';

/** One org's repositories over one transaction's view. */
export function memoryOrgRepos(t: TenantView): OrgRepos {
  return {
    orgId: t.orgId,
    orgs: memoryOrgRepo(t),
    memberships: memoryMembershipRepo(t),
    invites: memoryInviteRepo(t),
    apiKeys: memoryApiKeyRepo(t),
    projects: memoryProjectRepo(t),
    environments: memoryEnvironmentRepo(t),
    services: memoryServiceRepo(t),
    nodes: memoryNodeRepo(t),
    releases: memoryReleaseRepo(t),
    releaseSteps: memoryReleaseStepRepo(t),
    releaseLogs: memoryReleaseLogRepo(t),
    deployJobs: memoryDeployJobRepo(t),
    secrets: memorySecretRepo(t),
    domains: memoryDomainRepo(t),
    webhooks: memoryWebhookRepo(t),
    webhookDeliveries: memoryWebhookDeliveryRepo(t),
    notificationChannels: memoryNotificationChannelRepo(t),
    heldNotifications: memoryHeldNotificationRepo(t),
    notificationDeliveries: memoryNotificationDeliveryRepo(t),
    pushHooks: memoryPushHookRepo(t),
    gitPolls: memoryGitPollRepo(t),
    dataServices: memoryDataServiceRepo(t),
    dataServiceLinks: memoryDataServiceLinkRepo(t),
    registries: memoryRegistryRepo(t),
    jobs: memoryJobRepo(t),
    jobRuns: memoryJobRunRepo(t),
    alertThresholds: memoryAlertThresholdRepo(t),
    dataServiceBackups: memoryDataServiceBackupRepo(t),
    audit: memoryAuditRepo(t),
  };
}

/** The in-memory Store: same contract as PostgresStore, nothing to start. */
export class MemoryStore implements Store {
  readonly identity: IdentityRepo;
  readonly domainLookup: DomainLookup;
  readonly authGuards: AuthGuardRepo = memoryAuthGuardRepo();
  readonly releaseLookup: ReleaseLookup;
  readonly backupLookup: BackupLookup;
  readonly buildSlots: BuildSlots;
  readonly nodeLookup: NodeLookup;
  readonly edgeRebuilds: EdgeRebuildLog = memoryEdgeRebuildLog();
  readonly controlBackups: ControlBackupRepo = memoryControlBackupRepo();
  readonly inviteLookup: InviteLookup;
  readonly pushHookLookup: PushHookLookup;
  readonly gitPollLookup: GitPollLookup;
  readonly alertTargetLookup: AlertTargetLookup;
  private readonly tables: Tables = emptyTables();
  private readonly inTransaction = new AsyncLocalStorage<true>();
  private tail: Promise<void> = Promise.resolve();
  private closed = false;

  constructor() {
    this.identity = memoryIdentityRepo(this.tables);
    this.domainLookup = memoryDomainLookup(this.tables);
    this.nodeLookup = memoryNodeLookup(this.tables);
    this.releaseLookup = memoryReleaseLookup(this.tables);
    this.backupLookup = memoryBackupLookup(this.tables);
    this.buildSlots = memoryBuildSlots(this.tables);
    this.inviteLookup = memoryInviteLookup(this.tables);
    this.pushHookLookup = memoryPushHookLookup(this.tables);
    this.gitPollLookup = memoryGitPollLookup(this.tables);
    this.alertTargetLookup = memoryAlertTargetLookup(this.tables);
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
    const result = await fn(memoryOrgRepos(new TenantView(view, orgId)));
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
