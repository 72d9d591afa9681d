/**
 * The Store on PostgreSQL. Each withOrg call's `app.org_id` setting confines every
 * statement to one org through row-level security (migrations/0001). One file per
 * aggregate under postgres/ holds its table and repository; SQL is built by the pure
 * functions in postgres/sql.ts.
 */
import type {
  AuthGuardRepo,
  DomainLookup,
  IdentityRepo,
  InviteLookup,
  PushHookLookup,
  OrgRepos,
  ReleaseLookup,
  Store,
} from '../../core/ports.ts';
import { fromDatabaseUrl, type Database, type PoolOptions } from '../db/postgres.ts';
import { pgApiKeyRepo } from './postgres/api-keys.ts';
import { pgAuditRepo } from './postgres/audit.ts';
import { pgAuthGuardRepo } from './postgres/auth-guards.ts';
import { pgDeployJobRepo } from './postgres/deploy-jobs.ts';
import { pgDomainLookup, pgDomainRepo } from './postgres/domains.ts';
import { pgEnvironmentRepo } from './postgres/environments.ts';
import { pgIdentityRepo } from './postgres/identity.ts';
import { pgInviteLookup, pgInviteRepo } from './postgres/invites.ts';
import { pgPushHookLookup, pgPushHookRepo } from './postgres/push-hooks.ts';
import { pgNodeRepo } from './postgres/nodes.ts';
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

/** One org's repositories over one transaction. */
export function pgOrgRepos(t: TenantSql): OrgRepos {
  return {
    orgId: t.orgId,
    orgs: pgOrgRepo(t),
    memberships: pgMembershipRepo(t),
    invites: pgInviteRepo(t),
    apiKeys: pgApiKeyRepo(t),
    projects: pgProjectRepo(t),
    environments: pgEnvironmentRepo(t),
    services: pgServiceRepo(t),
    nodes: pgNodeRepo(t),
    releases: pgReleaseRepo(t),
    releaseSteps: pgReleaseStepRepo(t),
    releaseLogs: pgReleaseLogRepo(t),
    deployJobs: pgDeployJobRepo(t),
    secrets: pgSecretRepo(t),
    domains: pgDomainRepo(t),
    webhooks: pgWebhookRepo(t),
    webhookDeliveries: pgWebhookDeliveryRepo(t),
    pushHooks: pgPushHookRepo(t),
    audit: pgAuditRepo(t),
  };
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
  readonly inviteLookup: InviteLookup;
  readonly pushHookLookup: PushHookLookup;
  private readonly db: Database;
  private readonly ownsDb: boolean;

  constructor(db: Database, options: { ownsDb?: boolean } = {}) {
    this.db = db;
    this.ownsDb = options.ownsDb ?? false;
    this.identity = pgIdentityRepo(db);
    this.domainLookup = pgDomainLookup(db);
    this.authGuards = pgAuthGuardRepo(db);
    this.releaseLookup = pgReleaseLookup(db);
    this.inviteLookup = pgInviteLookup(db);
    this.pushHookLookup = pgPushHookLookup(db);
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
