import { liveReleaseStatuses, routedDomainStatuses } from '../../../core/edge/live-routes.ts';
import type {
  AlertTarget,
  AlertTargetLookup,
  AlertThreshold,
  AlertThresholdRepo,
} from '../../../core/ports.ts';
import type { Database } from '../../db/postgres.ts';
import { eq, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const alertThresholdsTable = table<AlertThreshold>('alert_thresholds', [
  'orgId',
  'serviceId',
  'rule',
  'value',
  'updatedAt',
]);

export const pgAlertThresholdRepo = (t: TenantSql): AlertThresholdRepo => ({
  list: (filter) =>
    t.all(
      alertThresholdsTable,
      [t.org(), ...(filter?.serviceId ? [eq('service_id', filter.serviceId)] : [])],
      'service_id, rule',
    ),
  async set(row) {
    // One statement, so two writers of one (service, rule) leave the last value.
    await t.tx.query(
      `insert into alert_thresholds (org_id, service_id, rule, value, updated_at)
       values ($1, $2, $3, $4, $5)
       on conflict (service_id, rule) do update set value = excluded.value, updated_at = excluded.updated_at`,
      [t.orgId, row.serviceId, row.rule, row.value, row.updatedAt],
    );
  },
  remove: (serviceId, rule) =>
    t.deleteWhere(alertThresholdsTable, [t.org(), eq('service_id', serviceId), eq('rule', rule)]),
});

interface AlertTargetRow {
  org_id: string;
  service_id: string;
  service_name: string;
  environment_id: string;
  environment_name: string;
  custom_hosts: string[];
  thresholds: Record<string, number>;
}

/** Across orgs through `selfdevop_alert_targets` (SECURITY DEFINER, migration 0023). */
export const pgAlertTargetLookup = (db: Database): AlertTargetLookup => ({
  async alertTargets(): Promise<AlertTarget[]> {
    const r = await db.query<AlertTargetRow>(
      'select * from selfdevop_alert_targets($1::text[], $2::text[])',
      [liveReleaseStatuses, routedDomainStatuses],
    );
    return r.rows.map((row) => ({
      orgId: row.org_id,
      serviceId: row.service_id,
      serviceName: row.service_name,
      environmentId: row.environment_id,
      environmentName: row.environment_name,
      customHosts: row.custom_hosts,
      thresholds: row.thresholds,
    }));
  },
});
