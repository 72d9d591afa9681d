import { NotFound } from '../../../core/errors.ts';
import type { Release, ReleaseLogLine, ReleaseStatus, ReleaseStep } from '../../../core/models.ts';
import type {
  ReleaseLogRepo,
  ReleaseLookup,
  ReleaseRepo,
  ReleaseStepRepo,
} from '../../../core/ports.ts';
import { clampLimit, defaultLogLines, maxLogLines } from '../page.ts';
import { clone } from './overlay.ts';
import { isFinished, rlsViolation, rules, type Row, type Tables } from './tables.ts';
import type { TenantView } from './tenant.ts';

export const memoryReleaseRepo = (t: TenantView): ReleaseRepo => ({
  insert: async (r) => t.insert('releases', r),
  get: async (id) => t.getOwn<Release>('releases', id),
  list: async (page, filter) =>
    t.page<Release>('releases', t.filtered('releases', filter, 'viaService'), page),
  transition: async (id, from, patch) =>
    t.patch('releases', id, patch, ['id', 'orgId'], (row) => row.status === from),
  update: async (id, patch) => {
    if (!t.patch('releases', id, patch, ['id', 'orgId', 'status']))
      throw new NotFound('release', id);
  },
  inFlight: async (serviceId, environmentId) =>
    t.newestWhere(
      (r) =>
        r.serviceId === serviceId && r.environmentId === environmentId && !isFinished(r.status),
    ),
  latest: async (serviceId, environmentId, statuses) =>
    t.newestWhere(
      (r) =>
        r.serviceId === serviceId &&
        r.environmentId === environmentId &&
        statuses.includes(r.status as ReleaseStatus),
    ),
  latestOfEach: async (statuses) => {
    const matches = (r: Row) => statuses.includes(r.status as ReleaseStatus);
    const pairs = new Set(
      t
        .mine('releases')
        .filter(matches)
        .map((r) => `${String(r.serviceId)} ${String(r.environmentId)}`),
    );
    return [...pairs].map((pair) => {
      const [serviceId, environmentId] = pair.split(' ');
      return t.newestWhere(
        (r) => r.serviceId === serviceId && r.environmentId === environmentId && matches(r),
      )!;
    });
  },
});

export const memoryReleaseStepRepo = (t: TenantView): ReleaseStepRepo => ({
  upsert: async (step) => {
    const key = rules.releaseSteps.key(step as unknown as Row);
    const existing = t.view.get('releaseSteps', key);
    if (!existing) return t.insert('releaseSteps', step);
    // As `on conflict do update`: the org stays the existing row's, and RLS must allow it.
    if (existing.orgId !== t.orgId || step.orgId !== t.orgId) throw rlsViolation('release_steps');
    t.patch('releaseSteps', key, step, ['releaseId', 'name', 'orgId']);
  },
  list: async (releaseId) =>
    t
      .mine('releaseSteps')
      .filter((r) => r.releaseId === releaseId)
      .sort(
        (a, b) =>
          String(a.startedAt).localeCompare(String(b.startedAt)) ||
          String(a.name).localeCompare(String(b.name)),
      )
      .map((r) => clone(r) as unknown as ReleaseStep),
});

export const memoryReleaseLogRepo = (t: TenantView): ReleaseLogRepo => ({
  append: async (releaseId, lines) => {
    if (lines.length === 0) return;
    const release = t.view.get('releases', releaseId);
    if (!release || release.orgId !== t.orgId) throw new NotFound('release', releaseId);
    // Transactions here run one at a time, so the highest number so far is safe to extend.
    const last = t.view
      .rows('releaseLogs')
      .reduce((max, r) => (r.releaseId === releaseId ? Math.max(max, Number(r.seq)) : max), 0);
    lines.forEach((l, i) => {
      const row: Row = {
        releaseId,
        orgId: t.orgId,
        seq: last + i + 1,
        at: l.at,
        stream: l.stream,
        line: l.line,
      };
      t.view.put('releaseLogs', rules.releaseLogs.key(row), row);
    });
  },
  list: async (releaseId, afterSeq = 0, limit) =>
    t
      .mine('releaseLogs')
      .filter((r) => r.releaseId === releaseId && Number(r.seq) > afterSeq)
      .sort((a, b) => Number(a.seq) - Number(b.seq))
      .slice(0, clampLimit(limit, maxLogLines, defaultLogLines))
      .map(
        ({ releaseId: rid, seq, at, stream, line }) =>
          ({ releaseId: rid, seq, at, stream, line }) as ReleaseLogLine,
      ),
});

/** As the PostgreSQL function selfdevop_jobless_releases. */
export const memoryReleaseLookup = (tables: Tables): ReleaseLookup => ({
  joblessReleases: async (before, limit) => {
    const cutoff = Date.parse(before);
    const stepped = new Set([...tables.releaseSteps.values()].map((s) => String(s.releaseId)));
    return [...tables.releases.values()]
      .filter(
        (r) =>
          r.status === 'queued' &&
          Date.parse(String(r.createdAt)) < cutoff &&
          !stepped.has(String(r.id)),
      )
      .sort(
        (x, y) =>
          Date.parse(String(x.createdAt)) - Date.parse(String(y.createdAt)) ||
          String(x.id).localeCompare(String(y.id)),
      )
      .slice(0, Math.min(Math.max(limit, 0), 1000))
      .map((r) => ({
        id: String(r.id),
        orgId: String(r.orgId),
        serviceId: String(r.serviceId),
        environmentId: String(r.environmentId),
        createdAt: String(r.createdAt),
      }));
  },
  /** As the PostgreSQL function selfdevop_build_nodes. */
  buildNodes: async (limit) => {
    const pairs = new Map<string, { orgId: string; nodeId: string }>();
    for (const r of tables.releases.values()) {
      if (r.gitSha === null || r.gitSha === undefined) continue;
      const replicas = (r.replicaSet as { replicas?: { nodeId: string }[] } | null)?.replicas ?? [];
      for (const nodeId of [r.nodeId, ...replicas.map((x) => x.nodeId)]) {
        if (typeof nodeId !== 'string') continue;
        pairs.set(`${String(r.orgId)}\0${nodeId}`, { orgId: String(r.orgId), nodeId });
      }
    }
    return [...pairs.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .slice(0, Math.min(Math.max(limit, 0), 5000))
      .map(([, v]) => v);
  },
});
