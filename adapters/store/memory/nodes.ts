import { NotFound } from '../../../core/errors.ts';
import type { NodeRecord } from '../../../core/models.ts';
import type { NodeLookup, NodeRepo } from '../../../core/ports.ts';
import type { Tables } from './tables.ts';
import type { TenantView } from './tenant.ts';

export const memoryNodeRepo = (t: TenantView): NodeRepo => ({
  insert: async (n) => t.insert('nodes', n),
  get: async (id) => t.getOwn<NodeRecord>('nodes', id),
  list: async (page) => t.page<NodeRecord>('nodes', t.mine('nodes'), page),
  setCredentials: async (id, patch) => {
    if (!t.patch('nodes', id, patch, ['id', 'orgId'])) throw new NotFound('node', id);
  },
  update: async (id, patch) => {
    if (!t.patch('nodes', id, patch, ['id', 'orgId'])) throw new NotFound('node', id);
  },
  setDrainMode: async (id, drainMode) => {
    if (!t.patch('nodes', id, { drainMode }, ['id', 'orgId'])) throw new NotFound('node', id);
  },
  recordCheck: async (id, from, patch) =>
    t.patch('nodes', id, patch, ['id', 'orgId'], (row) => row.reachability === from),
  delete: async (id) => {
    if (!t.getOwn('nodes', id)) return false;
    // As the PostgreSQL adapter: old releases no longer name it; a data service's key holds.
    if (t.mine('dataServices').some((r) => r.nodeId === id))
      throw new Error(
        'update or delete on table "nodes" violates foreign key constraint "data_services_node_fkey" on table "data_services"',
      );
    for (const r of t.mine('releases').filter((x) => x.nodeId === id))
      t.patch('releases', String(r.id), { nodeId: null }, ['id', 'orgId']);
    t.view.delete('nodes', id);
    return true;
  },
});

/** As the PostgreSQL function selfdevop_node_orgs. */
export const memoryNodeLookup = (tables: Tables): NodeLookup => ({
  orgsWithNodes: async () =>
    [...new Set([...tables.nodes.values()].map((n) => String(n.orgId)))].sort(),
});
