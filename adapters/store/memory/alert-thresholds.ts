import { liveReleaseStatuses, routedDomainStatuses } from '../../../core/edge/live-routes.ts';
import type { Release } from '../../../core/models.ts';
import type {
  AlertTarget,
  AlertTargetLookup,
  AlertThreshold,
  AlertThresholdRepo,
} from '../../../core/ports.ts';
import { clone } from './overlay.ts';
import type { Tables } from './tables.ts';
import type { TenantView } from './tenant.ts';

const keyOf = (serviceId: string, rule: string) => `${serviceId}|${rule}`;

export const memoryAlertThresholdRepo = (t: TenantView): AlertThresholdRepo => ({
  list: async (filter) =>
    t
      .mine('alertThresholds')
      .filter((r) => !filter?.serviceId || r.serviceId === filter.serviceId)
      .sort((a, b) =>
        keyOf(String(a.serviceId), String(a.rule)).localeCompare(
          keyOf(String(b.serviceId), String(b.rule)),
        ),
      )
      .map((r) => clone(r) as unknown as AlertThreshold),
  set: async (row) => {
    const key = keyOf(row.serviceId, row.rule);
    if (!t.patch('alertThresholds', key, { value: row.value, updatedAt: row.updatedAt }, []))
      t.insert('alertThresholds', { ...row, orgId: t.orgId });
  },
  remove: async (serviceId, rule) => {
    const key = keyOf(serviceId, rule);
    if (!t.getOwn('alertThresholds', key)) return false;
    t.view.delete('alertThresholds', key);
    return true;
  },
});

/** The same selection as selfdevop_alert_targets (migration 0023), over the tables. */
export const memoryAlertTargetLookup = (tables: Tables): AlertTargetLookup => ({
  alertTargets: async () => {
    const newest = new Map<string, Release>();
    for (const row of tables.releases.values()) {
      const r = row as unknown as Release;
      if (!liveReleaseStatuses.includes(r.status)) continue;
      const key = `${r.serviceId} ${r.environmentId}`;
      const seen = newest.get(key);
      if (seen === undefined || r.id > seen.id) newest.set(key, r);
    }
    const out: AlertTarget[] = [];
    for (const r of [...newest.values()].sort((a, b) =>
      `${a.serviceId} ${a.environmentId}`.localeCompare(`${b.serviceId} ${b.environmentId}`),
    )) {
      const service = tables.services.get(r.serviceId);
      const env = tables.environments.get(r.environmentId);
      if (!service || !env || r.upstream === null) continue;
      const customHosts = [...tables.domains.values()]
        .filter(
          (d) =>
            d.serviceId === r.serviceId &&
            d.environmentId === r.environmentId &&
            routedDomainStatuses.includes(d.status as never),
        )
        .sort(
          (a, b) =>
            String(a.createdAt).localeCompare(String(b.createdAt)) || (a.id! < b.id! ? -1 : 1),
        )
        .map((d) => String(d.hostname));
      const thresholds: Record<string, number> = {};
      for (const th of tables.alertThresholds.values())
        if (th.serviceId === service.id) thresholds[String(th.rule)] = Number(th.value);
      out.push({
        orgId: String(service.orgId),
        serviceId: String(service.id),
        serviceName: String(service.name),
        environmentId: String(env.id),
        environmentName: String(env.name),
        customHosts,
        thresholds,
      });
    }
    return out;
  },
});
