import type { ControlBackup, ControlBackupSettings } from '../../../core/models.ts';
import type { ControlBackupRepo } from '../../../core/ports.ts';
import type { SqlClient } from '../../db/postgres.ts';
import { fromRow, insertSql, selectSql, table, updateSql, valuesOf, eq } from './sql.ts';

export const controlBackupsTable = table<ControlBackup>('control_backups', [
  'id',
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
const model = (row: Record<string, unknown>): ControlBackup => {
  const b = fromRow(controlBackupsTable, row);
  return {
    ...b,
    rawBytes: b.rawBytes === null ? null : Number(b.rawBytes),
    storedBytes: b.storedBytes === null ? null : Number(b.storedBytes),
  };
};

/** The install's own backups: no org, no row-level security (migration 0031). */
export const pgControlBackupRepo = (db: SqlClient): ControlBackupRepo => ({
  async insert(b) {
    await db.query(insertSql(controlBackupsTable), valuesOf(controlBackupsTable, b));
  },
  async get(id) {
    const r = await db.query(`${selectSql(controlBackupsTable)} where id = $1`, [id]);
    return r.rows[0] ? model(r.rows[0] as Record<string, unknown>) : null;
  },
  async list() {
    const r = await db.query(`${selectSql(controlBackupsTable)} order by id`);
    return r.rows.map((row) => model(row as Record<string, unknown>));
  },
  async update(id, patch) {
    const q = updateSql(controlBackupsTable, patch as Record<string, unknown>, [eq('id', id)]);
    if (q) await db.query(q.text, q.values);
  },
  async delete(id) {
    const r = await db.query('delete from control_backups where id = $1', [id]);
    return (r.rowCount ?? 0) > 0;
  },
  async settings() {
    const r = await db.query<{
      schedule: string;
      retention: ControlBackupSettings['retention'];
      updated_at: Date | string;
    }>('select schedule, retention, updated_at from control_backup_settings where id = 1');
    const row = r.rows[0];
    return row
      ? {
          schedule: row.schedule,
          retention: row.retention,
          updatedAt: new Date(row.updated_at).toISOString(),
        }
      : null;
  },
  async saveSettings(s) {
    await db.query(
      `insert into control_backup_settings (id, schedule, retention, updated_at) values (1, $1, $2, $3)
       on conflict (id) do update set schedule = excluded.schedule, retention = excluded.retention,
         updated_at = excluded.updated_at`,
      [s.schedule, JSON.stringify(s.retention), s.updatedAt],
    );
  },
});
