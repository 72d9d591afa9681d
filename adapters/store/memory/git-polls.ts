import type { GitPoll, GitPollLookup, GitPollRepo } from '../../../core/ports.ts';
import type { Row, Tables } from './tables.ts';
import type { TenantView } from './tenant.ts';

const view = (r: Row): GitPoll => ({
  serviceId: String(r.serviceId),
  polledAt: (r.polledAt as string | null) ?? null,
  sha: (r.sha as string | null) ?? null,
  error: (r.error as string | null) ?? null,
  releaseId: (r.releaseId as string | null) ?? null,
});

export const memoryGitPollRepo = (t: TenantView): GitPollRepo => {
  const key = (serviceId: string) => `${t.orgId}|${serviceId}`;
  const row = (serviceId: string) => t.view.get('gitPolls', key(serviceId));
  const ensure = (serviceId: string): void => {
    if (!row(serviceId))
      t.insert('gitPolls', {
        orgId: t.orgId,
        serviceId,
        polledAt: null,
        sha: null,
        error: null,
        releaseId: null,
        wantedSha: null,
      });
  };
  return {
    get: async (serviceId) => {
      const r = row(serviceId);
      return r ? view(r) : null;
    },
    record: async (serviceId, o) => {
      ensure(serviceId);
      const current = row(serviceId)!;
      t.view.put('gitPolls', key(serviceId), {
        ...current,
        polledAt: o.polledAt,
        error: o.error,
        sha: o.sha ?? current.sha,
        releaseId: o.releaseId ?? current.releaseId,
      });
    },
    want: async (serviceId, sha) => {
      ensure(serviceId);
      t.view.put('gitPolls', key(serviceId), { ...row(serviceId)!, wantedSha: sha });
    },
    takeWanted: async (serviceId) => {
      const r = row(serviceId);
      if (!r?.wantedSha) return null;
      t.view.put('gitPolls', key(serviceId), { ...r, wantedSha: null });
      return String(r.wantedSha);
    },
    putBackWanted: async (serviceId, sha) => {
      const r = row(serviceId);
      if (r && !r.wantedSha) t.view.put('gitPolls', key(serviceId), { ...r, wantedSha: sha });
    },
  };
};

/** As the PostgreSQL function selfdevop_git_polls_due. */
export const memoryGitPollLookup = (tables: Tables): GitPollLookup => ({
  duePolls: async (now, limit) => {
    const at = Date.parse(now);
    const due: { orgId: string; serviceId: string; polledAt: number }[] = [];
    for (const s of tables.services.values()) {
      const interval = (s.git as { pollIntervalSeconds?: unknown } | null)?.pollIntervalSeconds;
      if (typeof interval !== 'number') continue;
      const polled = tables.gitPolls.get(`${String(s.orgId)}|${String(s.id)}`)?.polledAt;
      const polledAt = typeof polled === 'string' ? Date.parse(polled) : -Infinity;
      if (polledAt + interval * 1000 <= at)
        due.push({ orgId: String(s.orgId), serviceId: String(s.id), polledAt });
    }
    return due
      .sort(
        (a, b) =>
          a.polledAt - b.polledAt ||
          (a.orgId < b.orgId ? -1 : a.orgId > b.orgId ? 1 : 0) ||
          (a.serviceId < b.serviceId ? -1 : a.serviceId > b.serviceId ? 1 : 0),
      )
      .slice(0, Math.min(Math.max(limit, 0), 1000))
      .map(({ orgId, serviceId }) => ({ orgId, serviceId }));
  },
});
