import type { ActorType, AuditEvent, Role } from './models.ts';
import type {
  AuthProvider,
  Clock,
  HttpSender,
  IdGenerator,
  KeyHasher,
  KeyVault,
  Logger,
  Mailer,
  MetricsQuery,
  OrgRepos,
  SourceRepository,
  Store,
} from './ports.ts';
import type { EventPublisher } from './webhooks/events.ts';
import type { Limiter } from './rate-limit.ts';
import type { TtlCache } from './ttl-cache.ts';
import type { ApiKey } from './models.ts';
import { CoreError, InvalidInput, NotFound, Unauthenticated } from './errors.ts';

export type SignupMode = 'open' | 'first-user' | 'closed';

/** The ports the account and resource use cases need, injected by a composition root. */
export interface CoreDeps {
  store: Store;
  auth: AuthProvider;
  vault: KeyVault;
  ids: IdGenerator;
  clock: Clock;
  /**
   * Judges a webhook's target when it is created (the sender judges it again at every
   * delivery), and sends a webhook's test event while its owner waits for the answer.
   */
  webhookTargets?: HttpSender;
  /** Git repositories: deploy keys are made with it, and refs resolved before a release is queued. */
  source?: SourceRepository;
  logger: Logger;
  /**
   * Sends invites and e-mail notifications (SMTP self-hosted, SES in the cloud); without one
   * (self-hosted without SMTP_URL) inviting answers 503 and e-mail channels are refused.
   */
  mailer?: Mailer;
  /** Hands audit events that are webhook events (`member.added`, …) to the webhook fan-out. */
  events?: EventPublisher;
  /**
   * Time series for the charts (Prometheus self-hosted, CloudWatch in the cloud); absent
   * where none is configured, and the pages then say what to install.
   */
  metricsQuery?: MetricsQuery;
  /** The shared secret Alertmanager presents to the alert receiver; the receiver answers 503 without. */
  alertReceiverToken?: string;
  /**
   * Failed logins are counted per account *and* source, so a stranger's guesses never lock
   * the owner out from elsewhere, plus per source; signups per source.
   */
  loginLimits: { perAccountSource: Limiter; perIp: Limiter };
  signupLimits: { perIp: Limiter };
  /**
   * Invites per org: each one is a mail this platform sends to an address of the caller's
   * choosing, so an org cannot turn it into a spam cannon. Unlimited when absent.
   */
  inviteLimits?: { perOrg: Limiter };
  /**
   * Push deliveries a hook takes per minute: its route needs no credentials, so a leaked
   * URL must not become a build cannon. Unlimited when absent.
   */
  pushHookLimits?: { perHook: Limiter };
  /**
   * Whether a session id was revoked by logout, remembered briefly per process: asked on
   * every request, so a hit saves a round trip. Logout clears its own process's entry.
   */
  revokedSessions?: TtlCache<boolean>;
  /**
   * Valid API keys by hash, for a few seconds: CI pipelines call in bursts, and each saved
   * lookup is a database round trip. Revoking clears this process's entry at once; other
   * processes (Lambda instances) stop accepting the key when their entry expires.
   */
  apiKeyCache?: TtlCache<ApiKey>;
  /** How API keys are hashed (stored, looked up); the pure SHA-256 in core/hash.ts when absent. */
  keyHasher?: KeyHasher;
  config: {
    signupMode: SignupMode;
    edgeDomain: string;
    /** Self-hosted installs notify services on their own network; a SaaS must not (SSRF). Default: no. */
    allowPrivateWebhooks?: boolean;
    /**
     * Tests only: their receivers listen on loopback. Set by a composition root's test
     * override, never by configuration a user could set. Default: no.
     */
    allowLoopbackWebhooks?: boolean;
    /** Self-hosted installs build from git servers on their own network; a SaaS must not (SSRF). Default: no. */
    allowPrivateGitHosts?: boolean;
    /** Tests only (a composition root's test override): git servers on loopback literals. Default: no. */
    allowLoopbackGitHosts?: boolean;
    /**
     * Where people reach the dashboard (`https://deploy.example.com`), for links in emails
     * (invites; without it no link can be made and inviting answers 503) and in
     * notifications (paths without it).
     */
    publicUrl?: string;
    /**
     * Operators named by configuration (lowercase emails) besides those the store records
     * (a self-hosted install's first account). Default: none.
     */
    operatorEmails?: readonly string[];
    /**
     * Whether a tenant's node may be in a private range: a self-hosted team's own network,
     * never a SaaS's (the VPC) nor an install open to anyone. Default: no.
     */
    tenantPrivateNodes?: boolean;
  };
}

/** Who is calling: a user with a session, or an API key. */
export interface Principal {
  actorType: Extract<ActorType, 'user' | 'api_key'>;
  actorId: string;
  userId: string | null;
  /** Null for a user in no org yet, or in several without X-Org-Id. */
  orgId: string | null;
  role: Role | null;
  /** The orgs a user could pick with X-Org-Id, when the pick is ambiguous. */
  orgChoices?: string[];
  /** A user's session token id and expiry, for logout. */
  sessionId?: string;
  sessionExpiresAt?: string;
}

export interface OrgPrincipal extends Principal {
  orgId: string;
  role: Role;
}

/** Request-scoped facts the audit trail keeps. */
export interface RequestContext {
  requestId: string | null;
  ip: string | null;
}

export function requireOrg(p: Principal): OrgPrincipal {
  if ((!p.orgId || !p.role) && p.orgChoices?.length) {
    throw new CoreError(
      'invalid',
      'org_required',
      'you belong to several orgs: pick one with the X-Org-Id header',
      {
        field: 'X-Org-Id',
        orgIds: p.orgChoices,
      },
    );
  }
  if (!p.orgId || !p.role) {
    throw new InvalidInput('this account belongs to no org yet: create one with POST /api/orgs', {
      field: 'X-Org-Id',
    });
  }
  return p as OrgPrincipal;
}

/** The org in the path must be the caller's org; any other is "not found", never "forbidden". */
export function requireSameOrg(principal: Principal, orgId: string): OrgPrincipal {
  const p = requireOrg(principal);
  if (p.orgId !== orgId) throw new NotFound('org', orgId);
  return p;
}

export function requireUser(p: Principal): string {
  if (!p.userId) throw new Unauthenticated('this call needs a user session, not an API key');
  return p.userId;
}

/**
 * Builds the audit row for a change made inside `repos`' transaction, so both commit
 * together; one that is a webhook event is handed to the fan-out too, which delivers it
 * only once the row has committed.
 */
export async function recordAudit(
  deps: Pick<CoreDeps, 'ids' | 'clock' | 'events'>,
  repos: OrgRepos,
  actor: Pick<Principal, 'actorType' | 'actorId'> | { actorType: 'system'; actorId: string },
  ctx: RequestContext | null,
  event: Pick<AuditEvent, 'action' | 'targetType' | 'targetId'> & {
    data?: Record<string, unknown>;
  },
): Promise<void> {
  const row: AuditEvent = {
    id: deps.ids.newId('aud'),
    orgId: repos.orgId,
    actorType: actor.actorType,
    actorId: actor.actorId,
    action: event.action,
    targetType: event.targetType,
    targetId: event.targetId,
    data: event.data ?? {},
    requestId: ctx?.requestId ?? null,
    createdAt: deps.clock.now().toISOString(),
  };
  await repos.audit.append(row);
  await deps.events?.publish(row);
}
