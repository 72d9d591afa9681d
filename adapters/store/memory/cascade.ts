/**
 * The deletes migration 0019 cascades in SQL, done by hand over one transaction's view: a
 * service, environment or project takes its releases (with steps, logs and jobs), secrets,
 * domains, push hook and data-service links with it.
 */
import { rules, type Row, type TableName } from './tables.ts';
import type { TenantView } from './tenant.ts';

function drop(t: TenantView, table: TableName, match: (r: Row) => boolean): Row[] {
  const rows = t.mine(table).filter(match);
  for (const r of rows) t.view.delete(table, rules[table].key(r));
  return rows;
}

function dropReleases(t: TenantView, match: (r: Row) => boolean): void {
  for (const release of drop(t, 'releases', match)) {
    const ofIt = (r: Row) => r.releaseId === release.id;
    drop(t, 'releaseSteps', ofIt);
    drop(t, 'releaseLogs', ofIt);
    drop(t, 'deployJobs', ofIt);
  }
}

export function deleteServiceRows(t: TenantView, serviceId: string): boolean {
  if (!t.getOwn('services', serviceId)) return false;
  const ofIt = (r: Row) => r.serviceId === serviceId;
  dropReleases(t, ofIt);
  drop(t, 'secrets', ofIt);
  drop(t, 'domains', ofIt);
  drop(t, 'dataServiceLinks', ofIt);
  for (const hook of drop(t, 'pushHooks', ofIt))
    drop(t, 'pushDeliveries', (r) => r.hookId === hook.id);
  drop(t, 'gitPolls', ofIt);
  t.view.delete('services', serviceId);
  return true;
}

export function deleteEnvironmentRows(t: TenantView, environmentId: string): boolean {
  if (!t.getOwn('environments', environmentId)) return false;
  const ofIt = (r: Row) => r.environmentId === environmentId;
  dropReleases(t, ofIt);
  drop(t, 'secrets', ofIt);
  drop(t, 'domains', ofIt);
  t.view.delete('environments', environmentId);
  return true;
}

export function deleteProjectRows(t: TenantView, projectId: string): boolean {
  if (!t.getOwn('projects', projectId)) return false;
  // Data services do not cascade (their volumes hold data): PostgreSQL's words, as there.
  if (t.mine('dataServices').some((r) => r.projectId === projectId))
    throw new Error(
      'update or delete on table "projects" violates foreign key constraint "data_services_project_fkey" on table "data_services"',
    );
  for (const s of t.mine('services').filter((r) => r.projectId === projectId))
    deleteServiceRows(t, String(s.id));
  for (const e of t.mine('environments').filter((r) => r.projectId === projectId))
    deleteEnvironmentRows(t, String(e.id));
  t.view.delete('projects', projectId);
  return true;
}
