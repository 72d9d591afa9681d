import { NotFound } from '../../../core/errors.ts';
import type {
  DataService,
  DataServiceBackup,
  DataServiceLink,
  DataServiceMove,
} from '../../../core/models.ts';
import type {
  BackupLookup,
  DataServiceBackupRepo,
  DataServiceLinkRepo,
  DataServiceRepo,
} from '../../../core/ports.ts';
import { byIdAsc, clone } from './overlay.ts';
import type { Tables } from './tables.ts';
import type { TenantView } from './tenant.ts';

export const memoryDataServiceRepo = (t: TenantView): DataServiceRepo => ({
  // As the SQL column's default: a row without a drill schedule drills every backup.
  insert: async (d) =>
    t.insert('dataServices', { ...d, drillSchedule: d.drillSchedule ?? 'every_backup' }),
  get: async (id) => t.getOwn<DataService>('dataServices', id),
  list: async (page, filter) =>
    t.page<DataService>('dataServices', t.filtered('dataServices', filter, 'direct'), page),
  update: async (id, patch) => {
    if (!t.patch('dataServices', id, patch, ['id', 'orgId']))
      throw new NotFound('data_service', id);
  },
  // As the SQL `move is not distinct from $expected::jsonb`: equal as JSON.
  setMove: async (id, expected, next) => {
    const now = t.getOwn<DataService>('dataServices', id);
    if (!now || canonical(now.move ?? null) !== canonical(expected)) return false;
    t.patch('dataServices', id, { move: next }, ['id', 'orgId']);
    return true;
  },
  delete: async (id) => {
    if (!t.getOwn('dataServices', id)) return false;
    t.view.delete('dataServices', id);
    // As the SQL foreign key's on delete cascade: its links go with it.
    for (const l of t.mine('dataServiceLinks').filter((r) => r.dataServiceId === id))
      t.view.delete('dataServiceLinks', String(l.id));
    for (const b of t.mine('dataServiceBackups').filter((r) => r.dataServiceId === id))
      t.view.delete('dataServiceBackups', String(b.id));
    return true;
  },
});

/** JSON with sorted keys and undefined dropped, as jsonb compares. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b)))
      : x,
  );
}

export const memoryDataServiceLinkRepo = (t: TenantView): DataServiceLinkRepo => ({
  insert: async (l) => t.insert('dataServiceLinks', l),
  list: async (filter) =>
    t
      .mine('dataServiceLinks')
      .filter(
        (r) =>
          (!filter.dataServiceId || r.dataServiceId === filter.dataServiceId) &&
          (!filter.serviceId || r.serviceId === filter.serviceId),
      )
      .sort(byIdAsc)
      .map((r) => clone(r) as unknown as DataServiceLink),
  delete: async (id) => {
    if (!t.getOwn('dataServiceLinks', id)) return false;
    t.view.delete('dataServiceLinks', id);
    return true;
  },
});

export const memoryDataServiceBackupRepo = (t: TenantView): DataServiceBackupRepo => ({
  insert: async (b) => t.insert('dataServiceBackups', b),
  get: async (id) => t.getOwn<DataServiceBackup>('dataServiceBackups', id),
  list: async (dataServiceId) =>
    t
      .mine('dataServiceBackups')
      .filter((r) => r.dataServiceId === dataServiceId)
      .sort(byIdAsc)
      .map((r) => clone(r) as unknown as DataServiceBackup),
  update: async (id, patch) => {
    if (!t.patch('dataServiceBackups', id, patch, ['id', 'orgId']))
      throw new NotFound('data_service_backup', id);
  },
  delete: async (id) => {
    if (!t.getOwn('dataServiceBackups', id)) return false;
    t.view.delete('dataServiceBackups', id);
    return true;
  },
});

/** As the PostgreSQL function selfdevop_stuck_backups. */
export const memoryBackupLookup = (tables: Tables): BackupLookup => ({
  stuckBackups: async (before, limit) => {
    const cutoff = Date.parse(before);
    const rows = [...tables.dataServiceBackups.values()];
    const older = (at: unknown) => typeof at === 'string' && Date.parse(at) < cutoff;
    return [
      ...rows
        .filter((b) => b.status === 'running' && older(b.startedAt))
        .map((b) => ({ b, kind: 'backup' as const })),
      ...rows
        .filter(
          (b) => b.status === 'completed' && b.drillStatus === 'running' && older(b.drilledAt),
        )
        .map((b) => ({ b, kind: 'drill' as const })),
    ]
      .sort(
        (x, y) =>
          String(x.b.orgId).localeCompare(String(y.b.orgId)) ||
          String(x.b.id).localeCompare(String(y.b.id)),
      )
      .slice(0, Math.min(Math.max(limit, 0), 1000))
      .map(({ b, kind }) => ({
        orgId: String(b.orgId),
        dataServiceId: String(b.dataServiceId),
        backupId: String(b.id),
        kind,
      }));
  },
  // As the PostgreSQL function selfdevop_stale_moves.
  staleMoves: async (beatBefore, startBefore, limit) => {
    const older = (at: unknown, cutoff: string) =>
      typeof at === 'string' && Date.parse(at) < Date.parse(cutoff);
    return [...tables.dataServices.values()]
      .filter((d) => {
        const m = d.move as DataServiceMove | null | undefined;
        if (m?.status !== 'moving') return false;
        return m.heartbeatAt ? older(m.heartbeatAt, beatBefore) : older(m.at, startBefore);
      })
      .sort(
        (x, y) =>
          String(x.orgId).localeCompare(String(y.orgId)) ||
          String(x.id).localeCompare(String(y.id)),
      )
      .slice(0, Math.min(Math.max(limit, 0), 1000))
      .map((d) => ({ orgId: String(d.orgId), dataServiceId: String(d.id) }));
  },
});
