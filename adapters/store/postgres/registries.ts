import type { Registry } from '../../../core/models.ts';
import type { RegistryRepo } from '../../../core/ports.ts';
import { eq, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const registriesTable = table<Registry>('registries', [
  'id',
  'orgId',
  'server',
  'username',
  'sealedPassword',
  'createdAt',
]);

export const pgRegistryRepo = (t: TenantSql): RegistryRepo => ({
  insert: (r) => t.insert(registriesTable, r),
  list: () => t.all(registriesTable, [t.org()], 'server'),
  byServer: async (server) =>
    (await t.all(registriesTable, [t.org(), eq('server', server)], 'id'))[0] ?? null,
  delete: (id) => t.deleteWhere(registriesTable, [eq('id', id), t.org()]),
});
