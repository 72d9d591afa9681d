import type { DataService, DataServiceBackup, DataServiceLink } from '../../../core/models.ts';
import type {
  BackupLookup,
  DataServiceBackupRepo,
  DataServiceLinkRepo,
  DataServiceRepo,
} from '../../../core/ports.ts';
import type { SqlClient } from '../../db/postgres.ts';
import { eq, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const dataServicesTable = table<DataService>('data_services', [
  'id',
  'orgId',
  'projectId',
  'name',
  'engine',
  'version',
  'nodeId',
  'status',
  'error',
  'settings',
  'sealedPassword',
  'removeVolume',
  'backupSchedule',
  'backupRetention',
  'drillSchedule',
  'pendingSealedPassword',
  'passwordRotatedAt',
  'shareable',
  'sharedServerId',
  'move',
  'upgrade',
  'createdAt',
  'updatedAt',
]);

export const dataServiceLinksTable = table<DataServiceLink>('data_service_links', [
  'id',
  'orgId',
  'dataServiceId',
  'serviceId',
  'envName',
  'createdAt',
]);

export const pgDataServiceRepo = (t: TenantSql): DataServiceRepo => ({
  // The columns are not null: a row made before shared servers (weekly drills) existed reads
  // back false (every_backup).
  insert: (d) =>
    t.insert(dataServicesTable, {
      ...d,
      shareable: d.shareable ?? false,
      drillSchedule: d.drillSchedule ?? 'every_backup',
    }),
  get: (id) => t.one(dataServicesTable, [eq('id', id), t.org()]),
  list: (page, filter) =>
    t.page(dataServicesTable, t.filterConditions(filter, { project: 'direct' }), page),
  update: async (id, patch) => {
    await t.updateById(dataServicesTable, 'data_service', id, patch);
  },
  // One statement: the row lock orders a worker's write and the sweep's, and the loser's
  // condition is evaluated again against the winner's row (READ COMMITTED), so it misses.
  setMove: async (id, expected, next) => {
    const r = await t.tx.query(
      `update data_services set move = $1::jsonb
        where id = $2 and org_id = $3 and move is not distinct from $4::jsonb`,
      [
        next === null ? null : JSON.stringify(next),
        id,
        t.orgId,
        expected === null ? null : JSON.stringify(expected),
      ],
    );
    return (r.rowCount ?? 0) > 0;
  },
  delete: (id) => t.deleteWhere(dataServicesTable, [eq('id', id), t.org()]),
});

export const pgDataServiceLinkRepo = (t: TenantSql): DataServiceLinkRepo => ({
  insert: (l) => t.insert(dataServiceLinksTable, l),
  list: (filter) =>
    t.all(
      dataServiceLinksTable,
      [
        t.org(),
        ...(filter.dataServiceId ? [eq('data_service_id', filter.dataServiceId)] : []),
        ...(filter.serviceId ? [eq('service_id', filter.serviceId)] : []),
      ],
      'id',
    ),
  delete: (id) => t.deleteWhere(dataServiceLinksTable, [eq('id', id), t.org()]),
});

export const dataServiceBackupsTable = table<DataServiceBackup>('data_service_backups', [
  'id',
  'orgId',
  'dataServiceId',
  'trigger',
  'status',
  'error',
  'objectKey',
  'manifestKey',
  'sealedDataKey',
  'rawBytes',
  'storedBytes',
  'sha256',
  'manifest',
  'startedAt',
  'finishedAt',
  'drillStatus',
  'drillError',
  'drillRtoMs',
  'drillRpoMs',
  'drilledAt',
]);

/** bigint columns come back from pg as strings; sizes of backups fit a double. */
const sizes = <B extends DataServiceBackup | null>(b: B): B =>
  b && {
    ...b,
    rawBytes: b.rawBytes === null ? null : Number(b.rawBytes),
    storedBytes: b.storedBytes === null ? null : Number(b.storedBytes),
  };

export const pgDataServiceBackupRepo = (t: TenantSql): DataServiceBackupRepo => ({
  insert: (b) => t.insert(dataServiceBackupsTable, b),
  get: async (id) => sizes(await t.one(dataServiceBackupsTable, [eq('id', id), t.org()])),
  list: async (dataServiceId) =>
    (
      await t.all(dataServiceBackupsTable, [t.org(), eq('data_service_id', dataServiceId)], 'id')
    ).map(sizes),
  update: async (id, patch) => {
    await t.updateById(dataServiceBackupsTable, 'data_service_backup', id, patch);
  },
  delete: (id) => t.deleteWhere(dataServiceBackupsTable, [eq('id', id), t.org()]),
});

/** No org is known to the backup sweep, so it reads through security-definer functions (migrations 0037, 0053). */
export const pgBackupLookup = (db: SqlClient): BackupLookup => ({
  stuckBackups: async (before, limit) => {
    const r = await db.query(
      'select org_id, data_service_id, backup_id, kind from selfdevop_stuck_backups($1, $2)',
      [before, limit],
    );
    return r.rows.map((row) => ({
      orgId: String(row.org_id),
      dataServiceId: String(row.data_service_id),
      backupId: String(row.backup_id),
      kind: row.kind === 'drill' ? ('drill' as const) : ('backup' as const),
    }));
  },
  staleMoves: async (beatBefore, startBefore, limit) => {
    const r = await db.query(
      'select org_id, data_service_id from selfdevop_stale_moves($1, $2, $3)',
      [beatBefore, startBefore, limit],
    );
    return r.rows.map((row) => ({
      orgId: String(row.org_id),
      dataServiceId: String(row.data_service_id),
    }));
  },
});
