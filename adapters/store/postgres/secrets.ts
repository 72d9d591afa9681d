import type { SecretRecord } from '../../../core/models.ts';
import type { SecretRepo } from '../../../core/ports.ts';
import { guardedWrite } from './constraints.ts';
import { eq, table, upsertSql, valuesOf } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const secretsTable = table<SecretRecord>('secrets', [
  'id',
  'orgId',
  'serviceId',
  'environmentId',
  'name',
  'sealed',
  'createdAt',
  'updatedAt',
]);

export const pgSecretRepo = (t: TenantSql): SecretRepo => ({
  put: (s) =>
    guardedWrite(
      t.tx,
      upsertSql(secretsTable, ['serviceId', 'environmentId', 'name'], ['id', 'createdAt']),
      valuesOf(secretsTable, s),
      s as unknown as Record<string, unknown>,
    ).then(() => undefined),
  list: (serviceId, environmentId) =>
    t.all(
      secretsTable,
      [eq('service_id', serviceId), eq('environment_id', environmentId), t.org()],
      'name',
    ),
  delete: (serviceId, environmentId, name) =>
    t.deleteWhere(secretsTable, [
      eq('service_id', serviceId),
      eq('environment_id', environmentId),
      eq('name', name),
      t.org(),
    ]),
});
