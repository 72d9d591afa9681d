import { NotFound } from '../errors.ts';
import { assertCan } from '../roles.ts';
import type { Page, PageRequest, Release, ReleaseLogLine, ReleaseStep } from '../models.ts';
import type { ListFilter } from '../ports.ts';
import { requireOrg, type Principal } from '../deps.ts';
import type { ReleaseDeps } from './deps.ts';
import { stepNames } from './steps.ts';

export interface ReleaseView extends Release {
  steps: ReleaseStep[];
}

/** `GET /api/releases/{id}`: the release and its steps; NotFound for unknown or foreign ids. */
export async function getRelease(
  deps: Pick<ReleaseDeps, 'store'>,
  principal: Principal,
  id: string,
): Promise<ReleaseView> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) => {
    const release = await repos.releases.get(id);
    if (!release) throw new NotFound('release', id);
    const steps = await repos.releaseSteps.list(id);
    // Lifecycle order: steps of one instant would otherwise sort by name.
    const rank = (name: string) => (stepNames as readonly string[]).indexOf(name);
    return { ...release, steps: steps.sort((a, b) => rank(a.name) - rank(b.name)) };
  });
}

/** `GET /api/releases`: newest last, keyset-paginated, filtered by service and environment. */
export async function listReleases(
  deps: Pick<ReleaseDeps, 'store'>,
  principal: Principal,
  page: PageRequest,
  filter: ListFilter = {},
): Promise<Page<Release>> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, (repos) => repos.releases.list(page, filter));
}

/** `GET /api/releases/{id}/logs`: lines after `afterSeq`, in order. */
export async function listReleaseLogs(
  deps: Pick<ReleaseDeps, 'store'>,
  principal: Principal,
  id: string,
  afterSeq = 0,
  limit?: number,
): Promise<ReleaseLogLine[]> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) => {
    if (!(await repos.releases.get(id))) throw new NotFound('release', id);
    return repos.releaseLogs.list(id, afterSeq, limit);
  });
}

/** What a live log stream needs each tick: the status and the lines after `afterSeq`, read in one transaction. */
export async function readReleaseProgress(
  deps: Pick<ReleaseDeps, 'store'>,
  principal: Principal,
  id: string,
  afterSeq: number,
  limit: number,
): Promise<{ status: Release['status']; error: string | null; lines: ReleaseLogLine[] }> {
  const p = requireOrg(principal);
  assertCan(p.role, 'read');
  return deps.store.withOrg(p.orgId, async (repos) => {
    const release = await repos.releases.get(id);
    if (!release) throw new NotFound('release', id);
    const lines = await repos.releaseLogs.list(id, afterSeq, limit);
    return { status: release.status, error: release.error, lines };
  });
}
