/**
 * Polling the followed branch, for git hosts that cannot send push webhooks: the `git-poll`
 * job asks each due service's repository for its branch head (`git ls-remote`) and, when
 * the head moved since the last commit seen or deployed, deploys it exactly as a push does
 * (the same wanted-commit slot, so polls and pushes coalesce and the latest wins).
 */
import type { Release, Service } from '../models.ts';
import { finishedReleaseStatuses, releaseStatuses } from '../models.ts';
import type { ReleaseDeps } from '../releases/deps.ts';
import { startWantedPush } from '../releases/coalesce.ts';
import { openGitRemote, pinLearnedHostKeys } from './credentials.ts';

export const gitPollSchedule = 'git-poll';
/** Every minute: the shortest interval a service may ask for (`minPollIntervalSeconds`). */
export const gitPollCron = '* * * * *';

/** At most this many services polled per run, this many at once. */
const perRun = 100;
const atOnce = 4;

/** What one poll did. */
export type PollOutcome =
  | { serviceId: string; status: 'unchanged' | 'seen'; sha: string }
  | { serviceId: string; status: 'deploying'; sha: string; releaseId: string }
  | { serviceId: string; status: 'queued'; sha: string }
  | { serviceId: string; status: 'failed'; error: string }
  | { serviceId: string; status: 'skipped' };

/**
 * The newest release of the service's production environment (where pushes deploy), any
 * status; null when it has none.
 */
export async function newestProductionRelease(
  deps: Pick<ReleaseDeps, 'store'>,
  service: Pick<Service, 'orgId' | 'id' | 'projectId'>,
): Promise<Release | null> {
  return deps.store.withOrg(service.orgId, async (repos) => {
    const env = await repos.environments.findByName(service.projectId, 'production');
    return env ? repos.releases.latest(service.id, env.id, [...releaseStatuses]) : null;
  });
}

/** True when `sha` is what the service's production environment is deploying or serving. */
export const isDeployingOrServing = (newest: Release | null, sha: string): boolean =>
  newest?.gitSha === sha &&
  (newest.status === 'completed' ||
    !(finishedReleaseStatuses as readonly string[]).includes(newest.status));

/** The `git-poll` job: every service whose poll is due, a few at a time. */
export async function pollGitSources(deps: ReleaseDeps): Promise<PollOutcome[]> {
  const lookup = deps.store.gitPollLookup;
  if (!lookup || !deps.source) return [];
  const due = await lookup.duePolls(deps.clock.now().toISOString(), perRun);
  const outcomes: PollOutcome[] = [];
  let next = 0;
  const worker = async () => {
    while (next < due.length) {
      const { orgId, serviceId } = due[next++]!;
      outcomes.push(await pollService(deps, orgId, serviceId));
    }
  };
  await Promise.all(Array.from({ length: Math.min(atOnce, due.length) }, worker));
  return outcomes;
}

/**
 * Polls one service's followed branch. A failure (unreachable, refused, a changed host key)
 * is recorded on the poll and tried again at the next interval; it never fails the job.
 */
export async function pollService(
  deps: ReleaseDeps,
  orgId: string,
  serviceId: string,
): Promise<PollOutcome> {
  const source = deps.source;
  const service = await deps.store.withOrg(orgId, (r) => r.services.get(serviceId));
  const git = service?.git;
  if (!service || !git?.pollIntervalSeconds || !source) return { serviceId, status: 'skipped' };
  const polledAt = deps.clock.now().toISOString();
  const record = (o: { error: string | null; sha?: string; releaseId?: string }) =>
    deps.store.withOrg(orgId, (r) => r.gitPolls.record(serviceId, { polledAt, ...o }));
  const failed = async (e: unknown): Promise<PollOutcome> => {
    const error = e instanceof Error ? e.message : String(e);
    await record({ error });
    deps.logger.warn({ orgId, serviceId, err: error }, 'polling the git branch failed');
    return { serviceId, status: 'failed', error };
  };
  let sha: string;
  try {
    const remote = await openGitRemote(deps.vault, service);
    sha = await source.resolveRef(remote, git.ref);
    await pinLearnedHostKeys(deps, orgId, serviceId, remote);
  } catch (e) {
    return failed(e);
  }
  const last = await deps.store.withOrg(orgId, (r) => r.gitPolls.get(serviceId));
  if (last?.sha === sha) {
    await record({ error: null });
    return { serviceId, status: 'unchanged', sha };
  }
  // A push (or a deploy by hand) of this commit got there first: deployed once, not twice.
  if (isDeployingOrServing(await newestProductionRelease(deps, service), sha)) {
    await record({ error: null, sha });
    return { serviceId, status: 'seen', sha };
  }
  let started: Release | null;
  try {
    // As a push: the commit is recorded as the one wanted (replacing an older one not yet
    // started), then started, or left for the end of the release in flight.
    await deps.store.withOrg(orgId, async (r) => {
      const hook = await r.pushHooks.forService(serviceId);
      if (hook) await r.pushHooks.want(hook.id, sha);
      else await r.gitPolls.want(serviceId, sha);
    });
    started = await startWantedPush(deps, orgId, serviceId);
  } catch (e) {
    // Not started (no node, say): the sha stays unseen, so the next poll tries again.
    return failed(e);
  }
  await record({ error: null, sha, ...(started ? { releaseId: started.id } : {}) });
  return started
    ? { serviceId, status: 'deploying', sha, releaseId: started.id }
    : { serviceId, status: 'queued', sha };
}
