import type { DataService, DataServiceLink } from '../../../core/models.ts';
import type { DataServiceLinkRepo, DataServiceRepo } from '../../../core/ports.ts';
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
  insert: (d) => t.insert(dataServicesTable, d),
  get: (id) => t.one(dataServicesTable, [eq('id', id), t.org()]),
  list: (page, filter) =>
    t.page(dataServicesTable, t.filterConditions(filter, { project: 'direct' }), page),
  update: async (id, patch) => {
    await t.updateById(dataServicesTable, 'data_service', id, patch);
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
