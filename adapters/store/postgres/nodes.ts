import type { NodeRecord } from '../../../core/models.ts';
import type { NodeRepo } from '../../../core/ports.ts';
import { eq, table } from './sql.ts';
import type { TenantSql } from './tenant.ts';

export const nodesTable = table<NodeRecord>('nodes', [
  'id',
  'orgId',
  'name',
  'kind',
  'dockerHost',
  'address',
  'labels',
  'drainMode',
  'createdAt',
  'sealedTls',
  'sealedSsh',
  'credentialsUpdatedAt',
  'operatorRegistered',
]);

export const pgNodeRepo = (t: TenantSql): NodeRepo => ({
  insert: (n) => t.insert(nodesTable, n),
  get: (id) => t.one(nodesTable, [eq('id', id), t.org()]),
  list: (page) => t.page(nodesTable, [], page),
  setCredentials: async (id, patch) => {
    await t.updateById(nodesTable, 'node', id, patch);
  },
  update: async (id, patch) => {
    await t.updateById(nodesTable, 'node', id, patch);
  },
  setDrainMode: async (id, drainMode) => {
    await t.updateById(nodesTable, 'node', id, { drainMode });
  },
});
